"""Extra `fswl serve dns` processes sharing one port through SO_REUSEPORT.

One Python process answers on one core; the kernel spreads queries over
every socket bound to the port with SO_REUSEPORT, so N processes use N cores.
Each worker loads its own index (from the snapshot the first process wrote,
so that takes about a second) and watches db/ itself.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

log = logging.getLogger(__name__)

#: Set in a worker's environment: bind with SO_REUSEPORT, start no workers of its own.
WORKER_ENV = "FSWL_DNS_WORKER"
#: Seconds a worker may take to stop before it is killed.
STOP_SECONDS = 10
_PR_SET_PDEATHSIG = 1


def is_worker() -> bool:
    """True in a process started by :func:`spawn`."""
    return os.environ.get(WORKER_ENV) == "1"


def spawn(home: Path, host: str, port: int, count: int) -> list[subprocess.Popen[bytes]]:
    """Start ``count`` worker processes answering on host:port beside this one."""
    env = {**os.environ, WORKER_ENV: "1", "FSWL_HOME": str(home)}
    listen = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return [
        subprocess.Popen([sys.executable, "-m", "fswl", "serve", "dns", "--listen", listen],
                         env=env, stdout=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        for _ in range(count)
    ]


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


def _die_with_parent() -> None:
    # Linux: a worker gets SIGTERM when the first process dies, even by SIGKILL,
    # so no orphan keeps answering from an index nobody updates the config of.
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass
