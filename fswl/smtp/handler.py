"""The aiosmtpd handler: only confirm-<code>@ZONE and postmaster@ZONE take mail; nothing is relayed."""

from __future__ import annotations

import asyncio
import email
import email.policy
import logging
import mailbox
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fswl.errors import BadCode, FswlError
from fswl.verify.codes import CODE_PATTERN
from fswl.verify.verifier import Verifier

if TYPE_CHECKING:
    from fswl.smtp.settings import SmtpSettings

log = logging.getLogger(__name__)

CONFIRM_PREFIX = "confirm-"
POSTMASTER = "postmaster"
#: Of a message to postmaster@, this much is searched for a code.
SEARCH_BYTES = 64 * 1024
#: Codes tried from one message's subject and body.
MAX_CODES = 3


class ConfirmHandler:
    """Confirms codes found in the recipient, or in the subject/body of mail to postmaster@."""

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
            await _in_thread(self.verifier.lookup, local[len(CONFIRM_PREFIX):])
        except BadCode as exc:
            return f"550 5.7.1 {exc}"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        content: bytes = envelope.original_content or envelope.content or b""
        message = email.message_from_bytes(content[:SEARCH_BYTES], policy=email.policy.default)
        locals_ = [rcpt.rpartition("@")[0].lower() for rcpt in envelope.rcpt_tos]
        found = [local[len(CONFIRM_PREFIX):] for local in locals_ if local.startswith(CONFIRM_PREFIX)]
        to_postmaster = POSTMASTER in locals_
        if to_postmaster:
            await _in_thread(self._keep, content)
        auto = str(message.get("Auto-Submitted", "no")).strip().lower()
        if found and auto != "no":
            return "550 5.7.1 an auto-reply does not confirm anything; reply by hand or use the link"
        if not found and to_postmaster and auto == "no" and envelope.mail_from not in ("", "<>"):
            found = _codes_in(message)
        if not found:
            return "250 2.0.0 OK: kept for the postmaster"
        return await self._confirm(found)

    async def _confirm(self, found: list[str]) -> str:
        done, problems = [], []
        for code in found:
            try:
                record = await _in_thread(self.verifier.confirm, code, "smtp")
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

    def _keep(self, content: bytes) -> None:
        """File mail to postmaster@ in the Maildir, while there is room (a flood fills it, not the disk)."""
        try:
            box = mailbox.Maildir(self.maildir, create=True)
            if len(box) < self.settings.postmaster_keep:
                box.add(content)
            else:
                log.warning("smtp: %s holds %d messages; mail to postmaster@ not kept", self.maildir, len(box))
        except OSError as exc:
            log.warning("smtp: cannot keep mail for the postmaster in %s: %s", self.maildir, exc)


def _codes_in(message: email.message.Message) -> list[str]:
    """Codes in the subject and plain-text body; a reply quotes the challenge, so they are there."""
    text = str(message.get("Subject", ""))
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            try:
                text += "\n" + str(part.get_content())[:SEARCH_BYTES]
            except (LookupError, ValueError):
                continue
    codes: list[str] = []
    for match in CODE_PATTERN.finditer(text):
        code = match.group(1).lower()
        if code not in codes:
            codes.append(code)
        if len(codes) >= MAX_CODES:
            break
    return codes


async def _in_thread(function: Any, *args: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(None, partial(function, *args))
