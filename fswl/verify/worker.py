"""Challenges are made off the event loop: misses go into a bounded queue, a few threads mail them.

A (sender, relay) pair already waiting in the queue is not queued again, so a
retrying server costs one screen (and one SPF evaluation), not one per retry.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter

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

    def __init__(self, verifier: Verifier, size: int, workers: int = 1) -> None:
        self.verifier = verifier
        self.queue: queue.Queue[tuple[str, IPAddress] | None] = queue.Queue(maxsize=max(1, size))
        self.workers = max(1, workers)
        self.dropped = 0
        self.duplicates = 0
        self.refusals: Counter[str] = Counter()  #: misses refused before the queue (VERP at the policy service)
        self._queued: set[tuple[str, str]] = set()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._pruned = time.monotonic()

    def submit(self, sender: str, address: IPAddress) -> None:
        """Queue a miss, unless the same pair already waits; when the queue is full (a flood) it is dropped and counted."""
        self._ensure_threads()
        pair = (sender.lower(), str(address))
        with self._lock:
            if pair in self._queued:
                self.duplicates += 1
                return
            try:
                self.queue.put_nowait((sender, address))
            except queue.Full:
                self.dropped += 1
                return
            self._queued.add(pair)

    def count_refusal(self, reason: str) -> None:
        """Count a miss that is never challenged (the threads write the count; never blocks)."""
        self._ensure_threads()
        with self._lock:
            self.refusals[reason] += 1

    def stop(self) -> None:
        with self._lock:
            threads, self._threads = self._threads, []
        for _ in threads:
            try:
                self.queue.put(_STOP, timeout=STOP_SECONDS)
            except queue.Full:
                log.warning("verify: %d misses left unchallenged at stop", self.queue.qsize())
        for thread in threads:
            thread.join(STOP_SECONDS)
        self._flush_counts()

    def _ensure_threads(self) -> None:
        if not self._threads:
            with self._lock:
                while len(self._threads) < self.workers:
                    # Daemons, so a process that forgets close() still exits; close() stops them cleanly.
                    thread = threading.Thread(target=self._run, name=f"fswl-verify-{len(self._threads)}", daemon=True)
                    thread.start()
                    self._threads.append(thread)

    def _run(self) -> None:
        while True:
            try:
                item = self.queue.get(timeout=1.0)
            except queue.Empty:
                item = ()
            if item is _STOP:
                break
            try:
                self._flush_counts()
                if item:
                    try:
                        self.verifier.challenge(*item)
                    finally:
                        with self._lock:
                            self._queued.discard((item[0].lower(), str(item[1])))
                self._prune_now_and_then()
            except Exception:
                log.exception("verify: challenging %s failed", item[0] if item else "")

    def _prune_now_and_then(self) -> None:
        with self._lock:
            due = time.monotonic() - self._pruned > PRUNE_SECONDS
            if due:
                self._pruned = time.monotonic()
        if due:
            self.verifier.prune()

    def _flush_counts(self) -> None:
        with self._lock:
            dropped, self.dropped = self.dropped, 0
            duplicates, self.duplicates = self.duplicates, 0
            refusals, self.refusals = self.refusals, Counter()
        if dropped:
            self.verifier.caps.count("dropped: queue full", dropped)
        if duplicates:
            self.verifier.caps.count("skipped: already queued", duplicates)
        for reason, count in refusals.items():
            self.verifier.caps.count("refused: " + reason, count)
