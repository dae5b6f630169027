"""Shared fixtures: a fresh home per test, the CLI as a subprocess, real tools or a stated skip."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from fswl.app.home import Home
from fswl.store import Whitelist

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No FSWL_* setting of the caller leaks into a test (except those that say how tests run)."""
    for name in list(os.environ):
        if name.startswith("FSWL_") and name not in ("FSWL_REQUIRE_INTEGRATION", "FSWL_SLOW", "FSWL_SEED", "FSWL_OPS"):
            monkeypatch.delenv(name)


@pytest.fixture(autouse=True)
def no_leaked_threads():
    """Fail a test that leaves non-daemon threads running: a service it did not stop."""
    before = set(threading.enumerate())
    yield
    leaked = [t for t in threading.enumerate() if t not in before and t.is_alive() and not t.daemon]
    for thread in leaked:
        thread.join(timeout=5)
    leaked = [t.name for t in leaked if t.is_alive()]
    assert not leaked, f"threads left running: {leaked}"


@pytest.fixture
def home(tmp_path: Path) -> Home:
    root = tmp_path / "home"
    root.mkdir()
    return Home(root)


@pytest.fixture
def wl(home: Home) -> Whitelist:
    return home.whitelist


def require(tool: str, why: str = "") -> str:
    """The path of an outside program, or skip (fail under FSWL_REQUIRE_INTEGRATION=1)."""
    path = shutil.which(tool) or next(
        (p for p in (f"/usr/sbin/{tool}", f"/usr/bin/{tool}") if os.access(p, os.X_OK)), None
    )
    if path is None:
        message = f"{tool} is not installed{': ' + why if why else ''} (bin/test installs it as root)"
        if os.environ.get("FSWL_REQUIRE_INTEGRATION") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path


def run_fswl(home: Home | Path | str, *args: str, input: str | None = None,
             check: bool = False, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run `fswl ARGS` as a user would, in a subprocess, on ``home``."""
    root = home.root if isinstance(home, Home) else Path(home)
    full_env = {**os.environ, "FSWL_HOME": str(root), **(env or {})}
    result = subprocess.run(
        [sys.executable, "-m", "fswl", *args], input=input, capture_output=True, text=True,
        env=full_env, timeout=timeout, cwd=REPO,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"fswl {' '.join(args)} exited {result.returncode}: {result.stderr}")
    return result


@pytest.fixture
def fswl(home: Home):
    """``fswl("add", "a@b.org", "192.0.2.1")`` runs the CLI on this test's home."""
    def call(*args: str, **kwargs):
        return run_fswl(home, *args, **kwargs)
    return call


def seeded_random(label: str) -> random.Random:
    """A Random for a randomized test: seeded from TEST_SEED to replay a run, else fresh; the seed is printed
    (pytest shows it with a failure)."""
    seed = int(os.environ.get("TEST_SEED") or random.randrange(1 << 31))
    print(f"{label}: seed {seed} (TEST_SEED={seed} replays it)")
    return random.Random(seed)
