"""pending/: one JSON file per challenge awaiting confirmation; used ones move to pending/used/.

A record is written to a temporary name and renamed into place, so readers
never see half of one.  Using a code renames its record into used/: a
rename succeeds once, so two confirmations racing (a click and a reply, two
processes) cannot both win, and a replay finds the record in used/ and is
told so.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

from fswl.errors import BadCode, CodeGone
from fswl.util import atomic

USED = "used"
SUFFIX = ".json"


@dataclass(frozen=True)
class Record:
    """One challenge: what confirming it lists, and until when."""

    id: str
    purpose: str  #: "confirm" (a miss) or "ipv6" (the self-service form)
    sender: str
    relay: str  #: an IP for "confirm", a network for "ipv6"
    created: float
    expires: int


class Pending:
    """The pending/ directory of a home."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.used = root / USED
        self.used.mkdir(parents=True, exist_ok=True)

    def put(self, record: Record) -> None:
        atomic.write_atomic(self._path(record.id), json.dumps(asdict(record)), mode=0o600)

    def get(self, record_id: str) -> Record:
        """The waiting record; BadCode says why there is none (used, or unknown)."""
        try:
            return _read(self._path(record_id))
        except FileNotFoundError:
            pass
        if self._path(record_id, used=True).exists():
            raise CodeGone("this code was already used")
        raise BadCode("this code is not known here: it expired long ago, or it was never ours")

    def take(self, record_id: str) -> Record:
        """Use a record once: the first caller gets it, any later one BadCode."""
        record = self.get(record_id)
        try:
            atomic.replace(self._path(record_id), self._path(record_id, used=True))
        except FileNotFoundError:
            raise CodeGone("this code was already used") from None
        return record

    def untake(self, record_id: str) -> None:
        """Make a used record usable again (listing it failed, so the code must still work)."""
        atomic.replace(self._path(record_id, used=True), self._path(record_id))

    @staticmethod
    def read(path: Path) -> Record:
        """One record file (FileNotFoundError, ValueError for a broken one)."""
        return _read(path)

    def drop(self, record_id: str) -> None:
        try:
            os.unlink(self._path(record_id))
        except FileNotFoundError:
            pass

    def waiting(self) -> Iterator[Record]:
        for entry in os.scandir(self.root):
            if entry.name.endswith(SUFFIX) and entry.is_file():
                try:
                    yield _read(Path(entry.path))
                except (FileNotFoundError, ValueError):
                    continue

    def prune(self, now: float | None = None, keep_used_seconds: float = 0.0) -> int:
        """Remove expired records, and used ones once their code has expired too."""
        now = time.time() if now is None else now
        removed = 0
        for directory in (self.root, self.used):
            for entry in os.scandir(directory):
                if not entry.name.endswith(SUFFIX):
                    continue
                try:
                    record = _read(Path(entry.path))
                except (FileNotFoundError, ValueError):
                    continue
                if record.expires + keep_used_seconds < now:
                    try:
                        os.unlink(entry.path)
                        removed += 1
                    except FileNotFoundError:
                        pass
        return removed

    def _path(self, record_id: str, used: bool = False) -> Path:
        if not all(c in "0123456789abcdef" for c in record_id):
            raise BadCode("not a confirmation code")
        return (self.used if used else self.root) / (record_id + SUFFIX)


def _read(path: Path) -> Record:
    with open(path) as handle:
        return Record(**json.load(handle))
