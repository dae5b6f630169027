"""Optional ed25519 signatures on batches, so a forwarding node cannot forge another's writes.

The origin signs everything before the last line of a batch and appends
``sig ed25519 BASE64``.  A node with ``[sync] require_signatures = true``
refuses a batch whose origin has no key in ``peers/keys/ORIGIN.pub``, or
whose signature is missing or wrong.
"""

from __future__ import annotations

import base64
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from fswl.errors import BadConfig, BadRecord
from fswl.sync.records import SIG_PREFIX


class Signer:
    """Signs this node's batches with an OpenSSH ed25519 private key."""

    def __init__(self, key_file: str | Path) -> None:
        try:
            key = serialization.load_ssh_private_key(Path(key_file).read_bytes(), password=None)
        except (OSError, ValueError) as exc:
            raise BadConfig(str(key_file), f"cannot read an unencrypted OpenSSH ed25519 private key: {exc}") from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise BadConfig(str(key_file), "sync.signing_key must be an ed25519 key (ssh-keygen -t ed25519)")
        self.key = key

    def signature_line(self, body: bytes) -> bytes:
        return SIG_PREFIX + base64.b64encode(self.key.sign(body)) + b"\n"


class Keyring:
    """Public keys of origins, read from ``peers/keys/ORIGIN.pub`` (OpenSSH format)."""

    def __init__(self, directory: str | Path, required: bool) -> None:
        self.directory = Path(directory)
        self.required = required
        self._keys: dict[str, Ed25519PublicKey | None] = {}

    def key(self, origin: str) -> Ed25519PublicKey | None:
        if origin not in self._keys:
            path = self.directory / f"{origin}.pub"
            try:
                key = serialization.load_ssh_public_key(path.read_bytes())
            except FileNotFoundError:
                key = None
            except ValueError as exc:
                raise BadConfig(str(path), f"not an OpenSSH public key: {exc}") from exc
            if key is not None and not isinstance(key, Ed25519PublicKey):
                raise BadConfig(str(path), "not an ed25519 public key")
            self._keys[origin] = key
        return self._keys[origin]

    def verify(self, origin: str, signed: bytes, sig_line: bytes | None) -> None:
        """Check the signature of a batch of ``origin``.

        :raises BadRecord: if it is wrong, or missing while one is required.
        """
        key = self.key(origin)
        if sig_line is None:
            if self.required:
                raise BadRecord(f"batch of {origin} is unsigned, and signatures are required")
            return
        if key is None:
            if self.required:
                raise BadRecord(f"no key for {origin} in {self.directory}, and signatures are required")
            return
        try:
            key.verify(base64.b64decode(sig_line[len(SIG_PREFIX):].strip(), validate=True), signed)
        except (InvalidSignature, ValueError):
            raise BadRecord(f"batch of {origin} has a bad signature") from None
