"""Extra `fswl serve dns` processes sharing one port through SO_REUSEPORT, replaced when they die.

One Python process answers on one core; the kernel spreads queries over
every socket bound to the port with SO_REUSEPORT, so N processes use N cores.
Each worker loads its own index (from the snapshot the first process wrote,
so that takes about a second) and watches db/ itself.

The first process looks at its workers every POLL_SECONDS. One that crashed
or was killed (SIGKILL from the OOM killer, a segfault, a non-zero exit) is
started again as fswl/dns/restart.py allows: at once the first time, with a
growing wait after that, and not at all once a slot crash-loops. One that
stopped cleanly (exit status 0, SIGTERM, SIGINT) was stopped on purpose, as
systemd does to every process of the unit at `systemctl stop`, and is left
down: replacing it would race the shutdown.
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from fswl.dns.restart import RestartPolicy

log = logging.getLogger(__name__)

#: Set in a worker's environment: bind with SO_REUSEPORT, start no workers of its own.
WORKER_ENV = "FSWL_DNS_WORKER"
#: Seconds a worker may take to stop before it is killed.
STOP_SECONDS = 10
#: Seconds between looks at the workers, so a dead one is noticed within one.
POLL_SECONDS = 0.5
#: Exit statuses of a worker stopped on purpose (negative: killed by that signal).
DELIBERATE_EXITS = frozenset({0, -signal.SIGTERM, -signal.SIGINT})
_PR_SET_PDEATHSIG = 1


def is_worker() -> bool:
    """True in a process started by :func:`spawn`."""
    return os.environ.get(WORKER_ENV) == "1"


def spawn(home: Path, host: str, port: int) -> subprocess.Popen[bytes]:
    """Start one worker process answering on host:port beside this one.

    Call it from the thread that lives as long as the process (the event
    loop's): PR_SET_PDEATHSIG fires when the *thread* that forked exits.
    """
    env = {**os.environ, WORKER_ENV: "1", "FSWL_HOME": str(home)}
    listen = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return subprocess.Popen([sys.executable, "-P", "-m", "fswl", "serve", "dns", "--listen", listen],
                            env=env, stdout=subprocess.DEVNULL,
                            preexec_fn=functools.partial(_die_with_parent, os.getpid()))


def stop(workers: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM each worker, then wait; kill what does not stop in time."""
    for process in workers:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in workers:
        try:
            process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            log.warning("dns worker %d did not stop; killing it", process.pid)
            process.kill()
            process.wait()


def exit_text(returncode: int) -> str:
    """How a process ended, as the operator reads it: 'was killed by SIGKILL', 'exited with status 1'."""
    if returncode < 0:
        try:
            return f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with status {returncode}"


@dataclass
class _Slot:
    """One worker's place: its process now, and how often it was restarted."""

    number: int
    policy: RestartPolicy
    process: subprocess.Popen[bytes] | None = None
    #: When a planned replacement starts (clock time); None: none planned.
    due: float | None = None


@dataclass
class WorkerPool:
    """The first process's workers, each replaced when it dies, within RestartPolicy's limits."""

    #: Starts one worker process (``lambda: spawn(home, host, port)``).
    start_process: Callable[[], subprocess.Popen[bytes]]
    count: int
    clock: Callable[[], float] = time.monotonic
    slots: list[_Slot] = field(init=False)
    #: Set by close(): nothing is started after that.
    closed: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        # Slot 1 is the first process itself; workers are 2..count+1.
        self.slots = [_Slot(n + 2, RestartPolicy(clock=self.clock)) for n in range(self.count)]

    def start(self) -> None:
        """Start every worker."""
        for slot in self.slots:
            slot.process = self.start_process()

    def alive(self) -> int:
        """Workers running now (as of the last look)."""
        return sum(1 for slot in self.slots if slot.process is not None)

    def pids(self) -> list[int]:
        """Process ids of the running workers."""
        return [slot.process.pid for slot in self.slots if slot.process is not None]

    async def supervise(self) -> None:
        """Look at the workers every POLL_SECONDS until cancelled."""
        while not self.closed:
            await asyncio.sleep(POLL_SECONDS)
            try:
                self.check()
            except Exception:  # a bug here must not end supervision for good
                log.exception("checking the dns workers failed")

    def check(self) -> None:
        """One look: notice dead workers, start the replacements that are due."""
        for slot in self.slots:
            process = slot.process
            if process is not None and process.poll() is not None:
                slot.process = None
                self._dead(slot, process)
            if slot.due is not None and slot.due <= self.clock() and not self.closed:
                slot.due = None
                error = self._restart(slot)
                if error is not None:
                    self._plan(slot, f"dns worker for process {slot.number} of {self.count + 1} could not start "
                                     f"({error})")

    def close(self) -> list[subprocess.Popen[bytes]]:
        """Start nothing more; return the workers still to be stopped."""
        self.closed = True
        return [slot.process for slot in self.slots if slot.process is not None]

    def _dead(self, slot: _Slot, process: subprocess.Popen[bytes]) -> None:
        how = f"dns worker {process.pid} (process {slot.number} of {self.count + 1}) {exit_text(process.returncode)}"
        if process.returncode in DELIBERATE_EXITS:
            log.warning("%s; not replacing it: that is a deliberate stop (restart fswl serve dns to get it back)",
                        how)
            return
        self._plan(slot, how)

    def _plan(self, slot: _Slot, how: str) -> None:
        delay = slot.policy.next_delay()
        if delay is None:
            policy = slot.policy
            log.error("%s; leaving it down: it was restarted %d times within %.0f s (a crash loop; see the "
                      "errors above), restart fswl serve dns once that is fixed", how, policy.limit, policy.window)
        elif delay == 0:
            error = self._restart(slot)
            if error is not None:
                self._plan(slot, f"{how}; its replacement could not start ({error})")
            elif slot.process is not None:
                log.warning("%s; replaced it with worker %d", how, slot.process.pid)
        else:
            slot.due = self.clock() + delay
            log.warning("%s; starting another in %.0f s (restart %d of %d allowed within %.0f s)", how, delay,
                        slot.policy.recent(), slot.policy.limit, slot.policy.window)

    def _restart(self, slot: _Slot) -> str | None:
        """Start the slot's worker again (unless closed); what went wrong, or None."""
        if self.closed:
            return None
        try:
            slot.process = self.start_process()
        except OSError as exc:  # fork or exec failed (EAGAIN, ENOMEM): counts as a death
            return exc.strerror or str(exc)
        log.info("dns worker %d started (process %d of %d)", slot.process.pid, slot.number, self.count + 1)
        return None


def _die_with_parent(parent: int) -> None:
    # Linux: a worker gets SIGTERM when the first process dies, even by SIGKILL,
    # so no orphan keeps answering from an index nobody updates the config of.
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the first process died between fork and prctl: no signal will come
        os._exit(1)
