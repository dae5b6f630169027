"""Verifier: make a challenge for a miss, and act on a code (confirm, forgery report, list request)."""

from __future__ import annotations

import logging
import os
import time
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from fswl import config, history
from fswl.errors import BadCode, BadSender, FswlError, VerifyRefused
from fswl.names import IPAddress, parse_sender
from fswl.verify import codes, mail, screen
from fswl.verify.caps import Caps, Limits
from fswl.verify.pending import Pending, Record
from fswl.verify.settings import VerifySettings

if TYPE_CHECKING:
    from email.message import EmailMessage

    from fswl.home import Home

log = logging.getLogger(__name__)

CONFIRM, IPV6, IPV6_SMS = "confirm", "ipv6", "ipv6-sms"
SMS_DIGITS = 6
SMS_TRIES = 5
#: Tokens whose wrong SMS answers are remembered (per process).
SMS_TRIES_REMEMBERED = 10000
#: Used records are kept this long past their expiry, so a replay is told "already used".
KEEP_USED_SECONDS = 7 * 24 * 3600


def load_settings(home: Home) -> VerifySettings:
    """[verify], where ``from`` (a Python keyword) stands for from_address."""
    table = dict(home.config.get("verify", {}) or {})
    if "from" in table:
        table["from_address"] = table.pop("from")
    return config.section({"verify": table}, "verify", VerifySettings, str(home.config_path))


def verify_dir(home: Home) -> Path:
    """Where the key, the caps database and the event log live."""
    return home.root / "verify"


class Verifier:
    """Challenges and confirmations for one home; safe to share between threads."""

    def __init__(self, home: Home, settings: VerifySettings, zone: str, base_url: str,
                 clock: Callable[[], float] = time.time,
                 send: Callable[[VerifySettings, EmailMessage], None] = mail.send) -> None:
        self.home = home
        self.settings = settings
        self.zone = settings.zone_or(zone)
        self.base_url = base_url.rstrip("/")
        self.clock = clock
        self.send = send
        directory = verify_dir(home)
        self.key = codes.load_key(directory / "key")
        self.pending = Pending(home.pending)
        self.caps = Caps(directory / "state.sqlite", Limits(
            settings.pair_period_seconds, settings.per_address_per_hour, settings.per_domain_per_hour,
            settings.global_per_hour), clock)
        self.events_path = directory / "events.log"
        self._sms_tries: OrderedDict[str, int] = OrderedDict()

    # -- challenges --------------------------------------------------------

    def challenge(self, sender: str, address: IPAddress, purpose: str = CONFIRM, relay: str | None = None) -> str | None:
        """Mail a challenge for (sender, relay); None when sent, else why not (counted either way)."""
        code, refused = self._open(sender, address, purpose, relay)
        if refused is not None:
            return refused
        assert code is not None
        record = self.pending.get(codes.decode(code).id)
        message = mail.build(self.settings, mail.Challenge(purpose, record.sender, record.relay, code, record.expires),
                             self.zone, self.base_url, self.settings.pair_period_seconds)
        try:
            self.send(self.settings, message)
        except VerifyRefused as exc:
            self.pending.drop(record.id)
            self.caps.count("send_failed")
            log.warning("verify: %s", exc)
            return "sending failed"
        self.caps.count("challenges_sent")
        self._event("challenged", record)
        return None

    def sms_challenge(self, sender: str, network: str, address: IPAddress, number: str) -> tuple[str | None, str | None]:
        """Send an SMS code through the configured command: (token for the form, None) or (None, why not)."""
        import subprocess

        if not self.settings.sms_command:
            return None, "SMS is not set up here"
        token, refused = self._open(sender, address, IPV6_SMS, network)
        if refused is not None:
            return None, refused
        assert token is not None
        try:
            subprocess.run([*self.settings.sms_command, number, self.sms_code(token)], check=True,
                           timeout=self.settings.sms_timeout, stdin=subprocess.DEVNULL, capture_output=True)
        except (OSError, subprocess.SubprocessError) as exc:
            self.pending.drop(codes.decode(token).id)
            self.caps.count("send_failed")
            log.warning("verify: the SMS command failed: %s", exc)
            return None, "sending the SMS failed"
        self.caps.count("sms_sent")
        return token, None

    def sms_code(self, token: str) -> str:
        digest = codes.derive(self.key, "sms", token)
        return str(int.from_bytes(digest[:8], "big") % 10 ** SMS_DIGITS).zfill(SMS_DIGITS)

    def _open(self, sender: str, address: IPAddress, purpose: str, relay: str | None) -> tuple[str | None, str | None]:
        """Screen, check SPF, take a cap slot and write the pending record: (code, None) or (None, why not)."""
        refused = self._screen(sender, address)
        if refused is None:
            sender = parse_sender(sender)
            refused = self.caps.take(sender, relay or str(address))
        if refused is not None:
            self.caps.count("refused: " + refused)
            log.info("verify: no challenge to %s via %s: %s", sender, address, refused)
            return None, refused
        now = self.clock()
        record = Record(codes.new_id(), purpose, sender, relay or str(address), now,
                        int(now + self.settings.code_ttl_seconds))
        self.pending.put(record)
        return codes.sign(self.key, record.id, record.expires, purpose, record.sender, record.relay), None

    def _screen(self, sender: str, address: IPAddress) -> str | None:
        try:
            sender = parse_sender(sender)
        except BadSender:
            return "unparsable sender"
        refused = screen.refusal(self.settings, sender, self.zone)
        if refused is None and self.settings.spf_refuse:
            result = screen.spf_result(self.settings, sender, address)
            if result in self.settings.spf_refuse:
                refused = f"SPF {result}"
            elif result == "pass":  # evidence for reputation quotas and correlation
                history.record_spf_pass(self.home, sender, str(address))
        return refused

    # -- codes -------------------------------------------------------------

    def lookup(self, text: str, purposes: tuple[str, ...] = (CONFIRM, IPV6)) -> Record:
        """The record a code stands for; BadCode with a message for the sender otherwise."""
        code = codes.decode(text)
        record = self.pending.get(code.id)
        if (record.purpose not in purposes or record.expires != code.expires
                or not codes.check(self.key, code, record.purpose, record.sender, record.relay)):
            raise BadCode("this code is not valid here (it was changed, or made by another whitelist)")
        if code.expires < self.clock():
            when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(code.expires))
            raise BadCode(f"this code expired on {when}; a new one is mailed when your server retries")
        return record

    def confirm(self, text: str, via: str, purposes: tuple[str, ...] = (CONFIRM, IPV6)) -> Record:
        """Use a code: list its (sender, relay) through the store, log it, and return the record."""
        record = self.pending.take(self.lookup(text, purposes).id)
        try:
            self.home.whitelist.add(record.sender, record.relay)
        except FswlError:
            log.exception("verify: could not list %s for %s", record.sender, record.relay)
            raise
        self.caps.count("confirmed")
        self._event(f"confirmed via {via}", record)
        history.record_confirmation(self.home, record.sender, record.relay)
        log.warning("verify: listed %s for %s (confirmed via %s)", record.sender, record.relay, via)
        return record

    def confirm_sms(self, token: str, answer: str) -> Record:
        """Check the digits the user typed against the token's SMS code, then list the network."""
        record = self.lookup(token, (IPV6_SMS,))
        tries = self._sms_tries.get(record.id, 0)
        if tries >= SMS_TRIES:
            raise BadCode("too many wrong answers for this code; start again")
        if answer.strip() != self.sms_code(token):
            self._sms_tries[record.id] = tries + 1
            self._sms_tries.move_to_end(record.id)
            while len(self._sms_tries) > SMS_TRIES_REMEMBERED:
                self._sms_tries.popitem(last=False)
            raise BadCode("that is not the code we sent; try again")
        return self.confirm(token, "sms", (IPV6_SMS,))

    def report_forgery(self, text: str) -> Record:
        """"I did not send this": use the code up and block challenges to the address for a while."""
        record = self.pending.take(self.lookup(text).id)
        self.caps.block(record.sender, self.settings.forgery_block_days * 86400)
        self.caps.count("forgery_reports")
        self._event("reported forged", record)
        history.record_abuse(self.home, record.relay, record.sender)
        log.warning("verify: %s reported mail via %s as forged; no challenges to it for %g days",
                    record.sender, record.relay, self.settings.forgery_block_days)
        return record

    def request_list(self, text: str) -> Record:
        """"This relay is a mailing-list server": record the request (the code stays usable)."""
        record = self.lookup(text)
        self.caps.count("list_requests")
        self._event("list server reported", record)
        return record

    # -- upkeep ------------------------------------------------------------

    def prune(self) -> int:
        return self.pending.prune(self.clock(), KEEP_USED_SECONDS)

    def stats(self) -> dict[str, object]:
        waiting = sum(1 for r in self.pending.waiting() if r.expires >= self.clock())
        return {"pending": waiting, "caps": self.caps.usage(), "counts": self.caps.counters()}

    def close(self) -> None:
        self.caps.close()

    def _event(self, what: str, record: Record) -> None:
        """One line in verify/events.log: when, what, sender, relay, purpose."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.clock()))
        line = f"{stamp} {what} {record.sender} {record.relay} {record.purpose}\n"
        fd = os.open(self.events_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        try:
            os.write(fd, line.encode("utf-8", "surrogateescape"))
        finally:
            os.close(fd)
