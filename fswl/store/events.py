"""The event log: what happened to (sender, relay) pairs, for reputation quotas and relay correlation.

``$FSWL_HOME/state/events/events.jsonl`` takes one JSON line per event;
when it outgrows ``[history] file_bytes`` it is renamed to
``events.1.jsonl`` (and older ones shift up to ``[history] files``), so the
log stays bounded.  Any number of processes append at once: each event
batch is one ``write`` on an ``O_APPEND`` descriptor, and rotation happens
under a lock.  Readers (`fswl correlate`, `fswl reputation`, the policy
service's quota table) read the files oldest first; :class:`Tail` follows
new lines across rotations.

Kinds: ``confirm`` (a sender confirmed a challenge from a relay), ``abuse``
(a forgery/abuse report about a relay and perhaps a sender), ``spf_pass``
(the relay passed SPF for the sender's domain), ``seen`` (a message from an
unlisted pair was accepted under its reputation quota).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator

from fswl.errors import BadInput
from fswl.names import parse_address, parse_domain, parse_relay, parse_sender
from fswl.util import atomic

if TYPE_CHECKING:
    from fswl.config.home import HomeLayout

log = logging.getLogger(__name__)

EVENTS_DIR = ("state", "events")
CURRENT = "events.jsonl"
KINDS = ("confirm", "abuse", "spf_pass", "seen")
#: A line longer than this is not one of ours (addresses are at most 254 octets).
MAX_LINE_BYTES = 1024


@dataclass(frozen=True)
class HistorySettings:
    """[history] in fswl.toml: how much of the past is kept."""

    #: Bytes in the current file before it is rotated.
    file_bytes: int = 8 * 1024 * 1024
    #: Rotated files kept (the oldest beyond this is deleted).
    files: int = 4


@dataclass(frozen=True)
class Event:
    """One thing that happened to a relay (and perhaps a sender)."""

    time: float
    kind: str
    ip: str  #: the relay, canonical text
    sender: str = ""  #: canonical sender, or "" when the event is about the relay only
    origin: str = ""  #: the process that wrote it, when it must recognise its own events
    name: str = ""  #: the relay's host name (Postfix's client_name, a PTR), when known

    def to_line(self) -> str:
        fields = {"t": round(self.time, 3), "k": self.kind, "ip": self.ip}
        if self.sender:
            fields["s"] = self.sender
        if self.origin:
            fields["o"] = self.origin
        if self.name:
            fields["n"] = self.name
        return json.dumps(fields, separators=(",", ":"), ensure_ascii=False) + "\n"

    @classmethod
    def from_line(cls, line: bytes) -> Event | None:
        """The event of one log line, or None for a line that is not one (skipped, never fatal)."""
        try:
            fields = json.loads(line)
            event = cls(float(fields["t"]), str(fields["k"]), str(fields["ip"]), str(fields.get("s", "")),
                        str(fields.get("o", "")), str(fields.get("n", "")))
        except (ValueError, KeyError, TypeError):
            return None
        return event if event.kind in KINDS else None


def make_event(kind: str, ip: str, sender: str = "", when: float | None = None, name: str = "") -> Event:
    """A checked event: the address (or network) and sender in canonical form; ``name`` is the relay's host name.

    :raises BadInput: for an unknown kind, a bad address, sender or name.
    """
    if kind not in KINDS:
        raise BadInput(f"not an event kind: {kind!r} (known: {', '.join(KINDS)})")
    if name in ("unknown", "[unknown]"):  # what Postfix says when the client has no valid name
        name = ""
    # a network (an IPv6 /64 listed by self-service) stands for its first address: same /64, same quota
    address = parse_relay(ip).network_address if "/" in ip else parse_address(ip)
    return Event(time.time() if when is None else when, kind, str(address),
                 parse_sender(sender) if sender else "", name=parse_domain(name) if name else "")


class EventLog:
    """The event files of one home."""

    def __init__(self, home_root: str | os.PathLike[str], settings: HistorySettings = HistorySettings()) -> None:
        self.dir = Path(home_root).joinpath(*EVENTS_DIR)
        self.settings = settings

    @classmethod
    def of(cls, home: HomeLayout) -> EventLog:
        """The log of a home, with its [history] settings."""
        return cls(home.root, home.settings("history", HistorySettings))

    def files(self) -> list[Path]:
        """The event files, oldest first."""
        rotated = [self.dir / f"events.{n}.jsonl" for n in range(self.settings.files, 0, -1)]
        return [p for p in rotated if p.exists()] + [self.dir / CURRENT]

    def append(self, events: Iterable[Event]) -> None:
        """Add events at the end, in one write; rotate first when the file is full."""
        data = "".join(e.to_line() for e in events).encode("utf-8", "surrogateescape")
        if not data:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        current = self.dir / CURRENT
        try:
            if current.stat().st_size + len(data) > self.settings.file_bytes:
                self._rotate()
        except FileNotFoundError:
            pass
        fd = os.open(current, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)

    def read(self) -> Iterator[Event]:
        """Every event kept, oldest first."""
        for path in self.files():
            try:
                with open(path, "rb") as handle:
                    for line in handle:
                        event = Event.from_line(line) if len(line) <= MAX_LINE_BYTES else None
                        if event is not None:
                            yield event
            except FileNotFoundError:
                continue

    def _rotate(self) -> None:
        with open(self.dir / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            current = self.dir / CURRENT
            try:
                if current.stat().st_size < self.settings.file_bytes:
                    return  # another process rotated it meanwhile
            except FileNotFoundError:
                return
            for n in range(self.settings.files, 0, -1):
                older = self.dir / f"events.{n}.jsonl"
                if n == self.settings.files:
                    older.unlink(missing_ok=True)
                elif older.exists():
                    atomic.replace(older, self.dir / f"events.{n + 1}.jsonl")
            if self.settings.files > 0:
                atomic.replace(current, self.dir / "events.1.jsonl")
            else:
                current.unlink(missing_ok=True)


class Tail:
    """Reads the events appended since the last call, by any process, across rotations."""

    def __init__(self, log_: EventLog) -> None:
        self.log = log_
        self.offsets: dict[int, int] = {}  # inode -> bytes consumed

    def skip_to_end(self) -> None:
        """Count everything already in the files as read."""
        self.offsets = {}
        for path in self.log.files():
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            self.offsets[st.st_ino] = st.st_size

    def poll(self) -> list[Event]:
        """The new events, oldest first."""
        events: list[Event] = []
        seen: dict[int, int] = {}
        for path in self.log.files():
            try:
                handle = open(path, "rb")
            except FileNotFoundError:
                continue
            with handle:
                st = os.fstat(handle.fileno())
                inode = st.st_ino
                offset = self.offsets.get(inode, 0)
                if offset > st.st_size:
                    offset = 0  # the inode of a deleted old file, reused by a new one
                handle.seek(offset)
                data = handle.read()
            end = data.rfind(b"\n") + 1  # a line still being written is read next time
            for line in data[:end].splitlines():
                event = Event.from_line(line) if len(line) <= MAX_LINE_BYTES else None
                if event is not None:
                    events.append(event)
            seen[inode] = offset + end
        self.offsets = seen
        return events


def _record(home: HomeLayout, kind: str, ip: str, sender: str, name: str) -> None:
    EventLog.of(home).append([make_event(kind, ip, sender, name=name)])


def record_confirmation(home: HomeLayout, sender: str, ip: str, name: str = "") -> None:
    """A sender confirmed a challenge for a relay (the verification code calls this).

    ``name`` is the relay's host name if known (Postfix's client_name): relay
    correlation groups relays across networks when their names agree.
    """
    _record(home, "confirm", ip, sender, name)


def record_abuse(home: HomeLayout, ip: str, sender: str = "") -> None:
    """A forgery/abuse report about a relay, perhaps naming the sender (the relay's quota drops to 0)."""
    _record(home, "abuse", ip, sender, "")


def record_spf_pass(home: HomeLayout, sender: str, ip: str, name: str = "") -> None:
    """The relay passed SPF for the sender's domain."""
    _record(home, "spf_pass", ip, sender, name)


def record_seen(home: HomeLayout, sender: str, ip: str, name: str = "") -> None:
    """A message from an unlisted pair was accepted (the reputation quota records its own in batches)."""
    _record(home, "seen", ip, sender, name)
