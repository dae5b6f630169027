"""Framing of the sync conversation: a JSON header line, then ``size`` raw bytes of payload.

Every read and write is bounded twice: by an idle timeout (a peer silent
that long is gone) and by the conversation's overall deadline, so that a
peer trickling one byte at a time cannot hold a round for longer than
``[sync] deadline``. The byte streams are ``Stream`` objects: an SSH channel
(fswl.sync.transport) or a pair of file descriptors (the serving end's
stdin and stdout), each able to wait with a timeout.
"""

from __future__ import annotations

import json
import os
import select
import time
from typing import Any, Callable, Protocol

from fswl.errors import SyncError
from fswl.sync.records import MAX_BATCH_BYTES

#: A header line longer than this ends the conversation.
MAX_HEADER_BYTES = 4 * 1024 * 1024
#: Payloads: a batch, or a digest listing / reconciliation records.
MAX_PAYLOAD_BYTES = 4 * MAX_BATCH_BYTES
#: A conversation waits this many connect timeouts ([sync] timeout) for the peer's next word (it may be
#: walking its tree).
IDLE_TIMEOUTS = 10
#: Bytes asked of the stream per read, and written out before send() returns.
CHUNK = 1 << 16
#: A write to a pipe of at most this many bytes never blocks once select() says it may write.
PIPE_CHUNK = 4096


class Stream(Protocol):
    def read_some(self, size: int, timeout: float) -> bytes:
        """Up to ``size`` bytes, b"" at the end; raises TimeoutError after ``timeout`` seconds."""

    def write_all(self, data: bytes, timeout: float) -> None:
        """All of ``data``; raises TimeoutError when no byte could go for ``timeout`` seconds."""


class FdStream:
    """Two file descriptors: the serving end's stdin and stdout."""

    def __init__(self, rfd: int, wfd: int) -> None:
        self.rfd = rfd
        self.wfd = wfd

    def read_some(self, size: int, timeout: float) -> bytes:
        readable, _, _ = select.select([self.rfd], [], [], max(timeout, 0.0))
        if not readable:
            raise TimeoutError
        return os.read(self.rfd, size)

    def write_all(self, data: bytes, timeout: float) -> None:
        view = memoryview(data)
        while view:
            _, writable, _ = select.select([], [self.wfd], [], max(timeout, 0.0))
            if not writable:
                raise TimeoutError
            view = view[os.write(self.wfd, view[:PIPE_CHUNK]):]


class ChannelStream:
    """A paramiko channel (duck-typed: this module does not import paramiko)."""

    def __init__(self, channel: Any) -> None:
        self.channel = channel

    def read_some(self, size: int, timeout: float) -> bytes:
        self.channel.settimeout(max(timeout, 0.001))
        data: bytes = self.channel.recv(size)  # socket.timeout is a TimeoutError
        return data

    def write_all(self, data: bytes, timeout: float) -> None:
        self.channel.settimeout(max(timeout, 0.001))
        self.channel.sendall(data)


class Wire:
    """One side of a conversation over a Stream (an SSH channel, or stdin and stdout).

    ``idle``: seconds a read or write may wait for the peer; ``deadline``: a
    ``clock()`` time after which the conversation is over (None: no deadline).
    """

    def __init__(self, stream: Stream, peer: str = "peer", idle: float = 300.0, deadline: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream
        self.peer = peer
        self.idle = idle
        self.deadline = deadline
        self.deadline_seconds = 0.0  #: the deadline's length, for the message that says it passed
        self.clock = clock
        self.sent = 0
        self.received = 0
        self._out = bytearray()
        self._in = bytearray()

    def set_deadline(self, seconds: float) -> None:
        """End the conversation ``seconds`` from now (``[sync] deadline``); 0 means never."""
        self.deadline_seconds = seconds
        self.deadline = self.clock() + seconds if seconds > 0 else None

    def send(self, header: dict[str, Any], payload: bytes = b"") -> None:
        if payload:
            header = {**header, "size": len(payload)}
        line = json.dumps(header, separators=(",", ":")).encode() + b"\n"
        self._out += line
        self._out += payload
        self.sent += len(line) + len(payload)
        if len(self._out) >= CHUNK:
            self.flush()

    def flush(self) -> None:
        while self._out:
            data = bytes(self._out[:CHUNK])
            try:
                self.stream.write_all(data, self._wait("to send to it"))
            except TimeoutError:
                raise self._timed_out("to send to it (it reads nothing)") from None
            except OSError as exc:  # the channel gone
                raise SyncError(f"{self.peer}: cannot send: {_cause(exc)}") from None
            del self._out[:len(data)]

    def recv(self, what: str = "its next message") -> tuple[dict[str, Any], bytes]:
        """The next header and its payload; ``what`` is what a timeout says was awaited.

        :raises SyncError: when the other side hangs up, says something malformed, or takes too long.
        """
        self.flush()
        line = self._read_line(what)
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
        header, payload = self.recv(f"its {key!r} message")
        if key not in header:
            if "error" in header:
                raise SyncError(f"{self.peer}: {header['error']}")
            raise SyncError(f"{self.peer} sent {sorted(header)} where {key!r} was expected")
        return header, payload

    def _read_line(self, what: str) -> bytes:
        scanned = 0
        while True:
            end = self._in.find(b"\n", scanned)
            scanned = len(self._in)
            if end >= 0:
                line = bytes(self._in[:end + 1])
                del self._in[:end + 1]
                return line
            if len(self._in) > MAX_HEADER_BYTES:
                return bytes(self._in)  # overlong: refused by the caller
            if not self._fill(what):
                line = bytes(self._in)  # cut off (or b"": hung up)
                self._in.clear()
                return line

    def _read_exact(self, size: int) -> bytes:
        while len(self._in) < size:
            if not self._fill("the rest of its message"):
                raise SyncError(f"{self.peer} hung up in the middle of a message")
        data = bytes(self._in[:size])
        del self._in[:size]
        return data

    def _fill(self, what: str) -> bool:
        """Read more into the buffer; False at the end of the stream."""
        try:
            chunk = self.stream.read_some(CHUNK, self._wait(f"for {what}"))
        except TimeoutError:
            raise self._timed_out(f"for {what}") from None
        except OSError as exc:  # the channel gone
            raise SyncError(f"{self.peer}: cannot read: {_cause(exc)}") from None
        self._in += chunk
        return bool(chunk)

    def _wait(self, what: str) -> float:
        """How long the next read or write may wait: the idle timeout, cut to what is left of the deadline."""
        if self.deadline is None:
            return self.idle
        left = self.deadline - self.clock()
        if left <= 0:
            raise self._timed_out(what)
        return min(self.idle, left)

    def _timed_out(self, what: str) -> SyncError:
        if self.deadline is not None and self.deadline - self.clock() <= 0:
            return SyncError(f"{self.peer}: the round's deadline of {self.deadline_seconds:g} s "
                             f"([sync] deadline) passed waiting {what}")
        return SyncError(f"{self.peer}: timed out after {self.idle:g} s waiting {what}")


def _cause(exc: OSError) -> str:
    """An OSError as words: socket.timeout and some channel errors print as ''."""
    return str(exc) or type(exc).__name__
