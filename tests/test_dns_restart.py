"""Replacing dead DNS workers: the restart policy and the pool, on a fake clock and fake processes."""

from __future__ import annotations

import logging
import signal

import pytest

from fswl.dns.restart import BACKOFF_FIRST, BACKOFF_MAX, RESTART_LIMIT, RESTART_WINDOW, RestartPolicy
from fswl.dns.workers import WorkerPool, exit_text


class Clock:
    """A clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeProcess:
    """Popen's poll/pid/returncode, ended by the test."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        return self.returncode


class Spawner:
    """start_process for the pool: hands out FakeProcesses (or fails while told to)."""

    def __init__(self) -> None:
        self.started: list[FakeProcess] = []
        self.failing = False

    def __call__(self) -> FakeProcess:
        if self.failing:
            raise OSError(11, "Resource temporarily unavailable")
        process = FakeProcess(100 + len(self.started))
        self.started.append(process)
        return process


def test_first_restart_is_at_once_then_the_wait_doubles() -> None:
    clock = Clock()
    policy = RestartPolicy(clock=clock)
    delays = []
    for _ in range(RESTART_LIMIT):
        delay = policy.next_delay()
        delays.append(delay)
        clock.now += delay + 0.1  # the replacement dies 0.1 s after it started
    assert delays == [0.0] + [min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** n) for n in range(RESTART_LIMIT - 1)]
    assert policy.next_delay() is None
    assert policy.given_up
    clock.now += 10 * RESTART_WINDOW
    assert policy.next_delay() is None  # a slot given up stays down


def test_deaths_far_apart_are_always_replaced_at_once() -> None:
    clock = Clock()
    policy = RestartPolicy(clock=clock)
    for _ in range(3 * RESTART_LIMIT):
        assert policy.next_delay() == 0.0
        clock.now += RESTART_WINDOW + 1
    assert not policy.given_up


def test_the_wait_is_capped() -> None:
    clock = Clock()
    policy = RestartPolicy(limit=50, window=10_000, clock=clock)
    delays = [policy.next_delay() for _ in range(12)]
    assert max(delays) == BACKOFF_MAX  # type: ignore[type-var]


@pytest.mark.parametrize("returncode,text", [
    (-signal.SIGKILL, "was killed by SIGKILL"),
    (-signal.SIGSEGV, "was killed by SIGSEGV"),
    (1, "exited with status 1"),
    (-200, "was killed by signal 200"),
], ids=["kill", "segv", "status", "unknown-signal"])
def test_exit_text(returncode: int, text: str) -> None:
    assert exit_text(returncode) == text


def test_a_killed_worker_is_replaced_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    clock, spawner = Clock(), Spawner()
    pool = WorkerPool(spawner, 2, clock=clock)  # type: ignore[arg-type]
    pool.start()
    spawner.started[0].returncode = -signal.SIGKILL
    with caplog.at_level(logging.WARNING, logger="fswl.dns.workers"):
        pool.check()
    assert pool.pids() == [102, 101]
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", "dns worker 100 (process 2 of 3) was killed by SIGKILL; replaced it with worker 102"),
    ]


def test_a_crash_loop_backs_off_then_leaves_the_slot_down_saying_so_once(caplog: pytest.LogCaptureFixture) -> None:
    clock, spawner = Clock(), Spawner()
    pool = WorkerPool(spawner, 1, clock=clock)  # type: ignore[arg-type]
    pool.start()
    with caplog.at_level(logging.WARNING, logger="fswl.dns.workers"):
        for _ in range(200):  # 20 s of looks every 0.1 s, each new worker crashing at once
            if pool.slots[0].process is not None:
                pool.slots[0].process.returncode = 1
            pool.check()
            clock.now += 0.1
    assert len(spawner.started) == 1 + RESTART_LIMIT
    assert pool.alive() == 0
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert f"restarted {RESTART_LIMIT} times within {RESTART_WINDOW:.0f} s" in errors[0]
    waits = [r.getMessage() for r in caplog.records if "starting another in" in r.getMessage()]
    assert [w.split("starting another in ")[1].split(" s")[0] for w in waits] == ["1", "2", "4", "8"]


def test_a_worker_stopped_on_purpose_is_not_replaced(caplog: pytest.LogCaptureFixture) -> None:
    clock, spawner = Clock(), Spawner()
    pool = WorkerPool(spawner, 2, clock=clock)  # type: ignore[arg-type]
    pool.start()
    spawner.started[0].returncode = 0
    spawner.started[1].returncode = -signal.SIGTERM
    with caplog.at_level(logging.WARNING, logger="fswl.dns.workers"):
        pool.check()
    assert len(spawner.started) == 2 and pool.alive() == 0
    assert all("deliberate stop" in r.getMessage() for r in caplog.records) and len(caplog.records) == 2


def test_nothing_starts_after_close() -> None:
    clock, spawner = Clock(), Spawner()
    pool = WorkerPool(spawner, 1, clock=clock)  # type: ignore[arg-type]
    pool.start()
    running = pool.close()
    assert [p.pid for p in running] == [100]
    spawner.started[0].returncode = -signal.SIGKILL
    pool.check()
    clock.now += BACKOFF_MAX
    pool.check()
    assert len(spawner.started) == 1


def test_a_failed_fork_counts_as_a_death(caplog: pytest.LogCaptureFixture) -> None:
    clock, spawner = Clock(), Spawner()
    pool = WorkerPool(spawner, 1, clock=clock)  # type: ignore[arg-type]
    pool.start()
    spawner.started[0].returncode = -signal.SIGKILL
    spawner.failing = True
    with caplog.at_level(logging.WARNING, logger="fswl.dns.workers"):
        pool.check()
        assert "its replacement could not start (Resource temporarily unavailable); starting another in 1 s" in \
            caplog.records[-1].getMessage()
        spawner.failing = False
        clock.now += BACKOFF_FIRST
        pool.check()
    assert pool.pids() == [101]
