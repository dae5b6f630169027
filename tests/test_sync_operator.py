"""What an operator sees of sync, through real sshd instances: errors once and in words, stamped
daemon lines with the next try, no idle chatter, progress on a terminal, `peers set`, `--send-access-list`."""

from __future__ import annotations

import os
import pty
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from fswl.app.home import Home
from tests.conftest import REPO, require, run_fswl
from tests.harness.sshd import Mesh, closed_url, keygen

pytestmark = pytest.mark.integration
DAY = 86400
#: A log line off the journal: local time with its offset, then the usual "fswl: ".
STAMPED = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4} fswl: ")
#: How long a daemon runs in these tests: a few of the harness's 1 s rounds.
DAEMON_SECONDS = 4


@pytest.fixture
def mesh(tmp_path: Path) -> Iterator[Mesh]:
    """Mirrors a and b through their own sshd; a knows b as a peer (b does not know a)."""
    require("sshd", "mirrors sync over SSH")
    require("ssh-keygen")
    mesh = Mesh(tmp_path / "mesh", ["a", "b"])
    try:
        yield mesh
    finally:
        mesh.stop()


def fswl(mesh: Mesh, node: str, *args: str, check: bool = False, **kwargs) -> subprocess.CompletedProcess[str]:
    return run_fswl(mesh[node].home, *args, check=check, **kwargs)


def set_sync(mesh: Mesh, node: str, line: str) -> None:
    with open(mesh[node].home / "fswl.toml", "a") as toml:  # [sync] is the harness's last table
        toml.write(line + "\n")


def failure_lines(stderr: str, peer: str) -> list[str]:
    return [line for line in stderr.splitlines() if f"sync with {peer} failed" in line]


def assert_said_once_in_words(result: subprocess.CompletedProcess[str], *words: str) -> str:
    assert result.returncode == 1, result
    lines = failure_lines(result.stderr, "b")
    assert len(lines) == 1, f"the failure is said {len(lines)} times:\n{result.stderr}"
    assert "Errno" not in result.stderr and "Traceback" not in result.stderr, result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def test_a_refused_connection_is_said_once_and_in_words(mesh: Mesh) -> None:
    fswl(mesh, "a", *mesh.peer_args("b", closed_url(mesh["b"])), check=True)
    line = assert_said_once_in_words(fswl(mesh, "a", "sync"), "connection refused", "is sshd running")
    assert "b: b:" not in line and "failed: b:" not in line, line


def test_a_server_that_never_speaks_ssh_times_out_in_words(mesh: Mesh) -> None:
    set_sync(mesh, "a", "timeout = 1")
    with socket.socket() as silent:  # accepts, and never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        url = f"ssh://root@127.0.0.1:{port}{mesh['b'].home}"
        fswl(mesh, "a", *mesh.peer_args("b", url), check=True)
        assert_said_once_in_words(fswl(mesh, "a", "sync"), "no SSH server answered", "timed out after 1 s")


def test_a_port_that_never_answers_times_out_in_words(mesh: Mesh) -> None:
    set_sync(mesh, "a", "timeout = 1")
    with socket.socket() as full:  # a listen queue kept full: the kernel drops further SYNs unanswered
        full.bind(("127.0.0.1", 0))
        full.listen(0)
        port = full.getsockname()[1]
        waiting = []
        for _ in range(3):
            waiting.append(socket.socket())
            waiting[-1].setblocking(False)
            waiting[-1].connect_ex(("127.0.0.1", port))
        try:
            time.sleep(0.2)
            fswl(mesh, "a", *mesh.peer_args("b", f"ssh://root@127.0.0.1:{port}{mesh['b'].home}"), check=True)
            assert_said_once_in_words(fswl(mesh, "a", "sync"), "connecting timed out after 1 s")
        finally:
            for sock in waiting:
                sock.close()


def test_a_key_the_peer_does_not_accept_is_an_authentication_failure(mesh: Mesh, tmp_path: Path) -> None:
    stranger = keygen(tmp_path / "stranger_key")
    fswl(mesh, "a", *mesh.peer_args("b"), check=True)
    fswl(mesh, "a", "peers", "set", "b", "--key", str(stranger), check=True)
    assert_said_once_in_words(fswl(mesh, "a", "sync"), "SSH authentication failed", str(stranger))


def test_unknown_and_changed_host_keys_are_said_once(mesh: Mesh, tmp_path: Path) -> None:
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    fswl(mesh, "a", *mesh.peer_args("b"), check=True)
    fswl(mesh, "a", "peers", "set", "b", "--known-hosts", str(empty), check=True)
    assert_said_once_in_words(fswl(mesh, "a", "sync"), "unknown host key")
    changed = tmp_path / "changed_known_hosts"
    other = Path(f"{mesh['a'].sshd.host_key}.pub").read_text().split()
    changed.write_text(f"[127.0.0.1]:{mesh['b'].sshd.port} {other[0]} {other[1]}\n")
    fswl(mesh, "a", "peers", "set", "b", "--known-hosts", str(changed), check=True)
    assert_said_once_in_words(fswl(mesh, "a", "sync"), "CHANGED")


def run_daemon(mesh: Mesh, node: str, *args: str, journal: bool = False, during=None) -> str:
    """`fswl [ARGS] sync --daemon` for DAEMON_SECONDS (``during()`` runs meanwhile); what it said on stderr.

    ``journal``: stderr is a pipe that JOURNAL_STREAM names, as systemd does for a service.
    """
    read, write = os.pipe()
    status = os.fstat(write)
    env = {**os.environ, "FSWL_HOME": str(mesh[node].home)}
    if journal:
        env["JOURNAL_STREAM"] = f"{status.st_dev}:{status.st_ino}"
    else:
        env.pop("JOURNAL_STREAM", None)
    process = subprocess.Popen([sys.executable, "-m", "fswl", *args, "sync", "--daemon"], cwd=REPO, env=env,
                               stdout=subprocess.DEVNULL, stderr=write)
    os.close(write)
    chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: chunks.extend(iter(lambda: os.read(read, 65536), b"")), daemon=True)
    reader.start()
    try:
        if during is not None:
            during()
        time.sleep(DAEMON_SECONDS)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        reader.join(10)
        os.close(read)
    err = b"".join(chunks).decode()
    assert process.returncode == 0, err
    return err


def test_daemon_lines_carry_the_time_and_the_next_try_off_the_journal(mesh: Mesh) -> None:
    fswl(mesh, "a", *mesh.peer_args("b", closed_url(mesh["b"])), check=True)
    err = run_daemon(mesh, "a")
    failed = failure_lines(err, "b")
    assert failed and all(STAMPED.match(line) for line in failed), err
    # interval 1 s and max_backoff 2 s in the harness: the first failure waits 2 s
    tries = [line for line in err.splitlines() if "next try with b in 2 s" in line]
    assert tries and all(STAMPED.match(line) for line in tries), err
    assert "WARNING: next try" not in err, "the next try is news, not a second warning"


def test_under_the_journal_lines_carry_no_time_of_their_own(mesh: Mesh) -> None:
    fswl(mesh, "a", *mesh.peer_args("b", closed_url(mesh["b"])), check=True)
    err = run_daemon(mesh, "a", journal=True)
    failed = failure_lines(err, "b")
    assert failed and not any(STAMPED.match(line) for line in err.splitlines()), err
    assert all(line.startswith("fswl: WARNING: sync with b failed") for line in failed), err


def test_serve_lines_carry_the_time_off_the_journal(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "FSWL_HOME": str(home)}
    env.pop("JOURNAL_STREAM", None)
    process = subprocess.Popen([sys.executable, "-m", "fswl", "serve", "policy", "--listen", "127.0.0.1:0"],
                               cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        lines = [process.stderr.readline() for _ in range(2)]
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)
    announce = next((line for line in lines if "policy: Postfix policy delegation on" in line), "")
    assert STAMPED.match(announce), lines


def test_the_daemon_logs_rounds_that_carry_something_and_not_idle_ones(mesh: Mesh) -> None:
    fswl(mesh, "a", *mesh.peer_args("b"), check=True)
    fswl(mesh, "a", "sync", check=True)  # the first, reconciling round
    err = run_daemon(mesh, "a", "-v", during=lambda: (
        time.sleep(1.5), fswl(mesh, "a", "add", "busy@example.org", "192.0.2.5", check=True)))
    rounds = [line for line in err.splitlines() if "b: sent" in line]
    assert len(rounds) == 1 and "b: sent 1 batches" in rounds[0] and STAMPED.match(rounds[0]), err
    assert fswl(mesh, "b", "check", "busy@example.org", "192.0.2.5").returncode == 0


def test_a_round_on_a_terminal_counts_the_records_sent_and_applied(mesh: Mesh) -> None:
    fswl(mesh, "a", *mesh.peer_args("b"), check=True)
    fswl(mesh, "a", "sync", check=True)
    for i in range(3):
        fswl(mesh, "a", "add", f"p{i}@example.org", "192.0.2.6", check=True)
    leader, follower = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "fswl", "sync"], cwd=REPO, stdout=subprocess.PIPE,
                               stderr=follower, env={**os.environ, "FSWL_HOME": str(mesh["a"].home)})
    os.close(follower)
    shown = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # EIO: the terminal's other end is closed
            break
        if not chunk:
            break
        shown += chunk
    out, _ = process.communicate(timeout=60)
    os.close(leader)
    assert process.returncode == 0, shown
    assert b"sync with b: records sent and applied: 3 done" in shown, shown
    assert b"b: sent 1 batches" in out


def test_peers_set_changes_one_field_and_keeps_the_others_and_the_pairing(mesh: Mesh) -> None:
    fswl(mesh, "a", *mesh.peer_args("b", closed_url(mesh["b"])), check=True)
    assert fswl(mesh, "a", "sync").returncode == 1
    changed = fswl(mesh, "a", "peers", "set", "b", "--url", mesh["b"].url, check=True)
    assert f"url {mesh['b'].url}" in changed.stdout
    settings = (mesh["a"].home / "peers" / "b.toml").read_text()
    assert str(mesh.key) in settings and str(mesh.known_hosts) in settings, settings
    fswl(mesh, "a", "sync", check=True)
    assert (mesh["a"].home / "peers" / ".paired" / "b").exists()
    fswl(mesh, "a", "peers", "set", "b", "--known-hosts", str(mesh.known_hosts), check=True)
    assert (mesh["a"].home / "peers" / ".paired" / "b").exists(), "a changed setting is no new peer"
    assert f"b\t{mesh['b'].url}" in fswl(mesh, "a", "peers", "ls", check=True).stdout
    nothing = fswl(mesh, "a", "peers", "set", "b")
    assert nothing.returncode == 2 and "--url" in nothing.stderr
    unknown = fswl(mesh, "a", "peers", "set", "c", "--url", mesh["b"].url)
    assert unknown.returncode == 2 and "no peer named 'c'" in unknown.stderr


def test_send_access_list_sends_the_entries_seen_in_use_now(mesh: Mesh) -> None:
    fswl(mesh, "a", *mesh.peer_args("b"), check=True)
    fswl(mesh, "b", *mesh.peer_args("a"), check=True)
    fswl(mesh, "a", "add", "used@example.org", "57.129.134.63", check=True)
    fswl(mesh, "a", "sync", check=True)  # b has it; a's first access list (empty) went out
    entry = "db/ip4/57/129/134/63/used@example.org"
    old = time.time() - 100 * DAY
    for node in ("a", "b"):
        os.utime(mesh[node].home / entry, (old, old))
    assert Home(mesh["a"].home).whitelist.touch_seen([str(mesh["a"].home / entry)]) == 1  # a DNS or policy hit
    fswl(mesh, "a", "sync", check=True)
    rel = entry.removeprefix("db/")  # last seen lives apart from the add time (state/seen.sqlite, docs/tree.md)
    assert (Home(mesh["b"].home).whitelist.last_seen.get(rel) or 0) < old + DAY, "the list waits for access_list_days"
    sent = fswl(mesh, "a", "sync", "--send-access-list", check=True)
    assert "access list: 1 entries" in sent.stderr, sent.stderr
    assert (Home(mesh["b"].home).whitelist.last_seen.get(rel) or 0) > time.time() - DAY, "b did not learn it is in use"
    assert (mesh["b"].home / entry).stat().st_mtime == pytest.approx(old), "being seen never moves the add time"
