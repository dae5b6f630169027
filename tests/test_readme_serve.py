"""The README's first command on a clean clone: `bin/fswl serve`, then the tour's dig and nc lines.

A fresh `git clone` of this checkout's committed HEAD (uncommitted work is not
in a clone, as for a user) makes its own .venv, with nothing but the package,
and must answer what the README's tour says it answers. The tour's commands
and their output are read from README.md itself, so the two cannot drift.
The ports are the README's fixed ones: if something else holds them, the test
fails saying so rather than testing another server.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, require
from tests.harness.dnsd import ANNOUNCED

pytestmark = pytest.mark.integration

#: What `bin/fswl serve` listens on with the demo spool/ (README: "A five-minute tour").
README_PORTS = {"dns": 5353, "policy": 10040, "smtp": 2525, "web": 8025}
#: A new virtualenv and the package installed from pip's cache, on a loaded machine.
START_SECONDS = 300
#: Ctrl-C to a stopped service.
STOP_SECONDS = 30


def tour_commands(readme: str) -> list[tuple[str, str]]:
    """(command, expected output) for each `$ dig` and `$ ... | nc` line of the README's sh blocks."""
    found = []
    for block in re.findall(r"```sh\n(.*?)```", readme, re.S):
        lines = block.splitlines()
        for i, line in enumerate(lines):
            if not line.startswith("$ "):
                continue
            command = line[2:]
            if not (command.startswith("dig ") or re.search(r"\|\s*nc\b", command)):
                continue
            output = []
            for following in lines[i + 1:]:
                if following.startswith("$ "):
                    break
                output.append(following)
            found.append((command, "\n".join(output).strip()))
    return found


def busy_ports() -> list[str]:
    """The README ports that something on this machine already holds."""
    busy = []
    probes = [(name, port, socket.SOCK_STREAM) for name, port in README_PORTS.items()]
    probes.append(("dns", README_PORTS["dns"], socket.SOCK_DGRAM))
    for name, port, kind in probes:
        with socket.socket(socket.AF_INET, kind) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the services do: TIME_WAIT is not busy
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                busy.append(f"127.0.0.1:{port}/{'tcp' if kind == socket.SOCK_STREAM else 'udp'} ({name})")
    return busy


def clean_clone(target: Path) -> Path:
    """``git clone`` of this checkout at its committed HEAD."""
    git = require("git", "the clean-clone test clones this checkout")
    head = subprocess.run([git, "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode != 0:
        pytest.fail(f"{REPO} is not a git checkout, so it cannot be cloned: {head.stderr.strip()}")
    subprocess.run([git, "clone", "--quiet", str(REPO), str(target)], check=True, capture_output=True)
    subprocess.run([git, "-C", str(target), "checkout", "--quiet", "--detach", head.stdout.strip()],
                   check=True, capture_output=True)
    return target


def user_env() -> dict[str, str]:
    """A user's shell: no fswl setting and no virtualenv of the test run (HOME kept: pip's cache)."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith("FSWL_") and k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}


class Served:
    """`bin/fswl serve` in ``checkout``, its stderr read by a thread into a queue."""

    def __init__(self, checkout: Path) -> None:
        self.process = subprocess.Popen([str(checkout / "bin" / "fswl"), "serve"], cwd=checkout, env=user_env(),
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, text=True, start_new_session=True)
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self._queue.put(line)
        self._queue.put(None)

    def wait_listening(self) -> dict[str, int]:
        """{service: port} from the announce lines; fails with what it said if it stops or stalls."""
        ports: dict[str, int] = {}
        deadline = time.monotonic() + START_SECONDS
        while len(ports) < len(README_PORTS):
            try:
                line = self._queue.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"bin/fswl serve did not announce its services in {START_SECONDS} s:\n{self.said()}")
            if line is None:
                self.process.wait()
                pytest.fail(f"bin/fswl serve exited {self.process.returncode} before listening:\n{self.said()}")
            self.lines.append(line)
            announced = ANNOUNCED.match(line)
            if announced:
                ports[announced.group(1)] = int(announced.group(2))
        return ports

    def said(self) -> str:
        return "".join(self.lines[-40:])

    def interrupt(self) -> int:
        """Ctrl-C, as the README says; the exit status."""
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=STOP_SECONDS)
        finally:
            self.kill()

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self._reader.join(5)
        while not self._queue.empty():
            line = self._queue.get_nowait()
            if line is not None:
                self.lines.append(line)


def test_tour_commands_are_found() -> None:
    """The smoke test below checks what the README shows: the test point, a demo entry, the 451."""
    commands = tour_commands((REPO / "README.md").read_text())
    digs = [c for c, _ in commands if c.startswith("dig ")]
    assert any(" 2.0.0.127." in c for c in digs), "the README's tour lost its RFC 5782 test point query"
    assert any(f"-p {README_PORTS['dns']} " in c for c in digs)
    assert any("10040" in c and out.startswith("action=451") and "http" in out for c, out in commands), \
        "the README's tour lost its policy request answered 451 with the URL"


def test_readme_first_command_on_a_clean_clone(tmp_path: Path) -> None:
    require("dig", "the README tour asks the DNS service with dig")
    require("nc", "the README tour talks to the policy service with nc (netcat-openbsd)")
    busy = busy_ports()
    if busy:
        pytest.fail(f"the README's ports are in use: {', '.join(busy)}; `bin/fswl serve` needs them free "
                    f"(stop the other `fswl serve` or whatever holds them)")
    checkout = clean_clone(tmp_path / "clone")
    assert not (checkout / ".venv").exists()
    served = Served(checkout)
    try:
        ports = served.wait_listening()
        assert ports == README_PORTS, f"bin/fswl serve listens elsewhere than the README says:\n{served.said()}"
        commands = tour_commands((checkout / "README.md").read_text())
        assert commands, "no dig or nc lines in the README's tour"
        for command, expected in commands:
            run = subprocess.run(["bash", "-c", command], cwd=checkout, capture_output=True, text=True,
                                 timeout=30, env=user_env())
            assert run.stdout.strip() == expected, (
                f"README: $ {command}\nexpected: {expected!r}\ngot: {run.stdout.strip()!r} {run.stderr.strip()}\n"
                f"bin/fswl serve said:\n{served.said()}")
        status = served.interrupt()
        assert status == 0, f"bin/fswl serve exited {status} on Ctrl-C:\n{served.said()}"
        assert (checkout / ".venv" / "bin" / "fswl").exists(), "bin/fswl serve did not make the clone's own .venv"
    finally:
        served.kill()
