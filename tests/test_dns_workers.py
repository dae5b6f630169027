"""`[dns] workers` / `--workers N`: processes sharing one port through SO_REUSEPORT, all answering."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import dns.message
import dns.query

from fswl.home import Home
from tests.conftest import require
from tests.harness.dnsd import fswl_serve

ZONE = "wl.example.org"
NAME = f"dave.umkc.edu.63.134.129.57.{ZONE}"


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


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def test_workers_share_the_port_and_all_answer(tmp_path: Path) -> None:
    root = tmp_path / "home"
    home = Home(root)
    home.whitelist.add("dave@umkc.edu", "57.129.134.63")
    (root / "fswl.toml").write_text(f'[dns]\nzone = "{ZONE}"\nworkers = 3\n')
    with fswl_serve(root, "dns") as port:
        processes = fswl_processes(root)
        assert sorted(processes.values()) == [False, True, True], processes
        before = {pid: cpu_ticks(pid) for pid in processes}
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
        busy = [pid for pid in processes if cpu_ticks(pid) > before[pid]]
        assert len(busy) == 3, (before, {pid: cpu_ticks(pid) for pid in processes})
        dig = require("dig")
        out = subprocess.run([dig, "+short", "+tcp", "-p", str(port), "@127.0.0.1", NAME], capture_output=True,
                             text=True, timeout=20).stdout
        assert out.split() == ["127.0.0.2"]
    assert fswl_processes(root) == {}  # the workers stopped with the first process
