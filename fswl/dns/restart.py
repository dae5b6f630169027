"""When to start a dead DNS worker again: soon once, slower each time, never in a loop.

Pure bookkeeping with an injected clock, so tests can drive a minute of
crashes in microseconds; fswl/dns/workers.py does the processes.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Callable

#: Restarts of one worker slot allowed within RESTART_WINDOW seconds; one
#: more death than that and the slot stays down (systemd's StartLimitBurst).
RESTART_LIMIT = 5
#: Seconds over which restarts are counted; older ones are forgotten, so a
#: worker that dies once a day is always replaced.
RESTART_WINDOW = 60.0
#: Wait before the second restart within the window (the first is at once:
#: a single crash or OOM kill should cost no capacity); it doubles after.
BACKOFF_FIRST = 1.0
#: Longest wait before a restart.
BACKOFF_MAX = 30.0


class RestartPolicy:
    """Restart decisions for one worker slot: a delay in seconds, or None (stay down)."""

    def __init__(self, limit: int = RESTART_LIMIT, window: float = RESTART_WINDOW,
                 first_delay: float = BACKOFF_FIRST, max_delay: float = BACKOFF_MAX,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.clock = clock
        #: When each restart within the window is (or was) due.
        self._restarts: deque[float] = deque()
        #: Set once the limit is reached: the slot is not restarted again.
        self.given_up = False

    def recent(self) -> int:
        """Restarts counted against the limit now."""
        now = self.clock()
        while self._restarts and self._restarts[0] <= now - self.window:
            self._restarts.popleft()
        return len(self._restarts)

    def next_delay(self) -> float | None:
        """The slot's worker died: seconds to wait before starting another, or None to leave it down.

        Records the restart it allows. Once None, always None: a slot that
        crash-loops stays down until fswl is restarted, rather than forking
        forever.
        """
        if self.given_up:
            return None
        count = self.recent()
        if count >= self.limit:
            self.given_up = True
            return None
        delay = 0.0 if count == 0 else min(self.max_delay, self.first_delay * 2 ** (count - 1))
        self._restarts.append(self.clock() + delay)
        return delay
