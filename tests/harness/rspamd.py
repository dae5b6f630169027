"""A private rspamd: a copy of the system's /etc/rspamd with given local.d files, on loopback ports.

Nothing leaves the machine: the fuzzy servers are off and every DNS query
(the stock RBLs', rspamd.com's maps) goes to the test's own DNS server.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

#: A cold start compiles the stock rules' regular expressions (hyperscan): tens of seconds on a busy machine.
START_SECONDS = 240


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def confdir(root: Path, files: dict[str, str], dns_port: int | None = None) -> tuple[Path, list[str]]:
    """``root``/rspamd: /etc/rspamd plus ``files`` (name under it: text); returns it and rspamd's --var options."""
    directory = root / "rspamd"
    shutil.copytree("/etc/rspamd", directory, symlinks=True)
    for name, text in files.items():
        (directory / name).write_text(text)
    # The stock fuzzy_check asks rspamd.com's servers: no lookups leave a test (and configtest -s counts them).
    (directory / "override.d" / "fuzzy_check.conf").write_text("enabled = false;\n")
    state = root / "state"
    state.mkdir()
    # LOCAL_CONFDIR points the stock includes at the copy; without it they read /etc/rspamd/local.d.
    variables = [f"--var={name}={value}" for name, value in (
        ("LOCAL_CONFDIR", directory), ("CONFDIR", directory), ("DBDIR", state), ("RUNDIR", state), ("LOGDIR", state))]
    if dns_port is not None:
        (directory / "override.d" / "options.inc").write_text(
            f'dns {{ nameserver = ["127.0.0.1:{dns_port}"]; }}\n')
    return directory, variables


@contextmanager
def rspamd(directory: Path, variables: list[str]) -> Iterator[int]:
    """rspamd in the foreground on ``directory``; yields the normal worker's port."""
    ports = {name: free_port() for name in ("normal", "controller", "proxy")}
    for name, port in ports.items():
        (directory / "override.d" / f"worker-{name}.inc").write_text(f'bind_socket = "127.0.0.1:{port}";\n')
    (directory / "override.d" / "logging.inc").write_text('type = "console";\nlevel = "error";\n')
    log = directory / "rspamd.log"
    # -i: the test runs as root, and rspamd's own user could not read a temp dir of root's.
    with open(log, "wb") as output:
        process = subprocess.Popen(["rspamd", "-f", "-i", *variables, "-c", str(directory / "rspamd.conf")],
                                   stdout=output, stderr=subprocess.STDOUT)
    try:
        _wait_listening(process, ports["normal"], log)
        yield ports["normal"]
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def symbols(port: int, message: str, ip: str) -> dict[str, float]:
    """The symbols rspamd gives ``message`` from relay ``ip`` (HTTP /checkv2), with their scores."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/checkv2", data=message.encode(), method="POST",
                                     headers={"IP": ip})
    with urllib.request.urlopen(request, timeout=60) as response:
        result = json.load(response)
    return {name: symbol["score"] for name, symbol in result["symbols"].items()}


def _wait_listening(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"rspamd exited {process.returncode}: {log.read_text(errors='replace')[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"rspamd did not listen on {port} within {START_SECONDS} s")
