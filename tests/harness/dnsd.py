"""`fswl serve` as a real subprocess on a loopback port chosen by the kernel."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

REPO = Path(__file__).resolve().parent.parent.parent
#: How long a service may take to say where it listens.
START_SECONDS = 30
#: A service's "listens on" line (time-stamped off the journal): the service and its port.
ANNOUNCED = re.compile(r"(?:[0-9T:+-]+ )?fswl: (\w+): .* on \[?[0-9a-fA-F:.]+\]?:(\d+)")


@contextmanager
def serve(home: Path, *services: str, args: tuple[str, ...] = (),
          log: list[str] | None = None) -> Iterator[dict[str, int]]:
    """`fswl serve SERVICES... ARGS` (each listening as fswl.toml or ARGS say); yields {service: port}.

    What the server says after it started is drained in the background (a
    full pipe would stall it) and shown if it exits with an error; ``log``,
    if given, collects those lines for the test to read.
    """
    env = {**os.environ, "FSWL_HOME": str(home)}
    process = subprocess.Popen([sys.executable, "-m", "fswl", "serve", *services, *args],
                               stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env, cwd=REPO)
    lines: list[str] = [] if log is None else log
    ports: dict[str, int] = {}
    deadline = time.monotonic() + START_SECONDS
    assert process.stderr is not None
    while len(ports) < len(services) and time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        lines.append(line)
        found = ANNOUNCED.match(line)
        if found:
            ports[found.group(1)] = int(found.group(2))
    if len(ports) < len(services):
        process.kill()
        process.wait()
        raise AssertionError(f"fswl serve {' '.join(services)} did not start: {''.join(lines)}")
    drain = threading.Thread(target=lambda: lines.extend(process.stderr), daemon=True)  # type: ignore[arg-type]
    drain.start()
    try:
        yield ports
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        drain.join(5)
        assert process.returncode == 0, f"fswl serve exited {process.returncode}: {''.join(lines[-30:])}"


@contextmanager
def fswl_serve(home: Path, service: str, listen: str = "127.0.0.1:0",
               log: list[str] | None = None) -> Iterator[int]:
    """Run `fswl serve SERVICE --listen LISTEN`; yield the port it bound; stop it with SIGTERM."""
    with serve(home, service, args=("--listen", listen), log=log) as ports:
        yield ports[service]
