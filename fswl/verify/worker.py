"""Challenges are made off the event loop: misses go into a bounded queue, one thread mails them."""

from __future__ import annotations

import logging
import queue
import threading
import time

from fswl.names import IPAddress
from fswl.verify.verifier import Verifier

log = logging.getLogger(__name__)

#: How often the thread removes expired pending records.
PRUNE_SECONDS = 3600.0
#: How long stop() waits for the message being sent.
STOP_SECONDS = 30.0
_STOP = None


class ChallengeWorker:
    """A miss hook (never blocks) and the thread behind it."""

    def __init__(self, verifier: Verifier, size: int) -> None:
        self.verifier = verifier
        self.queue: queue.Queue[tuple[str, IPAddress] | None] = queue.Queue(maxsize=max(1, size))
        self.dropped = 0
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, sender: str, address: IPAddress) -> None:
        """Queue a miss; when the queue is full (a flood) it is dropped and counted."""
        self._ensure_thread()
        try:
            self.queue.put_nowait((sender, address))
        except queue.Full:
            self.dropped += 1

    def stop(self) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is None:
            return
        try:
            self.queue.put(_STOP, timeout=STOP_SECONDS)
        except queue.Full:
            log.warning("verify: %d misses left unchallenged at stop", self.queue.qsize())
        thread.join(STOP_SECONDS)

    def _ensure_thread(self) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    # A daemon, so a process that forgets close() still exits;
                    # close() stops it cleanly.
                    self._thread = threading.Thread(target=self._run, name="fswl-verify", daemon=True)
                    self._thread.start()

    def _run(self) -> None:
        pruned = time.monotonic()
        while True:
            try:
                item = self.queue.get(timeout=1.0)
            except queue.Empty:
                item = ()
            if item is _STOP:
                break
            try:
                self._flush_dropped()
                if item:
                    self.verifier.challenge(*item)
                if time.monotonic() - pruned > PRUNE_SECONDS:
                    pruned = time.monotonic()
                    self.verifier.prune()
            except Exception:
                log.exception("verify: challenging %s failed", item[0] if item else "")
        self._flush_dropped()

    def _flush_dropped(self) -> None:
        dropped, self.dropped = self.dropped, 0
        if dropped:
            self.verifier.caps.count("dropped: queue full", dropped)
