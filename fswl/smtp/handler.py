"""The aiosmtpd handler: only confirm-<code>@ZONE and postmaster@ZONE take mail; nothing is relayed."""

from __future__ import annotations

import asyncio
import email
import email.policy
import logging
import mailbox
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fswl.errors import BadCode, FswlError
from fswl.verify.verifier import Verifier

if TYPE_CHECKING:
    from fswl.smtp.settings import SmtpSettings

log = logging.getLogger(__name__)

CONFIRM_PREFIX = "confirm-"
POSTMASTER = "postmaster"
#: Of a reply, this much is parsed for its headers.
SEARCH_BYTES = 64 * 1024
#: Precedence values and headers that mark mail sent by a machine (vacation programs, lists).
AUTOMATIC_PRECEDENCE = frozenset({"bulk", "junk", "list", "auto_reply"})
AUTOMATIC_HEADERS = ("X-Autoreply", "X-Autorespond", "X-Auto-Response-Suppress", "X-Vacation")


class ConfirmHandler:
    """Confirms the code in a confirm-<code>@ recipient; keeps mail to postmaster@ (which never confirms)."""

    def __init__(self, verifier: Verifier, settings: SmtpSettings, maildir: Path) -> None:
        self.verifier = verifier
        self.zone = verifier.zone
        self.settings = settings
        self.maildir = maildir

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]) -> str:
        local, _, domain = address.rpartition("@")
        local = local.lower()
        if domain.lower().rstrip(".") != self.zone:
            return f"550 5.7.1 relaying denied: this server takes mail only for confirm-<code>@{self.zone}"
        if len(envelope.rcpt_tos) >= self.settings.max_recipients:
            return "452 4.5.3 too many recipients"
        if local == POSTMASTER:
            envelope.rcpt_tos.append(address)
            return "250 2.1.5 OK"
        if not local.startswith(CONFIRM_PREFIX):
            return f"550 5.1.1 no such mailbox: only confirm-<code>@{self.zone} and postmaster@{self.zone} take mail here"
        if not envelope.mail_from or envelope.mail_from == "<>":
            return "550 5.7.1 a bounce does not confirm anything"
        try:
            await asyncio.to_thread(self.verifier.lookup, local[len(CONFIRM_PREFIX):])
        except BadCode as exc:
            return f"550 5.7.1 {exc}"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        """postmaster@ only keeps mail; a confirm-<code>@ recipient is the one way to confirm by mail."""
        content: bytes = envelope.original_content or envelope.content or b""
        locals_ = [rcpt.rpartition("@")[0].lower() for rcpt in envelope.rcpt_tos]
        found = [local[len(CONFIRM_PREFIX):] for local in locals_ if local.startswith(CONFIRM_PREFIX)]
        if POSTMASTER in locals_ and not await asyncio.to_thread(self._keep, content):
            return "452 4.2.2 the postmaster's mailbox is full; please try again later"
        if not found:
            return "250 2.0.0 OK: kept for the postmaster"
        message = email.message_from_bytes(content[:SEARCH_BYTES], policy=email.policy.default)
        if is_automatic(message):
            return "550 5.7.1 an auto-reply does not confirm anything; reply by hand or use the link"
        return await self._confirm(found)

    async def _confirm(self, found: list[str]) -> str:
        done, problems = [], []
        for code in found:
            try:
                record = await asyncio.to_thread(self.verifier.confirm, code, "smtp")
            except BadCode as exc:
                problems.append(str(exc))
            except FswlError as exc:
                log.warning("smtp: confirming failed: %s", exc)
                return "451 4.3.0 confirmation failed on our side; please try again later"
            else:
                done.append(f"{record.sender} is listed for {record.relay}")
        if done:
            return "250 2.0.0 confirmed: " + "; ".join(done)
        return f"550 5.7.1 {problems[0]}"

    def _keep(self, content: bytes) -> bool:
        """File mail to postmaster@ in the Maildir while there is room (a flood fills it, not the disk); False if not kept."""
        try:
            box = mailbox.Maildir(self.maildir, create=True)
            if len(box) >= self.settings.postmaster_keep:
                log.warning("smtp: %s holds %d messages; mail to postmaster@ refused", self.maildir, len(box))
                return False
            box.add(content)
        except OSError as exc:
            log.warning("smtp: cannot keep mail for the postmaster in %s: %s", self.maildir, exc)
            return False
        return True


def is_automatic(message: email.message.Message) -> bool:
    """Whether a message says it was sent by a machine (RFC 3834 and the older vacation/list conventions).

    An auto-responder answering a challenge to a forged address must not confirm the forger's pair.
    """
    if str(message.get("Auto-Submitted", "no")).strip().lower() != "no":
        return True
    if str(message.get("Precedence", "")).strip().lower() in AUTOMATIC_PRECEDENCE:
        return True
    return any(name in message for name in AUTOMATIC_HEADERS)
