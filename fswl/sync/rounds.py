"""Rounds of sync: one with every peer, the serving end, and the daemon loop."""

from __future__ import annotations

import logging
import queue
import sys
import threading
import time
from typing import Callable

from fswl.errors import FswlError
from fswl.sync.node import Node
from fswl.sync.outbox import FIRST_ROUND_WAIT
from fswl.sync.protocol import Session, Summary
from fswl.sync.wire import IDLE_TIMEOUTS, FdStream, Wire

log = logging.getLogger(__name__)

#: Failed rounds that still double a peer's wait (max_backoff caps it long before).
MAX_DOUBLINGS = 16
#: How often the daemon looks at its stop event while rounds run.
STOP_POLL_SECONDS = 0.5
#: How long a stopped daemon lets the rounds in flight finish (each is crash-safe if cut short).
STOP_WAIT_SECONDS = 10.0
#: The level of "next try with PEER in N s": news shown without -v, not a warning of its own.
NEXT_TRY = logging.WARNING - 1


def sync_round(node: Node, names: list[str] | None = None, full: bool = False, rescan: bool = False,
               sleep: Callable[[float], None] = time.sleep,
               progress: Callable[[str], Callable[[int], None]] | None = None,
               ) -> list[tuple[str, Summary | FswlError]]:
    """One conversation with each peer (or each named one); an unreachable peer does not stop the others.

    ``progress(peer)`` gives the function that each batch sent or applied calls with its record count.

    The first round with a peer (none has reconciled since it was added)
    reconciles by digests, as ``full`` does: this node's writes from before
    the peer existed were never journalled, and batches already drained
    from the spool cannot be sent.
    """
    from fswl.sync.transport import connect  # paramiko: only the connecting side needs it

    settings = node.settings
    results: list[tuple[str, Summary | FswlError]] = []
    for name in names or node.peers.names():
        try:
            peer = node.peers.get(name)
            first = not node.peers.paired(peer.name)
            if first and settings.require_signatures and not full:
                # Reconciled records carry no signature: taking them is the admin's call (--full).
                log.warning("first round with %s: not reconciling by digests, as [sync] require_signatures "
                            "is set; run `fswl sync --full %s` once if you trust its tree", peer.name, peer.name)
                first = False
            if first:
                _settle(node, peer.name, sleep)
            with connect(peer, ["sync", "--serve"], settings.timeout, settings.keepalive) as wire:
                wire.set_deadline(settings.deadline)
                session = Session(node, wire, client=True, expect=peer.name)
                if progress:
                    session.on_records = progress(peer.name)
                summary = session.run(full=full or first, rescan=rescan)
            if summary.full:
                node.peers.pair(peer.name)
            summary.drained += node.drain()  # what the server side learned reaches this node's spool too
            results.append((peer.name, summary))
        except FswlError as exc:
            log.warning("sync with %s failed: %s", name, exc)
            results.append((name, exc))
    return results


def _settle(node: Node, name: str, sleep: Callable[[float], None]) -> None:
    """Wait until every writer has seen peer ``name`` (fswl.sync.outbox), so that the digests of
    this round find each write made before it as journalled or marked."""
    try:
        age = time.time() - node.peers.added(name)
    except OSError:
        return
    if age < FIRST_ROUND_WAIT:
        sleep(min(FIRST_ROUND_WAIT - age, FIRST_ROUND_WAIT))  # a clock set back waits no longer


def serve_stdio(node: Node) -> Summary:
    """The remote end: converse over this process's stdin and stdout, within ``[sync] deadline``."""
    settings = node.settings
    wire = Wire(FdStream(sys.stdin.fileno(), sys.stdout.fileno()), "client", idle=settings.timeout * IDLE_TIMEOUTS)
    wire.set_deadline(settings.deadline)
    try:
        return Session(node, wire, client=False).run()
    finally:
        try:
            wire.flush()
        except FswlError:
            pass


class Backoff:
    """When each peer is next due: every ``interval`` seconds, and after failed rounds with it
    twice as long each time, up to ``max_backoff``; one good round brings it back to ``interval``."""

    def __init__(self, interval: float, max_backoff: float) -> None:
        self.interval = interval
        self.max_backoff = max(max_backoff, interval)
        self.failures: dict[str, int] = {}
        self.due: dict[str, float] = {}

    def is_due(self, name: str, now: float) -> bool:
        return self.due.get(name, now) <= now

    def done(self, name: str, ok: bool, started: float) -> float:
        """Record a round with ``name`` begun at ``started``; returns when it is next due."""
        failures = 0 if ok else min(self.failures.get(name, 0) + 1, MAX_DOUBLINGS)
        self.failures[name] = failures
        self.due[name] = started + min(self.interval * 2 ** failures, self.max_backoff)
        if failures:  # shown by default, after the failure it follows
            log.log(NEXT_TRY, "next try with %s in %g s", name, round(self.due[name] - started, 1))
        return self.due[name]

    def next_due(self, names: list[str], now: float) -> float:
        """The earliest time one of ``names`` is due (a peer never tried is due now)."""
        return min((self.due.get(n, now) for n in names), default=now + self.interval)


def run_daemon(node: Node, stop: threading.Event, names: list[str] | None = None,
               report: Callable[[list[tuple[str, Summary | FswlError]]], None] | None = None,
               sync: Callable[..., list[tuple[str, Summary | FswlError]]] = sync_round,
               clock: Callable[[], float] = time.monotonic) -> None:
    """Sync with each peer every ``interval`` seconds until ``stop``.

    Each peer has its own thread for its round and its own backoff: a slow
    peer (bounded by ``[sync] deadline``) or one that keeps failing never
    delays the rounds with the others. Peers added or removed meanwhile are
    seen at the next tick.
    """
    settings = node.settings
    schedule = Backoff(settings.interval, settings.max_backoff)
    done: queue.Queue[tuple[str, float, list[tuple[str, Summary | FswlError]]]] = queue.Queue()
    running: dict[str, threading.Thread] = {}

    def one(name: str, started: float) -> None:
        try:  # a Node per thread: a Spool's cached descriptors and locks are not shared between threads
            results = sync(Node(node.home), [name])
        except FswlError as exc:  # bad configuration: say so and keep trying, it may be fixed
            log.error("sync round with %s failed: %s", name, exc)
            results = [(name, exc)]
        except BaseException as exc:  # never lose the peer's schedule to a bug; the traceback is in the log
            log.exception("sync round with %s failed", name)
            results = [(name, FswlError(f"internal error: {exc!r}"))]
        done.put((name, started, results))

    def collect(wait: float) -> None:
        try:
            name, started, results = done.get(timeout=wait) if wait > 0 else done.get_nowait()
        except queue.Empty:
            return
        running.pop(name).join()
        for peer, result in results:
            schedule.done(peer, not isinstance(result, FswlError), started)
        if report and results:
            report(results)

    while not stop.is_set():
        started = clock()
        configured = names or node.peers.names()
        for name in configured:
            if name not in running and schedule.is_due(name, started):
                running[name] = threading.Thread(target=one, args=(name, started), name=f"fswl-sync-{name}",
                                                 daemon=True)
                running[name].start()
        idle = [n for n in configured if n not in running]
        wake = min(schedule.next_due(idle, started), started + settings.interval) if idle else \
            started + settings.interval
        if running:  # woken by the first round to end, or when the next peer is due
            collect(min(max(wake - clock(), 0.0), STOP_POLL_SECONDS))
        else:
            stop.wait(max(wake - clock(), 0.0))
    ends = time.monotonic() + STOP_WAIT_SECONDS  # rounds in flight may finish; whatever is cut short is safe
    while running and time.monotonic() < ends:
        collect(max(ends - time.monotonic(), 0.0))
