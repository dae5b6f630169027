"""Recording hits: last-seen times (fswl.store.lastseen, never an entry's mtime), written off the answer path."""

from __future__ import annotations

import logging
import time
from typing import Callable

from fswl import defaults
from fswl.store import Whitelist
from fswl.util.periodic import Periodic

log = logging.getLogger(__name__)

#: Entries remembered as refreshed before the memory is cleared (about 100 bytes each).
MAX_REMEMBERED = 1_000_000


class SeenRecorder:
    """Collects entry paths that answered a query and records them as seen, in batches.

    ``record`` does no I/O and takes no lock, so the DNS and policy hot paths
    can call it; each entry is written at most once per ``refresh`` seconds.
    """

    def __init__(self, whitelist: Whitelist, refresh: float = defaults.SEEN_REFRESH_SECONDS,
                 flush_every: float = defaults.SEEN_FLUSH_SECONDS,
                 clock: Callable[[], float] = time.time) -> None:
        self.whitelist = whitelist
        self.refresh = refresh
        self.clock = clock
        #: hash(path) -> when it was last queued: an int key, not the path, is a
        #: third of the memory; a collision (2**-64) delays one refresh a day.
        self._last: dict[int, float] = {}
        self._pending: set[str] = set()
        self._flusher = Periodic(self.flush, flush_every, "fswl-seen", "refreshing last-seen times failed", log)

    def record(self, path: str) -> None:
        now = self.clock()
        key = hash(path)
        last = self._last.get(key)
        if last is not None and now - last < self.refresh:
            return
        if len(self._last) >= MAX_REMEMBERED:
            self._last.clear()
        self._last[key] = now
        self._pending.add(path)

    def flush(self) -> int:
        """Write the pending refreshes; returns how many entries were touched."""
        pending, self._pending = self._pending, set()
        if not pending:
            return 0
        return self.whitelist.touch_seen(sorted(pending), self.clock())

    def start(self) -> None:
        """Flush every ``flush_every`` seconds in a thread until stop()."""
        self._flusher.start()

    def stop(self) -> None:
        """Stop the thread and write what is pending."""
        self._flusher.stop()
