"""The docs' cron lines, taken from the doc text, run as cron would: an unprivileged user, cron's environment.

Cron runs a line of /etc/cron.d with `/bin/sh -c`, PATH=/usr/bin:/bin and
nothing else of ours, as the user the line names. Here that user is
``nobody`` owning a real home; the doc's install paths map to this
checkout (the installed fswl is the test venv's, the home and the output
directories are temporary ones).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pwd
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

from fswl.app.home import Home
from tests.conftest import require, run_fswl
from tests.harness.docblocks import Block, all_blocks
from tests.harness.sshd import Mesh

pytestmark = pytest.mark.integration

CRON_ENV = {"PATH": "/usr/bin:/bin", "SHELL": "/bin/sh"}  # what Debian's cron gives a job, with HOME and LOGNAME
#: The user the docs' lines run as; the test runs them as an unprivileged user of this machine instead.
DOC_USER = "fswl"
LISTED_RELAY = "192.0.2.7"

#: Every checked /etc/cron.d block of docs/ (install.md's expire, exports.md's exports, mirrors.md's sync).
CRON_BLOCKS = [b for b in all_blocks() if b.checked and (b.file or "").startswith("/etc/cron.d/")]


def test_the_docs_cron_lines_are_found() -> None:
    assert {b.doc for b in CRON_BLOCKS} == {"install.md", "exports.md", "mirrors.md"}, CRON_BLOCKS


def lines(block: Block) -> list[tuple[str, str]]:
    """(user, command) of each job line of a /etc/cron.d block."""
    jobs = []
    for line in block.text.splitlines():
        if line.strip() and not line.startswith("#"):
            fields = line.split(None, 6)
            assert len(fields) == 7, f"{block}: not a /etc/cron.d line (5 times, a user, a command): {line}"
            assert "%" not in fields[6], f"{block}: cron turns % into a newline: {line}"
            jobs.append((fields[5], fields[6]))
    assert jobs, f"{block} has no job line"
    return jobs


@pytest.mark.parametrize("block", CRON_BLOCKS, ids=str)
def test_each_documented_cron_line_runs_as_an_unprivileged_user_with_crons_path(block: Block) -> None:
    if os.geteuid() != 0:
        message = "running a cron line as another user needs root (bin/test runs as root in CI)"
        if os.environ.get("FSWL_REQUIRE_INTEGRATION") == "1":
            pytest.fail(message)
        pytest.skip(message)
    for user, command in lines(block):
        program = program_of(command)
        assert program.startswith("/") and os.access(program, os.X_OK) or program == "/opt/fswl/bin/fswl", (
            f"{block}: {program} is not an installed program's full path (cron's PATH is {CRON_ENV['PATH']})")
        if user == "root":
            continue  # a root line's job is the system's (nsd-control reload); its program exists, as checked
        assert user == DOC_USER, f"{block}: a line runs as {user}, not as {DOC_USER}"
        run_as_nobody(block, command)


def program_of(command: str) -> str:
    """The program a command runs, past a leading `flock -n LOCK`."""
    words = shlex.split(command)
    if words[0] == "flock":
        words = words[3:] if words[1] == "-n" else words[2:]
    return shutil.which(words[0], path=CRON_ENV["PATH"]) or words[0]


def run_as_nobody(block: Block, command: str) -> None:
    nobody = pwd.getpwnam("nobody")
    scratch = Path(tempfile.mkdtemp(prefix="fswl-cron-"))  # not pytest's 0700 dirs: nobody must reach it
    os.chmod(scratch, 0o755)
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, scratch, ignore_errors=True)
        words = shlex.split(command)
        doc_home = words[words.index("--home") + 1]
        if "sync" in words:  # a round with a real peer (its own sshd), who holds the entry
            mesh = stack.enter_context(mesh_of(scratch / "mesh"))
            home = Home(mesh["a"].home)
            run_fswl(home, *mesh.peer_args("b"), check=True)
            Home(mesh["b"].home).whitelist.add("*", LISTED_RELAY)
        else:
            home = Home(scratch / "home")
            home.root.mkdir()
            home.whitelist.add("*", LISTED_RELAY)
        out = scratch / "out"
        out.mkdir()
        job = command.replace("/opt/fswl/bin/fswl", str(Path(sys.executable).parent / "fswl"))
        job = job.replace(doc_home, str(home.root))
        output = words[words.index("--output") + 1] if "--output" in words else None
        if output:
            job = job.replace(os.path.dirname(output), str(out))
        subprocess.run(["chown", "-R", f"{nobody.pw_uid}:{nobody.pw_gid}", str(home.root), str(out)], check=True)
        ran = cron(job, nobody)
        assert ran.returncode == 0, f"{block}: `{job}` as nobody: {ran.stderr}"
        if output:
            written = out / os.path.basename(output)
            reversed_relay = ".".join(reversed(LISTED_RELAY.split(".")))
            text = written.read_text()
            assert LISTED_RELAY in text or reversed_relay in text, f"{block}: {written} lacks {LISTED_RELAY}"
        if "sync" in words:
            assert home.whitelist.lookup("x@example.net", LISTED_RELAY) is not None, f"{block}: nothing synced"
        if words[0] == "flock":
            lock = Path((words[2] if words[1] == "-n" else words[1]).replace(doc_home, str(home.root)))
            assert lock.parent == home.root, f"{block}: the lock is not in fswl's home"
            with open(lock) as held:  # another export still running: this one must not start
                fcntl.flock(held, fcntl.LOCK_EX)
                assert cron(job, nobody).returncode == 1, f"{block}: ran while {lock} was held"


@contextlib.contextmanager
def mesh_of(root: Path) -> Iterator[Mesh]:
    require("sshd", "the sync cron line syncs with a peer over SSH")
    require("ssh-keygen")
    mesh = Mesh(root, ["a", "b"])
    try:
        yield mesh
    finally:
        mesh.stop()


def cron(job: str, user: pwd.struct_passwd) -> subprocess.CompletedProcess[str]:
    env = {**CRON_ENV, "HOME": user.pw_dir, "LOGNAME": user.pw_name}
    # The test's interpreter may sit where nobody cannot look (a pyenv under /root): the job may read and
    # search anywhere (CAP_DAC_READ_SEARCH), and still write only where the user may, so /run stays closed.
    read_anything = ["--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search"]
    return subprocess.run(
        ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups", *read_anything, "env", "-i",
         *(f"{k}={v}" for k, v in env.items()), "/bin/sh", "-c", job],
        capture_output=True, text=True, timeout=120, cwd="/",
    )
