"""SeenRecorder: hits are noted as last-seen times at most once per period, in batches, never in mtimes."""

from __future__ import annotations

import os

from fswl.store.seen import SeenRecorder
from fswl.store import Whitelist


def test_hits_are_batched_and_recorded_at_most_once_a_period(wl: Whitelist) -> None:
    [path] = wl.add("a@b.org", "10.0.0.1")
    os.utime(path, (1000, 1000))
    rel = wl.tree.relative(path)
    now = [50_000.0]
    recorder = SeenRecorder(wl, refresh=86400, clock=lambda: now[0])
    for _ in range(100):
        recorder.record(path)
    assert wl.last_seen.get(rel) is None  # nothing written on the answer path
    assert recorder.flush() == 1 and wl.last_seen.get(rel) == 50_000
    now[0] += 3600
    recorder.record(path)
    assert recorder.flush() == 0  # within the day: no second write
    now[0] += 86400
    recorder.record(path)
    assert recorder.flush() == 1 and wl.last_seen.get(rel) == now[0]
    assert os.stat(path).st_mtime == 1000, "the mtime is the add time: being seen never moves it"


def test_a_vanished_entry_is_skipped(wl: Whitelist) -> None:
    [path] = wl.add("a@b.org", "10.0.0.1")
    recorder = SeenRecorder(wl)
    recorder.record(path)
    os.unlink(path)
    assert recorder.flush() == 0 and not os.path.exists(path)
    assert wl.last_seen.get(wl.tree.relative(path)) is None


def test_a_hit_on_a_removed_entry_neither_revives_it_nor_dates_it(wl: Whitelist) -> None:
    [path] = wl.add("r@x.example", "10.8.8.8")
    recorder = SeenRecorder(wl)
    recorder.record(path)  # answered a second before the removal
    wl.remove("r@x.example", "10.8.8.8")
    assert recorder.flush() == 0
    assert wl.lookup("r@x.example", "10.8.8.8") is None


def test_the_flush_thread_stops_cleanly(wl: Whitelist) -> None:
    [path] = wl.add("a@b.org", "10.0.0.1")
    os.utime(path, (1000, 1000))
    recorder = SeenRecorder(wl, flush_every=0.05)
    recorder.start()
    recorder.record(path)
    recorder.stop()
    assert (wl.last_seen.get(wl.tree.relative(path)) or 0) > 1000
