"""What an operator sees of verification through a real `fswl -v serve policy`: the challenge logged
without its code, VERP misses counted by `fswl verify stats`, and secrets in files only the owner reads."""

from __future__ import annotations

import os
import queue
import re
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from fswl.app.home import Home
from tests.conftest import REPO, run_fswl
from tests.harness.dnsd import ANNOUNCED, START_SECONDS
from tests.harness.mail import Sink, mail_sink
from tests.test_verify_flow import policy_request

ZONE = "wl.test"
#: How long a count may take to reach the database (the worker writes it within a second).
COUNT_SECONDS = 10


class Served:
    """`fswl -v serve policy` under umask 022, its stderr kept line by line."""

    def __init__(self, root: Path) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "fswl", "-v", "serve", "policy"], cwd=REPO,
                                        env={**os.environ, "FSWL_HOME": str(root)}, umask=0o022,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.said: list[str] = []
        threading.Thread(target=lambda: [self.lines.put(line) for line in self.process.stderr], daemon=True).start()
        self.port = int(self.wait_for(lambda line: ANNOUNCED.match(line) is not None, START_SECONDS).split(":")[-1])

    def wait_for(self, wanted, seconds: float) -> str:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            self.said.append(line)
            if wanted(line):
                return line.strip()
        raise AssertionError(f"not said within {seconds:g} s:\n{''.join(self.said)}")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[tuple[Home, Sink, Served]]:
    root = tmp_path_factory.mktemp("verify-operator") / "home"
    root.mkdir()
    with mail_sink() as (sink, sink_port):
        (root / "fswl.toml").write_text(f"""
[dns]
zone = "{ZONE}"
[policy]
listen = "127.0.0.1:0"
exempt_clients = []
[web]
base_url = "https://wl.test.example"
[verify]
enabled = true
smarthost = "127.0.0.1:{sink_port}"
from = "whitelist@{ZONE}"
spf_refuse = []
""")
        served = Served(root)
        try:
            yield Home(root), sink, served
        finally:
            served.stop()


def test_a_challenge_sent_is_logged_at_info_without_its_code(site) -> None:
    _home, sink, served = site
    assert policy_request(served.port, "eve@example.org", "57.129.134.63").startswith("451")
    code = sink.wait_for("eve@example.org")["Reply-To"].split("@")[0].removeprefix("confirm-")
    line = served.wait_for(lambda text: "challenge sent" in text, COUNT_SECONDS)
    assert "eve@example.org" in line and "57.129.134.63" in line and "WARNING" not in line, line
    assert not any(code in said for said in served.said), "the log shows the code"
    documented = (REPO / "docs" / "verification.md").read_text()
    example = re.search(r"^fswl: verify: challenge sent to .*$", documented, re.M)
    assert example and line.endswith(example.group(0)), f"docs/verification.md shows {example}, fswl says {line}"


def test_verp_misses_are_counted_as_verify_stats_and_the_docs_show(site) -> None:
    home, _sink, served = site
    for local in ("list-bounces+bob=example.com", "bounce-" + "x" * 40):
        assert policy_request(served.port, f"{local}@lists.example.org", "198.51.100.9").startswith("451")
    deadline = time.monotonic() + COUNT_SECONDS
    while True:
        shown = run_fswl(home, "verify", "stats", check=True).stdout
        if "refused: VERP or tagged address: 2" in shown or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert "refused: VERP or tagged address: 2" in shown, shown
    documented = (REPO / "docs" / "verification.md").read_text()
    assert "refused: VERP or tagged address: " in documented


def test_files_holding_codes_or_keys_are_the_owners_only(site) -> None:
    home, sink, served = site
    assert policy_request(served.port, "frank@example.org", "57.129.134.64").startswith("451")
    sink.wait_for("frank@example.org")
    secret = [home.root / "verify" / "key", home.root / "verify" / "state.sqlite", *home.pending.glob("*.json")]
    secret += [p for p in (home.root / "verify").glob("state.sqlite-*")]  # -wal, -shm while it runs
    assert len(secret) >= 3, secret
    modes = {str(p.relative_to(home.root)): stat.filemode(os.stat(p).st_mode) for p in secret}
    assert set(modes.values()) == {"-rw-------"}, modes
