"""The record format of sync batches: one write to db/ per line, strictly validated.

A record is one line of tab-separated fields::

    add     ip4/57/129/134/63/dave@umkc.edu        1732460000.5
    remove  groups/aol-out/*@spam.example          1732460001
    link    ip4/64/12/1                             ../../../groups/aol-out  1732460002
    unlink  ip4/64/12/1                                                      1732460003
    seen    ip4/57/129/134/63/dave@umkc.edu        1732460004

Entry names are the tree's file names (fswl.names.sender_to_name), which
never hold a tab, a newline or a ``/``; so a record is unambiguous, and a
parser that accepts only canonical paths cannot be walked out of db/.
"""

from __future__ import annotations

import math
import posixpath
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fswl.errors import BadGroup, BadName, BadRecord, BadSender
from fswl.names import FAMILIES, is_level_name, name_to_sender, parse_group, parse_sender
from fswl.store import journal
from fswl.store.tree import GROUPS_DIR

if TYPE_CHECKING:  # cryptography is a slow import, and every CLI write loads this module
    from fswl.sync.signing import Keyring

#: How a batch's last line starts when it carries a signature (fswl.sync.signing).
SIG_PREFIX = b"sig ed25519 "

#: Operations that travel between mirrors (expiry is each node's own business).
ENTRY_OPS = (journal.ADD, journal.REMOVE, journal.SEEN)
DIR_OPS = (journal.LINK, journal.UNLINK)
SYNC_OPS = ENTRY_OPS + DIR_OPS
#: A record line longer than this is refused (a 255-byte name in a 128-level path is far shorter).
MAX_RECORD_BYTES = 2048
#: Levels below ip4/ and ip6/.
MAX_LEVELS = {"ip4": 4, "ip6": 8}
MAGIC = b"fswl-batch 1"
#: A received batch larger than this is refused unread.
MAX_BATCH_BYTES = 32 * 1024 * 1024
#: Records more than this far in the future are refused: a peer's clock gone wrong.
MAX_FUTURE_SECONDS = 86400.0
_VERSIONS = {family: version for version, family in FAMILIES.items()}


@dataclass(frozen=True)
class Record:
    """One write: ``op`` on ``path`` (relative to db/) at ``when``; ``target`` for links."""

    op: str
    path: str
    when: float
    target: str | None = None

    def line(self) -> bytes:
        """The record as one line of a batch, newline included."""
        target = self.target or ""
        return f"{self.op}\t{self.path}\t{target}\t{self.when:.6f}\n".encode("utf-8")


def from_change(change: journal.Change) -> Record | None:
    """The record of a store Change, or None for changes that do not travel (expiry)."""
    if change.op not in SYNC_OPS:
        return None
    return Record(change.op, change.path, change.when, change.target)


def parse_record(line: bytes, now: float | None = None) -> Record:
    """Parse and validate one record line (with or without its newline).

    :raises BadRecord: if anything about it is not exactly what fswl writes.
    """
    if len(line) > MAX_RECORD_BYTES:
        raise BadRecord(f"{len(line)} bytes, over the {MAX_RECORD_BYTES}-byte limit")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRecord("not UTF-8") from None
    if text.endswith("\n"):
        text = text[:-1]
    fields = text.split("\t")
    if len(fields) != 4:
        raise BadRecord(f"{len(fields)} fields, expected 4: {text[:80]!r}")
    op, path, target, stamp = fields
    if op not in SYNC_OPS:
        raise BadRecord(f"unknown operation {op[:20]!r}")
    when = _parse_time(stamp, time.time() if now is None else now)
    if op in ENTRY_OPS:
        check_entry_path(path)
        if target:
            raise BadRecord(f"{op} takes no link target")
        return Record(op, path, when)
    check_relay_path(path)
    if op == journal.LINK:
        check_link_target(path, target)
        return Record(op, path, when, target)
    if target:
        raise BadRecord("unlink takes no link target")
    return Record(op, path, when)


def check_entry_path(path: str) -> str:
    """Validate ``ip4/../NAME``, ``ip6/../NAME`` or ``groups/G/NAME``; returns the sender."""
    parts = _split(path)
    if len(parts) < 2:
        raise BadRecord(f"{path[:80]!r} is not an entry path")
    head, name = parts[:-1], parts[-1]
    if head[0] == GROUPS_DIR:
        if len(head) != 2:
            raise BadRecord(f"{path[:80]!r}: a group holds entries only")
        _group(head[1], path)
    else:
        _levels(head, path, min_levels=1)
    try:
        sender = name_to_sender(name)
        if parse_sender(sender) != sender:
            raise BadName(name, "not a canonical sender")
    except (BadName, BadSender) as exc:
        raise BadRecord(f"{path[:80]!r}: {exc}") from None
    return sender


def check_relay_path(path: str) -> tuple[str, ...]:
    """Validate a relay or prefix directory path: ``ip4/64/12/1``."""
    return _levels(_split(path), path, min_levels=1)


def check_link_target(path: str, target: str) -> str:
    """Validate a link target: relative, and landing exactly on db/groups/GROUP; returns GROUP."""
    if not target or target.startswith("/"):
        raise BadRecord(f"link target {target[:80]!r} must be a relative path to groups/GROUP")
    if "\\" in target or "\0" in target:
        raise BadRecord(f"link target {target[:80]!r} holds odd characters")
    depth = len(_split(path)) - 1
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
    steps = target.split("/")
    if steps[:depth] != [".."] * depth or steps.count("..") != depth or joined.startswith(".."):
        raise BadRecord(f"link target {target[:80]!r} of {path!r} leaves db/ or wanders")
    parts = joined.split("/")
    if len(parts) != 2 or parts[0] != GROUPS_DIR:
        raise BadRecord(f"link target {target[:80]!r} does not name groups/GROUP")
    return _group(parts[1], path)


def _split(path: str) -> list[str]:
    if not path or path.startswith("/") or path.endswith("/"):
        raise BadRecord(f"{path[:80]!r} is not a path relative to db/")
    parts = path.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise BadRecord(f"{path[:80]!r} holds an empty, '.' or '..' component")
    return parts


def _levels(parts: list[str], path: str, min_levels: int) -> tuple[str, ...]:
    family, levels = parts[0], parts[1:]
    if family not in MAX_LEVELS:
        raise BadRecord(f"{path[:80]!r} is not under ip4/, ip6/ or groups/")
    if not min_levels <= len(levels) <= MAX_LEVELS[family]:
        raise BadRecord(f"{path[:80]!r} has {len(levels)} levels")
    version = _VERSIONS[family]
    for level in levels:
        if not is_level_name(version, level):
            raise BadRecord(f"{path[:80]!r}: {level[:20]!r} is not a tree level")
    return tuple(levels)


def _group(name: str, path: str) -> str:
    try:
        return parse_group(name)
    except BadGroup:
        raise BadRecord(f"{path[:80]!r}: {name[:70]!r} is not a group name") from None


def _parse_time(stamp: str, now: float) -> float:
    try:
        when = float(stamp)
    except ValueError:
        raise BadRecord(f"bad time {stamp[:30]!r}") from None
    if not math.isfinite(when) or when < 0 or when > now + MAX_FUTURE_SECONDS:
        raise BadRecord(f"time {stamp[:30]!r} is out of range")
    return when


def network_of(path: str) -> tuple[int, tuple[str, ...]]:
    """(IP version, level names) of a validated relay path."""
    parts = path.split("/")
    return _VERSIONS[parts[0]], tuple(parts[1:])


def record_count(batch: bytes) -> int:
    """The count in a batch's header line (``fswl-batch 1 ORIGIN SEQ COUNT``); 0 if unreadable."""
    fields = batch[:batch.find(b"\n")].split()
    return int(fields[4]) if len(fields) == 5 and fields[4].isdigit() else 0


def parse_batch(data: bytes, origin: str, seq: int, keys: Keyring | None = None) -> list[Record | BadRecord]:
    """Check a batch's header and signature, then parse each record.

    Returns the records in order, a BadRecord in place of each record that
    fails validation (the caller logs and skips it).

    :raises BadRecord: if the batch as a whole is unacceptable.
    """
    if len(data) > MAX_BATCH_BYTES:
        raise BadRecord(f"batch {origin}/{seq} is {len(data)} bytes, over {MAX_BATCH_BYTES}")
    first, _, rest = data.partition(b"\n")
    fields = first.split(b" ")
    if len(fields) != 5 or b" ".join(fields[:2]) != MAGIC:
        raise BadRecord(f"batch {origin}/{seq} has no fswl-batch header")
    if fields[2] != origin.encode() or fields[3] != str(seq).encode():
        raise BadRecord(f"batch {origin}/{seq} says it is {fields[2][:64]!r}/{fields[3][:12]!r}")
    lines = rest.splitlines(keepends=True)
    if lines and lines[-1].startswith(SIG_PREFIX):
        signed, sig = data[: len(data) - len(lines[-1])], lines.pop()
    else:
        signed, sig = data, None
    if keys is not None:
        keys.verify(origin, signed, sig)
    if not fields[4].isdigit() or int(fields[4]) != len(lines):
        raise BadRecord(f"batch {origin}/{seq} holds {len(lines)} records, its header says {fields[4][:12]!r}")
    if lines and not lines[-1].endswith(b"\n"):
        raise BadRecord(f"batch {origin}/{seq} is cut short")
    now = time.time()
    out: list[Record | BadRecord] = []
    for line in lines:
        try:
            out.append(parse_record(line, now))
        except BadRecord as exc:
            out.append(exc)
    return out
