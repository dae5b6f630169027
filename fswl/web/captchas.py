"""A self-hosted image CAPTCHA: the answer is derived from a signed token, so no state is kept but used tokens.

Images come from the `captcha` package.  The test-only answer setting makes
every CAPTCHA answerable by a test driving a real browser.
"""

from __future__ import annotations

import hmac
import os
import time
from collections import OrderedDict

from fswl.verify.codes import derive

#: Letters and digits that are hard to confuse in an image (no 0/O, 1/I/L).
ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
MAX_USED = 50000
#: Image size: a margin plus this many pixels per character, and the height.
IMAGE_MARGIN, IMAGE_CHAR_WIDTH, IMAGE_HEIGHT = 60, 32, 80


class Captchas:
    """Issue tokens, draw their images, check answers (each token answers once)."""

    def __init__(self, key: bytes, length: int, seconds: int, test_answer: str = "") -> None:
        self.key = key
        self.length = length
        self.seconds = seconds
        self.test_answer = test_answer.upper()
        self.used: OrderedDict[str, float] = OrderedDict()

    def issue(self) -> str:
        nonce = os.urandom(8).hex()
        expires = int(time.time()) + self.seconds
        return f"{nonce}-{expires}-{self._mac(nonce, expires)}"

    def answer(self, token: str) -> str | None:
        """The text in this token's image, or None for a token that is not ours or has expired."""
        parts = token.split("-")
        if len(parts) != 3 or not parts[1].isdigit():
            return None
        nonce, expires = parts[0], int(parts[1])
        if expires < time.time() or not hmac.compare_digest(parts[2], self._mac(nonce, expires)):
            return None
        if self.test_answer:
            return self.test_answer
        digest = derive(self.key, "captcha-text", nonce)
        return "".join(ALPHABET[b % len(ALPHABET)] for b in digest[:self.length])

    def image(self, token: str) -> bytes | None:
        """The PNG for a token (CPU work: call it off the event loop)."""
        from captcha.image import ImageCaptcha

        text = self.answer(token)
        if text is None:
            return None
        return ImageCaptcha(width=IMAGE_MARGIN + IMAGE_CHAR_WIDTH * len(text), height=IMAGE_HEIGHT).generate(text).getvalue()

    def solve(self, token: str, attempt: str) -> bool:
        """Whether ``attempt`` answers ``token``; a token is used up by any attempt."""
        text = self.answer(token)
        if text is None or token in self.used:
            return False
        self.used[token] = time.time() + self.seconds
        now = time.time()
        while self.used and (len(self.used) > MAX_USED or next(iter(self.used.values())) < now):
            self.used.popitem(last=False)
        return hmac.compare_digest(attempt.strip().upper().replace(" ", "").encode("utf-8", "replace"), text.encode())

    def _mac(self, nonce: str, expires: int) -> str:
        return derive(self.key, "captcha", f"{nonce}-{expires}").hex()[:24]
