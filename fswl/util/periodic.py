"""A daemon thread that runs one job every few seconds, and once more on stop (what is pending is written).

The hit recorder (fswl.store.seen) and the reputation service each keep
memory current with the disk this way; a failed run is logged and the next
one retries, so a full disk for a minute never stops the service answering.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable


class Periodic:
    """``job()`` every ``every`` seconds in thread ``name`` between start() and stop(); stop() runs it last."""

    def __init__(self, job: Callable[[], object], every: float, name: str, failure: str,
                 log: logging.Logger) -> None:
        self.job = job
        self.every = every
        self.name = name
        #: What the log says when a run raises (with the traceback).
        self.failure = failure
        self.log = log
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread, then run the job once more in the caller: its errors are the caller's."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.job()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.job()
            except Exception:  # keep going; the next run retries
                self.log.exception("%s", self.failure)
