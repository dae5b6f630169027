"""`fswl serve` as a real subprocess on a loopback port chosen by the kernel."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

REPO = Path(__file__).resolve().parent.parent.parent
#: How long a service may take to say where it listens.
START_SECONDS = 30


@contextmanager
def fswl_serve(home: Path, service: str, listen: str = "127.0.0.1:0") -> Iterator[int]:
    """Run `fswl serve SERVICE --listen LISTEN`; yield the port it bound; stop it with SIGTERM."""
    env = {**os.environ, "FSWL_HOME": str(home)}
    process = subprocess.Popen(
        [sys.executable, "-m", "fswl", "serve", service, "--listen", listen],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env, cwd=REPO,
    )
    try:
        port = _wait_for_port(process, service)
        yield port
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        assert process.returncode == 0, f"fswl serve {service} exited {process.returncode}"


def _wait_for_port(process: subprocess.Popen[str], service: str) -> int:
    deadline = time.monotonic() + START_SECONDS
    seen = []
    assert process.stderr is not None
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        seen.append(line)
        found = re.search(rf"{service}: .* on \[?[0-9a-fA-F:.]+\]?:(\d+)", line)
        if found:
            return int(found.group(1))
    process.kill()
    raise AssertionError(f"fswl serve {service} did not start: {''.join(seen)}")
