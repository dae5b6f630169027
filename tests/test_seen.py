"""SeenRecorder: hits refresh last-seen times at most once per period, in batches."""

from __future__ import annotations

import os

from fswl.seen import SeenRecorder
from fswl.store import Whitelist


def test_hits_are_batched_and_refreshed_at_most_once_a_period(wl: Whitelist) -> None:
    [path] = wl.add("a@b.org", "10.0.0.1")
    os.utime(path, (1000, 1000))
    now = [50_000.0]
    recorder = SeenRecorder(wl, refresh=86400, clock=lambda: now[0])
    for _ in range(100):
        recorder.record(path)
    assert os.stat(path).st_mtime == 1000  # nothing written on the answer path
    assert recorder.flush() == 1 and os.stat(path).st_mtime == 50_000
    now[0] += 3600
    recorder.record(path)
    assert recorder.flush() == 0  # within the day: no second write
    now[0] += 86400
    recorder.record(path)
    assert recorder.flush() == 1 and os.stat(path).st_mtime == now[0]


def test_a_vanished_entry_is_skipped(wl: Whitelist) -> None:
    [path] = wl.add("a@b.org", "10.0.0.1")
    recorder = SeenRecorder(wl)
    recorder.record(path)
    os.unlink(path)
    assert recorder.flush() == 0 and not os.path.exists(path)


def test_the_flush_thread_stops_cleanly(wl: Whitelist) -> None:
    [path] = wl.add("a@b.org", "10.0.0.1")
    os.utime(path, (1000, 1000))
    recorder = SeenRecorder(wl, flush_every=0.05)
    recorder.start()
    recorder.record(path)
    recorder.stop()
    assert os.stat(path).st_mtime > 1000
