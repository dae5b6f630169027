"""A self-hosted image CAPTCHA: the answer is derived from a signed token; used tokens are kept in SQLite.

Images come from the `captcha` package.  A token answers once, in every
process and across restarts: its use is a row in the caps database
(verify/state.sqlite), kept until the token has expired.  The test-only
answer setting makes every CAPTCHA answerable by a test driving a real browser.
"""

from __future__ import annotations

import hmac
import os
import re
import time

from captcha.image import ImageCaptcha

from fswl.verify.caps import Caps
from fswl.verify.codes import derive

#: Letters and digits that are hard to confuse in an image (no 0/O, 1/I/L).
ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
NONCE_BYTES = 8
MAC_CHARS = 24
#: A token is NONCE-EXPIRES-MAC, in hex and decimal digits only; anything else is refused before any work.
TOKEN = re.compile(rf"([0-9a-f]{{{2 * NONCE_BYTES}}})-([0-9]{{1,12}})-([0-9a-f]{{{MAC_CHARS}}})\Z")
#: Image size: a margin plus this many pixels per character, and the height.
IMAGE_MARGIN, IMAGE_CHAR_WIDTH, IMAGE_HEIGHT = 60, 32, 80


class Captchas:
    """Issue tokens, draw their images, check answers (each token answers once)."""

    def __init__(self, key: bytes, caps: Caps, length: int, seconds: int, test_answer: str = "") -> None:
        self.key = key
        self.caps = caps
        self.length = length
        self.seconds = seconds
        self.test_answer = test_answer.upper()

    def issue(self) -> str:
        nonce = os.urandom(NONCE_BYTES).hex()
        expires = int(time.time()) + self.seconds
        return f"{nonce}-{expires}-{self._mac(nonce, expires)}"

    def answer(self, token: str) -> str | None:
        """The text in this token's image, or None for a token that is not ours or has expired."""
        match = TOKEN.match(token)
        if match is None:
            return None
        nonce, expires, mac = match.group(1), int(match.group(2)), match.group(3)
        if expires < time.time() or not hmac.compare_digest(mac.encode(), self._mac(nonce, expires).encode()):
            return None
        if self.test_answer:
            return self.test_answer
        digest = derive(self.key, "captcha-text", nonce)
        return "".join(ALPHABET[b % len(ALPHABET)] for b in digest[:self.length])

    def image(self, token: str) -> bytes | None:
        """The PNG for a token (CPU work: call it off the event loop)."""
        text = self.answer(token)
        if text is None:
            return None
        return ImageCaptcha(width=IMAGE_MARGIN + IMAGE_CHAR_WIDTH * len(text), height=IMAGE_HEIGHT).generate(text).getvalue()

    def solve(self, token: str, attempt: str) -> bool:
        """Whether ``attempt`` answers ``token``; a token is used up by any attempt (SQLite: call off the loop)."""
        text = self.answer(token)
        if text is None or self.caps.tally("captcha:" + token, self.seconds) != 1:
            return False
        return hmac.compare_digest(attempt.strip().upper().replace(" ", "").encode("utf-8", "replace"), text.encode())

    def _mac(self, nonce: str, expires: int) -> str:
        return derive(self.key, "captcha", f"{nonce}-{expires}").hex()[:MAC_CHARS]
