"""[smtp] in fswl.toml."""

from __future__ import annotations

from dataclasses import dataclass

from fswl import defaults


@dataclass(frozen=True)
class SmtpSettings:
    """[smtp]: where the confirmation mail server listens and what it takes."""

    listen: str = defaults.SMTP_LISTEN
    #: The name in the greeting; default the zone.
    hostname: str = ""
    #: Larger messages are refused: a confirmation is a short reply.
    max_message_bytes: int = 256 * 1024
    max_recipients: int = 10
    #: Connections at once; more are answered 421 and closed.
    max_connections: int = 100
    #: Offer STARTTLS with this certificate and key (PEM files).
    tls_cert: str = ""
    tls_key: str = ""
    #: Mail to postmaster@ZONE is kept in this Maildir (relative to the home), at most this many messages.
    postmaster_maildir: str = "verify/postmaster"
    postmaster_keep: int = 1000
