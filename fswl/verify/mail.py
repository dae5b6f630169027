"""The challenge mail (plain, honest text) and sending it through the smarthost with smtplib.

Nothing in a message comes from whoever caused it except the address it goes
to and the relay IP: no HELO, no client name, no recipient, no subject. The
address is one the screen found plain (dot-atom, ASCII), so it cannot carry
a header or a line break.
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from datetime import datetime, timezone
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from fswl.errors import VerifyRefused
from fswl.verify.codes import format_expiry
from fswl.verify.settings import VerifySettings

CONFIRM_TEXT = """\
Hello,

Mail from {sender} was just offered to a mail server that checks
senders against the fswl global whitelist. It came from the mail server
at IP address {ip}, which is not yet confirmed for this sender, so
the message was deferred: your mail server will retry it by itself.

If you sent that mail, confirm it once, and {ip} is listed for
{sender} at every site that uses this whitelist. Either open

  {confirm_url}

and press the button, or reply to this message (it goes to
{reply_address}). Your mail server's next retry is then accepted.
Do not reply to this message if you did not send the mail: a reply confirms.

If you did NOT send any mail just now, someone used your address as the
sender. Nothing else happens unless you act; to stop these messages to your
address, open

  {forged_url}

If {ip} is a mailing-list server that sends on behalf of many
people, please forward this link to its postmaster, who can list the
whole list at once:

  {list_url}

This code expires on {expires}. This is the only message you get for this
sender and server in the next {period}.

-- 
the fswl whitelist at {zone}
"""

IPV6_TEXT = """\
Hello,

Someone (probably you) asked on the web form at {base_url}/ipv6 to list
{sender} as a sender for the IPv6 network {ip}. If that was you, open

  {confirm_url}

and press the button; the network is listed for {sender} at once.
Do not reply to this message if you did not ask: a reply confirms.

If it was not you, ignore this message, or open

  {forged_url}

to stop such messages to your address.

This code expires on {expires}.

-- 
the fswl whitelist at {zone}
"""

SUBJECTS = {
    "confirm": "Please confirm mail you sent via {ip}",
    "ipv6": "Please confirm listing the IPv6 network {ip}",
}


@dataclass(frozen=True)
class Challenge:
    """What one message says; every field is ours except sender and ip."""

    purpose: str
    sender: str
    ip: str
    code: str
    expires: int


def build(settings: VerifySettings, challenge: Challenge, zone: str, base_url: str, period_seconds: int) -> EmailMessage:
    """The challenge message, ready for the smarthost."""
    reply_address = f"confirm-{challenge.code}@{zone}"
    fields = {
        "sender": challenge.sender,
        "ip": challenge.ip,
        "zone": zone,
        "base_url": base_url,
        "reply_address": reply_address,
        "confirm_url": f"{base_url}/confirm/{challenge.code}",
        "forged_url": f"{base_url}/forged/{challenge.code}",
        "list_url": f"{base_url}/list/{challenge.code}",
        "expires": format_expiry(challenge.expires),
        "period": duration(period_seconds),
    }
    text = IPV6_TEXT if challenge.purpose == "ipv6" else CONFIRM_TEXT
    message = EmailMessage()
    message["From"] = settings.from_address or f"whitelist@{zone}"
    message["To"] = challenge.sender
    message["Reply-To"] = reply_address
    message["Subject"] = SUBJECTS.get(challenge.purpose, SUBJECTS["confirm"]).format(ip=challenge.ip)
    message["Date"] = format_datetime(datetime.now(timezone.utc))
    message["Message-ID"] = make_msgid(domain=zone)
    # RFC 3834: machine-made; well-behaved auto-responders stay quiet.
    message["Auto-Submitted"] = "auto-generated"
    message["X-Auto-Response-Suppress"] = "All"
    message["Precedence"] = "bulk"  # older vacation programs do not answer bulk mail
    message.set_content(text.format(**fields), charset="us-ascii", cte="7bit")
    return message


def send(settings: VerifySettings, message: EmailMessage) -> None:
    """Hand one message to the smarthost; VerifyRefused with the reason if it will not take it."""
    host, port = smarthost_address(settings.smarthost)
    mode = settings.smarthost_tls
    if mode not in ("none", "starttls", "ssl"):
        raise VerifyRefused(f"verify.smarthost_tls must be none, starttls or ssl, not {mode!r}")
    context = _tls_context(settings) if mode != "none" else None
    try:
        if mode == "ssl":
            client: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=settings.smarthost_timeout, context=context)
        else:
            client = smtplib.SMTP(host, port, timeout=settings.smarthost_timeout)
        with client:
            if mode == "starttls":
                client.starttls(context=context)
            if settings.smarthost_user:
                client.login(settings.smarthost_user, _password(settings))
            client.send_message(message, from_addr=settings.envelope_from or "<>",
                                to_addrs=[str(message["To"])])
    except (smtplib.SMTPException, OSError) as exc:
        raise VerifyRefused(f"smarthost {settings.smarthost} refused the challenge: {exc}") from exc


def smarthost_address(text: str) -> tuple[str, int]:
    """``host``, ``host:port`` or ``[v6]:port`` -> (host, port); port 25 when not given."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.lstrip(":") or "25"
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    else:
        host, port = text, "25"
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise VerifyRefused(f"verify.smarthost must be HOST or HOST:PORT, not {text!r}")
    return host, int(port)


def _tls_context(settings: VerifySettings) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=settings.smarthost_ca_file or None)
    if not settings.smarthost_tls_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _password(settings: VerifySettings) -> str:
    if settings.smarthost_password_file:
        with open(settings.smarthost_password_file) as handle:
            return handle.read().strip()
    return settings.smarthost_password


def duration(seconds: int) -> str:
    """"3 days", "1 hour": a period as the mail and the pages say it."""
    if seconds % 86400 == 0 and seconds > 86400:
        days = seconds // 86400
        return f"{days} day" + ("s" if days != 1 else "")
    hours = max(1, round(seconds / 3600))
    return f"{hours} hour" + ("s" if hours != 1 else "")
