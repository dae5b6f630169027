"""Large imports on every core: creating files is system-call bound, so split the work by /8."""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
from typing import Callable, Sequence

from fswl.errors import FswlError
from fswl.names import IPNetwork
from fswl.store.whitelist import Whitelist

#: Below this many networks one process is quicker than starting workers.
PARALLEL_THRESHOLD = 20_000
#: Networks a worker handles between progress reports.
PROGRESS_EVERY = 1000
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>

# Set in the parent just before forking; each worker reads its share from it.
_job: tuple[Whitelist, str, list[list[IPNetwork]]] | None = None


def add_parallel(wl: Whitelist, sender: str, networks: Sequence[IPNetwork], workers: int | None = None,
                 progress: Callable[[int], None] | None = None,
                 refused: Callable[[IPNetwork, str], None] | None = None) -> int:
    """Like Whitelist.add_many, in ``workers`` forked processes; returns entries written or already there.

    Networks are dealt out by their first level (/8 or /16), so no two
    workers ever make the same directory, and each worker keeps the store's
    listeners (the sync journal is safe with several writers).  Workers die
    with the parent (a `kill -9` of the import leaves no writer behind), and
    a rerun finishes what a killed run left.  ``refused`` is as for add_many
    (networks are reported in no particular order).
    """
    global _job
    workers = workers or os.cpu_count() or 1
    if workers < 2 or len(networks) < PARALLEL_THRESHOLD or multiprocessing.get_start_method() != "fork":
        return wl.add_many(sender, networks, progress=progress, refused=refused)
    shares: list[list[IPNetwork]] = [[] for _ in range(workers)]
    for network in networks:
        first = network.network_address.packed[: 1 if network.version == 4 else 2]
        shares[hash((network.version, first)) % workers].append(network)
    _job = (wl, sender, shares)
    context = multiprocessing.get_context("fork")
    done = context.Value("q", 0)
    try:
        with context.Pool(workers, initializer=_remember_counter, initargs=(done,)) as pool:
            result = pool.map_async(_add_share, range(workers))
            reported = 0
            while not result.ready():
                result.wait(0.2)
                if progress and done.value > reported:
                    progress(done.value - reported)
                    reported = done.value
            counts = result.get()
            if progress and done.value > reported:
                progress(done.value - reported)
    finally:
        _job = None
    for _written, refusals in counts:
        for network, reason in refusals:
            if refused is None:
                raise FswlError(reason)
            refused(network, reason)
    return sum(written for written, _refusals in counts)


_counter = None


def _remember_counter(counter) -> None:  # runs in each worker
    global _counter
    _counter = counter
    _die_with_parent()


def _die_with_parent() -> None:
    """Have the kernel kill this worker when the import that forked it dies (Linux prctl)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the getppid() check between chunks still stops it
        pass


def _add_share(index: int) -> tuple[int, list[tuple[IPNetwork, str]]]:
    assert _job is not None
    wl, sender, shares = _job
    share = shares[index]
    parent = os.getppid()
    written = 0
    refusals: list[tuple[IPNetwork, str]] = []
    for start in range(0, len(share), PROGRESS_EVERY):
        if os.getppid() != parent:  # orphaned: the import was killed; a rerun finishes the job
            os._exit(1)
        chunk = share[start : start + PROGRESS_EVERY]
        written += wl.add_many(sender, chunk, refused=lambda n, why: refusals.append((n, why)))
        with _counter.get_lock():
            _counter.value += len(chunk)
    return written, refusals
