"""What the policy service answers: the decision for one request, as a pure function of its inputs."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Callable
from urllib.parse import urlencode

from fswl.errors import BadRelay, BadSender
from fswl.names import ANY_SENDER, IPAddress, parse_address, parse_domain, parse_sender, split_sender
from fswl.policy.settings import PolicySettings
from fswl.store import Match

Lookup = Callable[[str, IPAddress], "Match | None"]


@dataclass(frozen=True)
class Decision:
    """The action for Postfix and the reason for the log."""

    action: str
    reason: str
    sender: str = ""
    address: IPAddress | None = None
    challenge: bool = False  #: whether verification may introduce this sender


class Rules:
    """The settings, compiled once; :meth:`decide` is called per request."""

    def __init__(self, settings: PolicySettings, base_url: str) -> None:
        self.settings = settings
        self.base_url = base_url.rstrip("/")
        self.exempt_clients = [ipaddress.ip_network(text, strict=False) for text in settings.exempt_clients]
        self.exempt_recipients = {parse_domain(d) for d in settings.exempt_recipient_domains}
        self.exempt_senders = {parse_domain(d) for d in settings.exempt_sender_domains}

    def screen(self, request: dict[str, str]) -> Decision:
        """Everything decided before a lookup: final if it has an action, else what to look up."""
        client = request.get("client_address", "")
        if "%" in client:  # fe80::1%eth0: a link-local neighbour, not a relay anyone could list or verify
            return Decision("DUNNO", f"client_address {client[:45]!r} has a scope id; not a relay")
        try:
            address = parse_address(client)
        except BadRelay:
            return Decision("DUNNO", f"no usable client_address {client[:45]!r}; fail open")
        raw_sender = request.get("sender", "")
        if not raw_sender:
            if self.settings.pass_bounces:
                return Decision("DUNNO", "bounce (empty sender)", address=address)
            raw_sender = "<>"
        if any(address in network for network in self.exempt_clients):
            return Decision("DUNNO", "exempt client", address=address)
        recipient = request.get("recipient", "")
        if recipient and recipient.rpartition("@")[2].lower().rstrip(".") in self.exempt_recipients:
            return Decision("DUNNO", "exempt recipient domain", address=address)
        try:
            sender = parse_sender(raw_sender)
        except BadSender:
            return Decision("DUNNO", f"unparsable sender {raw_sender[:60]!r}; fail open", address=address)
        if sender == ANY_SENDER or sender.startswith("*@"):
            return Decision("DUNNO", f"wildcard as a sender {raw_sender[:60]!r}; fail open", address=address)
        local, domain = split_sender(sender)
        if self.settings.pass_postmaster and local == "postmaster":
            return Decision("DUNNO", "postmaster", sender, address)
        if domain in self.exempt_senders:
            return Decision("DUNNO", "exempt sender domain", sender, address)
        if self.is_verp(local):
            return Decision("", "verp", "*@" + domain, address)  # look up the list source only
        return Decision("", "lookup", sender, address, challenge=True)

    def is_verp(self, local: str) -> bool:
        """A VERP or tagged local part: list-bounces+user=example.com, a bounce-... token."""
        return any(c in local for c in self.settings.verp_separators) or len(local) >= self.settings.verp_min_length

    def after_lookup(self, screened: Decision, match: Match | None, admitted: bool) -> Decision:
        """The answer once the index has spoken (and, when unlisted, the reputation quota)."""
        sender, address = screened.sender, screened.address
        assert address is not None
        if match is not None:
            action = "DUNNO"
            if self.settings.prepend_header:
                via = f" via {match.via}" if match.via else ""
                action = f"PREPEND X-FSWL: listed {match.sender} at {match.network}{via}"
            return Decision(action, f"listed as {match.sender}", sender, address)
        if admitted:
            action = "PREPEND X-FSWL: not yet listed; admitted by reputation quota" if self.settings.prepend_header else "DUNNO"
            return Decision(action, "unlisted, admitted by quota", sender, address)
        base = self.settings.reject_action if address.version == 6 and self.settings.reject_ipv6 else self.settings.defer_action
        challenge = screened.challenge and screened.reason == "lookup"
        return Decision(f"{base}; see {self.why_url(sender, address)}", f"not listed ({screened.reason})",
                        sender, address, challenge)

    def why_url(self, sender: str, address: IPAddress) -> str:
        """The page that explains the refusal; sender and IP URL-encoded, so the reply stays one line."""
        return f"{self.base_url}/why?" + urlencode({"sender": sender, "ip": str(address)})
