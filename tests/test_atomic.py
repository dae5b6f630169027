"""fswl.util.atomic: the one way fswl replaces a file (temp, fsync, rename, directory fsync)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fswl.util import atomic
from tests.conftest import REPO, seeded_random


def test_write_atomic_replaces_whole_with_open_modes(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    atomic.write_atomic(target, "one")
    atomic.write_atomic(target, b"two")
    assert target.read_bytes() == b"two"
    mask = os.umask(0o022)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask
    secret = tmp_path / "secret"
    atomic.write_atomic(secret, b"k", mode=0o600)
    assert secret.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secret", "state.json"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "export.zone"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic.replacing(target) as out:
            out.write(b"half of the new")
            raise RuntimeError("the export failed midway")
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["export.zone"]


def test_the_file_and_its_directory_are_fsynced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[str] = []
    real = os.fsync

    def spy(fd: int) -> None:
        synced.append("dir" if os.path.isdir(f"/proc/self/fd/{fd}") else "file")
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    atomic.write_atomic(tmp_path / "peers.toml", b"x")
    assert synced == ["file", "dir"]
    synced.clear()
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "log").write_text("x")
    atomic.replace(tmp_path / "a" / "log", tmp_path / "log.1")
    assert synced == ["dir", "dir"]  # both directories the rename touched
    synced.clear()
    atomic.write_atomic(tmp_path / "cache", b"x", durable=False)
    assert synced == []


_WRITER = """
import sys
from fswl.util.atomic import write_atomic
path, size = sys.argv[1], int(sys.argv[2])
n = 0
print("ready", flush=True)
while True:
    n += 1
    write_atomic(path, (b"%d:" % n).ljust(size, b"x"))
"""


def test_kill_9_mid_write_leaves_the_old_or_the_new_file_whole(tmp_path: Path) -> None:
    rng = seeded_random("kill -9 of write_atomic")
    target = tmp_path / "state"
    size = 1 << 20
    for _round in range(10):
        writer = subprocess.Popen([sys.executable, "-c", _WRITER, str(target), str(size)], cwd=REPO,
                                  stdout=subprocess.PIPE, text=True)
        assert writer.stdout is not None and writer.stdout.readline() == "ready\n"
        time.sleep(rng.uniform(0.0, 0.3))
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        writer.stdout.close()
        if target.exists():
            data = target.read_bytes()
            assert len(data) == size and re.fullmatch(rb"\d+:x+", data), data[:40]
        leftovers = [p.name for p in tmp_path.iterdir() if p.name != "state"]
        assert all(atomic.is_temp(name) for name in leftovers), leftovers  # hidden: never read as state


def test_no_module_renames_files_itself() -> None:
    """One durability discipline: every replace or rename of a file goes through fswl.util.atomic."""
    offenders = []
    for path in sorted((REPO / "fswl").rglob("*.py")):
        if path.name == "atomic.py" and path.parent.name == "util":
            continue
        text = path.read_text(encoding="utf-8")
        if "os.replace(" in text or "os.rename(" in text:
            offenders.append(str(path.relative_to(REPO)))
    assert offenders == [], f"rename through fswl.util.atomic (write_atomic / replacing / replace): {offenders}"
