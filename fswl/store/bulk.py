"""Large imports on every core: creating files is system-call bound, so split the work by /8."""

from __future__ import annotations

import multiprocessing
import os
from typing import Callable, Sequence

from fswl.names import IPNetwork
from fswl.store.whitelist import Whitelist

#: Below this many networks one process is quicker than starting workers.
PARALLEL_THRESHOLD = 20_000
#: Networks a worker handles between progress reports.
PROGRESS_EVERY = 1000

# Set in the parent just before forking; each worker reads its share from it.
_job: tuple[Whitelist, str, list[list[IPNetwork]]] | None = None


def add_parallel(wl: Whitelist, sender: str, networks: Sequence[IPNetwork], workers: int | None = None,
                 progress: Callable[[int], None] | None = None) -> int:
    """Like Whitelist.add_many, in ``workers`` forked processes; returns entries written.

    Networks are dealt out by their first level (/8 or /16), so no two
    workers ever make the same directory, and each worker keeps the store's
    listeners (the sync journal is safe with several writers).
    """
    global _job
    workers = workers or os.cpu_count() or 1
    if workers < 2 or len(networks) < PARALLEL_THRESHOLD or multiprocessing.get_start_method() != "fork":
        return wl.add_many(sender, networks, progress=progress)
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
    return sum(counts)


_counter = None


def _remember_counter(counter) -> None:  # runs in each worker
    global _counter
    _counter = counter


def _add_share(index: int) -> int:
    assert _job is not None
    wl, sender, shares = _job
    share = shares[index]
    written = 0
    for start in range(0, len(share), PROGRESS_EVERY):
        chunk = share[start : start + PROGRESS_EVERY]
        written += wl.add_many(sender, chunk)
        with _counter.get_lock():
            _counter.value += len(chunk)
    return written
