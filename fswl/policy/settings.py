"""[policy] in fswl.toml."""

from __future__ import annotations

from dataclasses import dataclass, field

from fswl import defaults


@dataclass(frozen=True)
class PolicySettings:
    """[policy]: where the service listens and how it answers."""

    #: HOST:PORT, [V6]:PORT, or unix:/path/to/socket
    listen: str = defaults.POLICY_LISTEN
    #: The answer for an unlisted sender. A numeric 451 reaches the client as
    #: 451 (Postfix turns DEFER_IF_PERMIT into its defer_code, 450 by default).
    defer_action: str = "451 4.7.1 sender not yet validated in global whitelist"
    #: Answer unlisted IPv6 relays with a hard 550 and the self-service URL.
    reject_ipv6: bool = False
    reject_action: str = "550 5.7.1 sender not validated in global whitelist"
    #: Add "X-FSWL: listed ..." to accepted mail (action=PREPEND).
    prepend_header: bool = False
    #: Let bounces (empty sender) and postmaster@ through, as RFC 5321 expects.
    pass_bounces: bool = True
    pass_postmaster: bool = True
    #: Never check mail from these clients (IP or CIDR), for these recipient
    #: domains, or from these sender domains.
    exempt_clients: tuple = field(default_factory=lambda: ("127.0.0.0/8", "::1/128"))
    exempt_recipient_domains: tuple = field(default_factory=tuple)
    exempt_sender_domains: tuple = field(default_factory=tuple)
    #: Local parts with one of these separators are VERP/tagged: matched only
    #: against *@domain entries and never challenged one by one.
    verp_separators: str = "+="
    #: Local parts longer than this are treated as VERP too.
    verp_min_length: int = 40
    #: Connections held at once, in total and from one client address (TCP
    #: only; Postfix holds one per smtpd process); over either, a new
    #: connection is closed at once. 0: no cap.
    connections: int = 2000
    connections_per_client: int = 500
