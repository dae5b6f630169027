"""When entries were last seen in use on this node, kept apart from db/.

An entry's mtime is the time it was explicitly added (or re-added); a removal
compares with that alone.  Use only keeps an existing entry from ageing out,
so the last-seen times live here, in ``$FSWL_HOME/state/seen.sqlite`` beside
db/ (one row per entry path relative to db/, the newest time wins), and
`fswl expire` removes an entry when the later of the two is older than the
window.  Nothing here can create, revive or date an entry: a row without its
entry is ignored, and rows older than any window in use are pruned by expire.

SQLite, not a file per entry or an xattr: several processes write at once (the
hit recorder of `fswl serve`, sync applying access lists, expire pruning),
each write is a batch, and a kill -9 leaves the last whole transaction.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path
from typing import Iterable

#: How long a writer waits for another process's transaction.
BUSY_TIMEOUT = 30.0
_SCHEMA = "CREATE TABLE IF NOT EXISTS seen (path TEXT PRIMARY KEY, at REAL NOT NULL) WITHOUT ROWID"
_UPSERT = ("INSERT INTO seen (path, at) VALUES (?, ?) "
           "ON CONFLICT (path) DO UPDATE SET at = excluded.at WHERE excluded.at > seen.at")


def state_path(db: str | os.PathLike[str]) -> Path:
    """Where the last-seen times of the tree in ``db`` are kept: ``state/seen.sqlite`` beside it."""
    return Path(db).parent / "state" / "seen.sqlite"


class LastSeen:
    """The last-seen times of one node's entries; opened on first use, shared by this process's threads."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False)
            db.execute(_SCHEMA)
            self._db = db
        return self._db

    def record(self, seen: Iterable[tuple[str, float]]) -> None:
        """Note (path relative to db/, time) pairs, in one transaction; an older time never replaces a newer."""
        rows = list(seen)
        if not rows:
            return
        with self._lock:
            db = self._conn()
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany(_UPSERT, rows)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def get(self, path: str) -> float | None:
        """When ``path`` (relative to db/) was last seen here, if it was."""
        if not self.path.exists():
            return None
        with self._lock:
            row = self._conn().execute("SELECT at FROM seen WHERE path = ?", (path,)).fetchone()
        return None if row is None else float(row[0])

    def since(self, cutoff: float) -> dict[str, float]:
        """Every path seen at or after ``cutoff``, with its time (what keeps an old entry from expiring)."""
        if not self.path.exists():
            return {}
        with self._lock:
            rows = self._conn().execute("SELECT path, at FROM seen WHERE at >= ?", (cutoff,)).fetchall()
        return {path: float(at) for path, at in rows}

    def forget(self, paths: Iterable[str] = (), before: float | None = None) -> None:
        """Drop the rows of ``paths`` (entries expired) and, with ``before``, every row older than it."""
        if not self.path.exists():
            return
        with self._lock:
            db = self._conn()
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany("DELETE FROM seen WHERE path = ?", ((p,) for p in paths))
                if before is not None:
                    db.execute("DELETE FROM seen WHERE at < ?", (before,))
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
