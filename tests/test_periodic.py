"""fswl.util.periodic: a job every N seconds in a thread; a failure is logged and retried; stop runs it once more."""

from __future__ import annotations

import logging
import threading

import pytest

from fswl.util.periodic import Periodic


def test_a_failed_run_is_logged_and_the_next_run_retries(caplog: pytest.LogCaptureFixture) -> None:
    runs: list[int] = []
    twice = threading.Event()

    def job() -> None:
        runs.append(len(runs))
        if len(runs) == 1:
            raise OSError("disk full for a moment")
        twice.set()

    periodic = Periodic(job, 0.01, "fswl-test", "the test job failed", logging.getLogger("fswl.test"))
    with caplog.at_level(logging.ERROR, logger="fswl.test"):
        periodic.start()
        assert twice.wait(10), "the job ran once and never again"
        periodic.stop()
    assert "the test job failed" in caplog.text and "disk full for a moment" in caplog.text
    stopped_at = len(runs)
    assert not any(t.name == "fswl-test" for t in threading.enumerate())
    assert len(runs) == stopped_at  # nothing runs after stop


def test_stop_runs_the_job_once_more_in_the_caller() -> None:
    callers: list[str] = []
    periodic = Periodic(lambda: callers.append(threading.current_thread().name), 3600, "fswl-test", "failed",
                        logging.getLogger("fswl.test"))
    periodic.start()
    periodic.stop()
    assert callers == [threading.current_thread().name]  # the hour never passed: only the final run
