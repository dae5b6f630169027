"""`[dns] workers` / `--workers N`: processes sharing one port through SO_REUSEPORT, all answering."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import dns.message
import dns.query

from fswl.app.home import Home
from tests.conftest import require
from tests.harness.dnsd import REPO, fswl_serve

ZONE = "wl.example.org"
NAME = f"dave.umkc.edu.63.134.129.57.{ZONE}"
#: A killed worker is noticed within a second; its replacement then starts.
REPLACED_SECONDS = 5
#: Wakeups a process must show for the 2,880 queries spread over three (an
#: idle one has a few a second; one sharing the load about a thousand).
MIN_WAKEUPS = 150


def fswl_processes(home: Path) -> dict[int, bool]:
    """pid -> is a worker, for every `fswl serve` process on ``home``."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"FSWL_HOME={home}".encode() in environ:
            found[int(entry)] = b"FSWL_DNS_WORKER=1" in environ
    return found


def wakeups(pid: int) -> int:
    """Voluntary context switches of all of ``pid``'s threads: its UDP thread makes one per query it receives."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            status = (task / "status").read_text()
        except OSError:  # a thread that just ended
            continue
        total += int(status.split("voluntary_ctxt_switches:")[1].split()[0])
    return total


def udp_bound(pid: int, port: int) -> bool:
    """Whether process ``pid`` holds a UDP socket bound to ``port`` (so it is ready to answer)."""
    inodes = {f"socket:[{line.split()[9]}]" for line in Path("/proc/net/udp").read_text().splitlines()[1:]
              if int(line.split()[1].split(":")[1], 16) == port}
    try:
        return any(os.readlink(f"/proc/{pid}/fd/{fd}") in inodes for fd in os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return False


def answer_from_every_process(port: int, pids: list[int]) -> None:
    """Query over many source ports; each of ``pids`` must have received a good share.

    Counted as wakeups, not CPU time: with the reply cache a process answers
    a thousand repeated questions in less than one clock tick.
    """
    before = {pid: wakeups(pid) for pid in pids}
    # Many source ports: the kernel hashes each to one of the sockets.
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(48)]
    try:
        for _ in range(60):
            for sock in sockets:
                reply = dns.query.udp(dns.message.make_query(NAME, "A"), "127.0.0.1", port=port, sock=sock,
                                      timeout=5)
                assert [rr.to_text() for rr in reply.answer[0]] == ["127.0.0.2"]
    finally:
        for sock in sockets:
            sock.close()
    after = {pid: wakeups(pid) for pid in pids}
    assert all(after[pid] - before[pid] >= MIN_WAKEUPS for pid in pids), (before, after)


def home_with_workers(tmp_path: Path, workers: int = 3) -> Path:
    """A home listing dave@umkc.edu via 57.129.134.63, served by ``workers`` processes."""
    root = tmp_path / "home"
    home = Home(root)
    home.whitelist.add("dave@umkc.edu", "57.129.134.63")
    (root / "fswl.toml").write_text(f'[dns]\nzone = "{ZONE}"\nworkers = {workers}\n')
    return root


def test_workers_share_the_port_and_all_answer(tmp_path: Path) -> None:
    root = home_with_workers(tmp_path)
    with fswl_serve(root, "dns") as port:
        processes = fswl_processes(root)
        assert sorted(processes.values()) == [False, True, True], processes
        answer_from_every_process(port, list(processes))
        dig = require("dig")
        out = subprocess.run([dig, "+short", "+tcp", "-p", str(port), "@127.0.0.1", NAME], capture_output=True,
                             text=True, timeout=20).stdout
        assert out.split() == ["127.0.0.2"]
    assert fswl_processes(root) == {}  # the workers stopped with the first process


def test_a_killed_worker_is_replaced_and_the_new_one_answers(tmp_path: Path) -> None:
    root = home_with_workers(tmp_path)
    with fswl_serve(root, "dns") as port:
        processes = fswl_processes(root)
        victim = next(pid for pid, worker in processes.items() if worker)
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + REPLACED_SECONDS
        while time.monotonic() < deadline:
            now = fswl_processes(root)
            if victim not in now and len(now) == 3:
                break
            time.sleep(0.1)
        assert victim not in now and sorted(now.values()) == [False, True, True], (processes, now)
        (new,) = set(now) - set(processes)
        while not udp_bound(new, port) and time.monotonic() < deadline + REPLACED_SECONDS:
            time.sleep(0.1)
        assert udp_bound(new, port), f"worker {new} never bound port {port}"
        answer_from_every_process(port, list(now))
        # A worker stopped on purpose (as systemd stops every process of the
        # unit) stays down: replacing it would race a shutdown.
        os.kill(new, signal.SIGTERM)
        time.sleep(1.5)
        assert sorted(fswl_processes(root).values()) == [False, True]
    assert fswl_processes(root) == {}  # the replacement stopped with the first process


def test_a_replacement_dies_with_the_first_process(tmp_path: Path) -> None:
    root = home_with_workers(tmp_path, 2)
    first = subprocess.Popen([sys.executable, "-m", "fswl", "serve", "dns", "--listen", "127.0.0.1:0"],
                             env={**os.environ, "FSWL_HOME": str(root)}, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert first.stderr is not None
        for line in first.stderr:
            if "fswl: dns: zone" in line:
                break
        (victim,) = [pid for pid, worker in fswl_processes(root).items() if worker]
        os.kill(victim, signal.SIGKILL)
        replacement = wait_for(lambda: [pid for pid, worker in fswl_processes(root).items()
                                        if worker and pid != victim])
        assert replacement, fswl_processes(root)
        first.kill()  # no SIGTERM, no chance to stop its workers: the kernel's PDEATHSIG must
        first.wait()
        assert wait_for(lambda: fswl_processes(root) == {}), fswl_processes(root)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()


def wait_for(condition, seconds: float = REPLACED_SECONDS):
    """Poll ``condition`` until it is true or ``seconds`` pass; its last value."""
    deadline = time.monotonic() + seconds
    while not (value := condition()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return value
