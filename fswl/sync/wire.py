"""Framing of the sync conversation: a JSON header line, then ``size`` raw bytes of payload."""

from __future__ import annotations

import json
from typing import Any, BinaryIO

from fswl.errors import SyncError
from fswl.sync.records import MAX_BATCH_BYTES

#: A header line longer than this ends the conversation.
MAX_HEADER_BYTES = 4 * 1024 * 1024
#: Payloads: a batch, or a digest listing / reconciliation records.
MAX_PAYLOAD_BYTES = 4 * MAX_BATCH_BYTES


class Wire:
    """One side of a conversation over a pair of byte streams (an SSH channel or stdio)."""

    def __init__(self, rfile: BinaryIO, wfile: BinaryIO, peer: str = "peer") -> None:
        self.rfile = rfile
        self.wfile = wfile
        self.peer = peer
        self.sent = 0
        self.received = 0

    def send(self, header: dict[str, Any], payload: bytes = b"") -> None:
        if payload:
            header = {**header, "size": len(payload)}
        line = json.dumps(header, separators=(",", ":")).encode() + b"\n"
        self.wfile.write(line)
        if payload:
            self.wfile.write(payload)
        self.sent += len(line) + len(payload)

    def flush(self) -> None:
        self.wfile.flush()

    def recv(self) -> tuple[dict[str, Any], bytes]:
        """The next header and its payload.

        :raises SyncError: when the other side hangs up or says something malformed.
        """
        try:
            self.flush()
            line = self.rfile.readline(MAX_HEADER_BYTES + 1)
        except OSError as exc:  # a timeout, or the channel gone
            raise SyncError(f"{self.peer}: {exc or type(exc).__name__}") from None
        if not line:
            raise SyncError(f"{self.peer} hung up")
        if len(line) > MAX_HEADER_BYTES or not line.endswith(b"\n"):
            raise SyncError(f"{self.peer} sent an overlong or cut-off message")
        try:
            header = json.loads(line)
        except ValueError:
            raise SyncError(f"{self.peer} sent a malformed message: {line[:80]!r}") from None
        if not isinstance(header, dict):
            raise SyncError(f"{self.peer} sent a malformed message: {line[:80]!r}")
        size = header.get("size", 0)
        if not isinstance(size, int) or not 0 <= size <= MAX_PAYLOAD_BYTES:
            raise SyncError(f"{self.peer} announced a payload of {size!r} bytes")
        payload = self._read_exact(size) if size else b""
        self.received += len(line) + size
        return header, payload

    def expect(self, key: str) -> tuple[dict[str, Any], bytes]:
        header, payload = self.recv()
        if key not in header:
            if "error" in header:
                raise SyncError(f"{self.peer}: {header['error']}")
            raise SyncError(f"{self.peer} sent {sorted(header)} where {key!r} was expected")
        return header, payload

    def _read_exact(self, size: int) -> bytes:
        chunks = []
        left = size
        while left:
            try:
                chunk = self.rfile.read(left)
            except OSError as exc:
                raise SyncError(f"{self.peer}: {exc or type(exc).__name__}") from None
            if not chunk:
                raise SyncError(f"{self.peer} hung up in the middle of a message")
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
