"""Challenge codes: HMAC-signed, expiring, bound to (purpose, sender, relay); one per pending record.

A code is the lowercase base32 of ``id | expires | mac``: the id names the
pending record (which holds sender, relay and purpose), the mac covers all of
them, so a code cannot be moved to another pair, its expiry cannot be
stretched, and a code made with another installation's key is refused.
It fits in one local part: ``confirm-<code>@ZONE`` is under 64 octets.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import struct
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from fswl.errors import BadCode

ID_BYTES = 10
MAC_BYTES = 10
KEY_BYTES = 32
_STAMP = struct.Struct(">I")
CODE_CHARS = -(-(ID_BYTES + _STAMP.size + MAC_BYTES) * 8 // 5)
#: A code as it appears in an address, a URL, a subject or a body.
CODE_PATTERN = re.compile(rf"\b([a-z2-7]{{{CODE_CHARS}}})\b", re.IGNORECASE)


@dataclass(frozen=True)
class Code:
    """A decoded code: which record, until when, and its mac (not yet checked)."""

    id: str  #: hex; the pending record's file name
    expires: int
    mac: bytes


def load_key(path: Path) -> bytes:
    """The signing key, made on first use (0600); concurrent first runs agree on one key."""
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".key-")
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, os.urandom(KEY_BYTES))
        os.fsync(fd)
        os.close(fd)
        try:
            os.link(temp, path)  # never replaces: a key someone else made first wins
        except FileExistsError:
            pass
    finally:
        os.unlink(temp)
    return _read_key(path)


def _read_key(path: Path) -> bytes:
    key = path.read_bytes()
    if len(key) < KEY_BYTES:
        raise OSError(f"{path} is shorter than {KEY_BYTES} bytes; remove it to make a new key")
    return key


def new_id() -> str:
    return os.urandom(ID_BYTES).hex()


def sign(key: bytes, record_id: str, expires: int, purpose: str, sender: str, relay: str) -> str:
    """The code for a pending record."""
    raw = bytes.fromhex(record_id) + _STAMP.pack(expires)
    mac = _mac(key, raw, purpose, sender, relay)
    return base64.b32encode(raw + mac).decode("ascii").rstrip("=").lower()


def decode(text: str) -> Code:
    """Split a code into its parts; raises BadCode for anything that is not one."""
    text = text.strip().upper()
    if len(text) != CODE_CHARS or not text.isalnum():
        raise BadCode("not a confirmation code")
    try:
        raw = base64.b32decode(text + "=" * (-len(text) % 8))
    except (binascii.Error, ValueError):
        raise BadCode("not a confirmation code") from None
    record_id = raw[:ID_BYTES].hex()
    (expires,) = _STAMP.unpack(raw[ID_BYTES:ID_BYTES + _STAMP.size])
    return Code(record_id, expires, raw[ID_BYTES + _STAMP.size:])


def check(key: bytes, code: Code, purpose: str, sender: str, relay: str) -> bool:
    """Whether the code's mac matches the record it names."""
    raw = bytes.fromhex(code.id) + _STAMP.pack(code.expires)
    return hmac.compare_digest(code.mac, _mac(key, raw, purpose, sender, relay))


def format_expiry(expires: float) -> str:
    """When a code expires, as mail and pages say it."""
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(expires))


def derive(key: bytes, label: str, data: str) -> bytes:
    """A keyed digest for other uses of the key (CSRF tokens, CAPTCHA answers, SMS codes)."""
    return hmac.new(key, f"fswl-{label}\0{data}".encode("utf-8", "surrogateescape"), hashlib.sha256).digest()


def _mac(key: bytes, raw: bytes, purpose: str, sender: str, relay: str) -> bytes:
    message = b"fswl-code\0" + raw + f"\0{purpose}\0{sender}\0{relay}".encode("utf-8", "surrogateescape")
    return hmac.new(key, message, hashlib.sha256).digest()[:MAC_BYTES]
