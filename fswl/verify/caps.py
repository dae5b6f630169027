"""Caps against backscatter: one challenge per (sender, relay) per period, hourly caps, forgery blocks.

State is a small SQLite database under the home (verify/state.sqlite): every
check-and-take runs in one IMMEDIATE transaction, so several processes (the
policy service, the web form, the CLI) share the caps exactly.  It stays
bounded: only challenges actually sent are recorded (at most the global cap
per hour), and rows older than the longest window are pruned.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from publicsuffixlist import PublicSuffixList

from fswl.names import split_sender

HOUR = 3600.0
#: How long a writer waits for another process's transaction.
BUSY_TIMEOUT_MS = 10000
#: Prune old rows at most this often.
PRUNE_SECONDS = 60.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sent (at REAL NOT NULL, address TEXT NOT NULL, domain TEXT NOT NULL, relay TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS sent_at ON sent(at);
CREATE INDEX IF NOT EXISTS sent_address ON sent(address, at);
CREATE INDEX IF NOT EXISTS sent_domain ON sent(domain, at);
CREATE TABLE IF NOT EXISTS blocked (address TEXT PRIMARY KEY, until REAL NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, n INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS tallies (name TEXT PRIMARY KEY, n INTEGER NOT NULL, until REAL NOT NULL);
"""


#: Refusals that pass with time (a cap); anything else is about the address itself.
CAP_REFUSALS = frozenset({"already challenged for this relay", "per-address hourly cap", "per-domain hourly cap",
                          "global hourly cap"})

#: What Caps.usage() reports.
USAGE_KEYS = ("sent_last_hour", "sent_in_pair_period", "busiest_address_last_hour", "busiest_domain_last_hour",
              "blocked_addresses")

_suffixes: PublicSuffixList | None = None
_suffixes_lock = threading.Lock()


def registrable_domain(domain: str) -> str:
    """The domain a registrant controls (a.b.example.co.uk -> example.co.uk): the per-domain cap counts it,
    so subdomains made up by a forger share one cap. Uses the Public Suffix List shipped with the package."""
    global _suffixes
    with _suffixes_lock:
        if _suffixes is None:
            _suffixes = PublicSuffixList()
    return _suffixes.privatesuffix(domain.lower()) or domain.lower()


@dataclass(frozen=True)
class Limits:
    pair_period: float
    per_address: int
    per_domain: int
    global_: int


class Caps:
    """Decides whether one more challenge may go out, and counts what happened."""

    def __init__(self, path: Path, limits: Limits, clock: Callable[[], float] = time.time,
                 readonly: bool = False) -> None:
        """Open (and make) the database; ``readonly`` opens an existing one for reading only (sqlite3.Error if none)."""
        self.limits = limits
        self.clock = clock
        self._lock = threading.Lock()  # one connection, shared by this process's threads
        self._pruned = 0.0
        if readonly:
            self._db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000,
                                       isolation_level=None, check_same_thread=False)
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        # It holds who was challenged and the codes' tallies: the owner's only. SQLite gives
        # its -wal and -shm files the database file's mode, so making it 0600 first is enough.
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
        self._db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                                   check_same_thread=False)
        # Processes opening a new database at once would race to switch it to
        # WAL, and SQLite answers the loser "database is locked" at once
        # instead of waiting: so the setup takes turns.
        with open(f"{path}.setup-lock", "a") as turn:
            fcntl.flock(turn, fcntl.LOCK_EX)  # released when the file closes
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)
        self._db.execute("PRAGMA synchronous=NORMAL")  # a crash may lose the last counts, never corrupt

    def take(self, sender: str, relay: str) -> str | None:
        """Reserve a challenge for (sender, relay): None if it may go, else the cap that stops it."""
        now = self.clock()
        domain = registrable_domain(split_sender(sender)[1])
        limits = self.limits
        with self._lock:
            # A read first: when the global cap is full (a flood), refuse without a write lock.
            if self._count("SELECT COUNT(*) FROM sent WHERE at > ?", now - HOUR) >= limits.global_:
                return "global hourly cap"
            self._db.execute("BEGIN IMMEDIATE")
            try:
                refused = self._refusal(now, sender, domain, relay)
                if refused is None:
                    self._db.execute("INSERT INTO sent VALUES (?, ?, ?, ?)", (now, sender, domain, relay))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            if now - self._pruned > PRUNE_SECONDS:
                self._prune(now)
        return refused

    def _refusal(self, now: float, sender: str, domain: str, relay: str) -> str | None:
        limits = self.limits
        if self._count("SELECT COUNT(*) FROM blocked WHERE address = ? AND until > ?", sender, now):
            return "address reported a forgery"
        if self._count("SELECT COUNT(*) FROM sent WHERE address = ? AND relay = ? AND at > ?",
                       sender, relay, now - limits.pair_period):
            return "already challenged for this relay"
        if self._count("SELECT COUNT(*) FROM sent WHERE address = ? AND at > ?", sender, now - HOUR) >= limits.per_address:
            return "per-address hourly cap"
        if self._count("SELECT COUNT(*) FROM sent WHERE domain = ? AND at > ?", domain, now - HOUR) >= limits.per_domain:
            return "per-domain hourly cap"
        if self._count("SELECT COUNT(*) FROM sent WHERE at > ?", now - HOUR) >= limits.global_:
            return "global hourly cap"
        return None

    def precheck(self, sender: str, relay: str) -> str | None:
        """The cap that would stop (sender, relay) now, read only: a cheap test before SPF (take() checks again)."""
        with self._lock:
            return self._refusal(self.clock(), sender, registrable_domain(split_sender(sender)[1]), relay)

    def tally(self, name: str, seconds: float) -> int:
        """Add one to a named tally kept ``seconds`` (SMS tries, used CAPTCHAs...); its new value, atomically."""
        now = self.clock()
        with self._lock:
            row = self._db.execute(
                "INSERT INTO tallies VALUES (?, 1, ?) ON CONFLICT(name) DO UPDATE SET n = n + 1 RETURNING n",
                (name, now + seconds)).fetchall()[0]  # fetchall: the statement ends, the write commits
            if now - self._pruned > PRUNE_SECONDS:
                self._prune(now)
        return int(row[0])

    def block(self, sender: str, seconds: float) -> None:
        """No challenge to ``sender`` for a while (after "I did not send this")."""
        with self._lock:
            self._db.execute("INSERT INTO blocked VALUES (?, ?) ON CONFLICT(address) DO UPDATE SET until = excluded.until",
                             (sender, self.clock() + seconds))

    def is_blocked(self, sender: str) -> bool:
        with self._lock:
            return bool(self._count("SELECT COUNT(*) FROM blocked WHERE address = ? AND until > ?", sender, self.clock()))

    def count(self, name: str, n: int = 1) -> None:
        """Add to a named counter (shown by `fswl verify stats`)."""
        with self._lock:
            self._db.execute("INSERT INTO counters VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET n = n + excluded.n",
                             (name, n))

    def counters(self) -> dict[str, int]:
        with self._lock:
            return dict(self._db.execute("SELECT name, n FROM counters ORDER BY name").fetchall())

    def usage(self) -> dict[str, int]:
        """What the caps stand at now: challenges in the last hour and in the pair period, blocked addresses."""
        now = self.clock()
        with self._lock:
            return {
                "sent_last_hour": self._count("SELECT COUNT(*) FROM sent WHERE at > ?", now - HOUR),
                "sent_in_pair_period": self._count("SELECT COUNT(*) FROM sent WHERE at > ?", now - self.limits.pair_period),
                "busiest_address_last_hour": self._count(
                    "SELECT COALESCE(MAX(n), 0) FROM (SELECT COUNT(*) AS n FROM sent WHERE at > ? GROUP BY address)", now - HOUR),
                "busiest_domain_last_hour": self._count(
                    "SELECT COALESCE(MAX(n), 0) FROM (SELECT COUNT(*) AS n FROM sent WHERE at > ? GROUP BY domain)", now - HOUR),
                "blocked_addresses": self._count("SELECT COUNT(*) FROM blocked WHERE until > ?", now),
            }

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _count(self, query: str, *args: object) -> int:
        return int(self._db.execute(query, args).fetchone()[0])

    def _prune(self, now: float) -> None:
        self._pruned = now
        keep = max(HOUR, self.limits.pair_period)
        self._db.execute("DELETE FROM sent WHERE at < ?", (now - keep,))
        self._db.execute("DELETE FROM blocked WHERE until < ?", (now,))
        self._db.execute("DELETE FROM tallies WHERE until < ?", (now,))
