"""`kill -9` of `fswl import`, `fswl add` and `fswl expire` at random moments: nothing half-written, a rerun finishes.

Each test kills the command (its main process only: the workers of a large
import must die with it) a bounded number of times at seeded random moments
(the seed is printed; TEST_SEED replays it), checks after every kill that
the tree holds nothing half-made and that fsck finds it clean, then reruns
the command once to the end and checks the whole tree.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

from fswl.app.home import Home
from fswl.store.maintenance import fsck
from fswl.store.tree import TOMB_DIR
from fswl.util import atomic
from tests.conftest import REPO, run_fswl, seeded_random
from tests.shell import wait_for

pytestmark = pytest.mark.slow
KILLS = 20


def _killed_at_random(home: Home, args: list[str], delay: float, stdin: Path | None = None,
                      count: Callable[[], int] | None = None) -> None:
    """Start `fswl ARGS`, SIGKILL its main process after ``delay`` s, and wait until none of its processes is left.

    With ``count`` (of entries), check that no worker went on writing after the kill.
    """
    with open(stdin or os.devnull, "rb") as source:
        process = subprocess.Popen([sys.executable, "-m", "fswl", *args], stdin=source, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, env={**os.environ, "FSWL_HOME": str(home.root)},
                                   cwd=REPO, start_new_session=True)
        try:
            process.wait(timeout=delay)  # finished before the kill came: that is a moment too
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.wait()
    at_kill = count() if count else 0
    assert wait_for(lambda: not _live_in_group(process.pid), seconds=60), "a worker outlived the killed command"
    if count:  # a worker mid-create when its parent died may finish that one entry, no more
        assert count() - at_kill <= 2, "workers went on writing after the import was killed"


def _live_in_group(pgid: int) -> list[int]:
    """Processes of a process group that still run (not zombies waiting for a reaper)."""
    live = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            live.append(int(entry))
    return live


def _assert_nothing_half_written(home: Home) -> None:
    """Every entry an empty plain file, no hidden leftovers in db/, no temp file anywhere, fsck clean."""
    for top, dirs, files in os.walk(home.db):
        for name in dirs + files:
            assert not name.startswith(".") or (name == TOMB_DIR and name in dirs), os.path.join(top, name)
        for name in files:
            assert os.lstat(os.path.join(top, name)).st_size == 0, os.path.join(top, name)
    for top, _dirs, files in os.walk(home.root):
        assert not [n for n in files if atomic.is_temp(n)], top  # none of these write atomically mid-kill
    for journal in home.spool.glob("**/.open"):
        lines = journal.read_bytes().splitlines(keepends=True)
        assert all(line.endswith(b"\n") for line in lines), journal  # one write() per line: never cut by a kill
    problems = fsck(home.whitelist)
    assert problems == [], [str(p) for p in problems]


def _entries(home: Home, pattern: str) -> int:
    return sum(1 for _ in home.db.glob(pattern))


def test_kill_9_of_a_large_import(tmp_path: Path) -> None:
    rng = seeded_random("kill -9 of fswl import")
    home = Home(tmp_path / "home")
    data = tmp_path / "list.txt"
    data.write_text("".join(f"10.{n // 250}.{n % 250}.0/24\n" for n in range(21_000)))  # parallel: above 20,000
    args = ["import", str(data), "--sender", "*@big.example", "--workers", "2"]
    for _kill in range(KILLS):
        _killed_at_random(home, args, rng.uniform(0.1, 3.0), data,
                          count=lambda: _entries(home, "ip4/10/*/*/*@big.example"))
        _assert_nothing_half_written(home)
    rerun = run_fswl(home, *args, timeout=600)
    assert (rerun.returncode, rerun.stdout) == (0, f"imported 21000 entries for *@big.example from {data}\n"), rerun.stderr
    assert _entries(home, "ip4/10/*/*/*@big.example") == 21_000
    assert run_fswl(home, "fsck").returncode == 0
    _assert_nothing_half_written(home)


def test_kill_9_of_add(tmp_path: Path) -> None:
    rng = seeded_random("kill -9 of fswl add")
    home = Home(tmp_path / "home")
    args = ["add", "*@big.example", "2001:db8:0:1000::/52"]  # 4,096 /64 directories
    for _kill in range(KILLS):
        _killed_at_random(home, args, rng.uniform(0.05, 1.5))
        _assert_nothing_half_written(home)
    rerun = run_fswl(home, *args, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert _entries(home, "ip6/2001/0db8/0000/1*/*@big.example") == 4096
    assert run_fswl(home, "fsck").returncode == 0


def test_kill_9_of_expire(tmp_path: Path) -> None:
    rng = seeded_random("kill -9 of fswl expire")
    home = Home(tmp_path / "home")
    wl = home.whitelist

    def fill() -> None:
        import ipaddress

        wl.add_many("*", [ipaddress.ip_network(f"10.{n // 250}.{n % 250}.0/24") for n in range(2000)])
        for n in range(0, 2000, 50):
            wl.remove("x@y.org", f"10.{n // 250}.{n % 250}.1")  # tombstones for --tombstone-days 0

    args = ["expire", "--days", "0", "--tombstone-days", "0"]
    for _kill in range(KILLS):
        if _entries(home, "ip4/10/*/*/*") < 700:
            fill()
        _killed_at_random(home, args, rng.uniform(0.05, 1.5))
        _assert_nothing_half_written(home)
    rerun = run_fswl(home, *args, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert not [p for p in home.db.rglob("*") if p.is_file()]
    assert run_fswl(home, "fsck").returncode == 0
