"""[verify] in fswl.toml: challenges, the smarthost, caps and screening."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class VerifySettings:
    """[verify]: whether misses are challenged, how mail is sent, and the caps."""

    #: Challenge unlisted senders seen by the policy service (and by DNS when
    #: [dns] challenge_on_miss is on).
    enabled: bool = False
    #: The zone of the reply address confirm-<code>@ZONE; default [dns] zone.
    zone: str = ""
    #: The From of challenge mail.
    from_address: str = ""
    #: Envelope sender of challenge mail; "" is the null sender <>, so that
    #: nothing ever bounces or auto-replies back to a (possibly forged) address.
    envelope_from: str = ""
    #: HOST:PORT of the mail server that sends challenge mail for us.
    smarthost: str = "127.0.0.1:25"
    #: "none", "starttls" (the usual port 587) or "ssl" (port 465).
    smarthost_tls: str = "none"
    #: Check the smarthost's certificate (leave on; off only for a private CA you cannot install).
    smarthost_tls_verify: bool = True
    #: Extra CA bundle for the smarthost's certificate.
    smarthost_ca_file: str = ""
    #: AUTH credentials; the password may instead live in a file readable only by fswl.
    smarthost_user: str = ""
    smarthost_password: str = ""
    smarthost_password_file: str = ""
    smarthost_timeout: float = 30.0
    #: How long a code stays valid.
    code_ttl_seconds: int = 3 * 24 * 3600
    #: At most one challenge per (sender, relay) in this period.
    pair_period_seconds: int = 24 * 3600
    #: Hourly caps (a sliding hour): per address, per sender domain, in all.
    per_address_per_hour: int = 3
    per_domain_per_hour: int = 20
    global_per_hour: int = 200
    #: "I did not send this": no challenge to that address for this long.
    forgery_block_days: float = 30.0
    #: Local parts with one of these are VERP/tagged and never challenged.
    verp_separators: str = "+="
    #: Local parts this long or longer are treated as VERP too.
    verp_min_length: int = 40
    #: Local parts that are never challenged (role and bounce addresses).
    never_local_parts: tuple = field(default_factory=lambda: (
        "postmaster", "mailer-daemon", "abuse", "noreply", "no-reply", "bounce", "bounces", "root"))
    #: SPF results (pyspf) for which no challenge is sent; [] switches SPF off.
    spf_refuse: tuple = field(default_factory=lambda: ("fail",))
    #: Nameservers for SPF lookups (IP or IP:PORT); [] means the system's.
    spf_nameservers: tuple = field(default_factory=tuple)
    #: Seconds one SPF evaluation may take; on timeout the challenge goes ahead.
    spf_timeout: float = 5.0
    #: Misses waiting for the sender thread; more are dropped (and counted).
    queue_size: int = 1000
    #: Threads that screen and mail queued misses (SPF lookups wait on DNS, so a few run at once).
    workers: int = 4
    #: Command run as COMMAND NUMBER CODE to send an SMS code ("" = no SMS).
    sms_command: tuple = field(default_factory=tuple)
    sms_timeout: float = 20.0

    def zone_or(self, dns_zone: str) -> str:
        return (self.zone or dns_zone).rstrip(".").lower()
