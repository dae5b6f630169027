"""A private Postfix instance on a loopback port, leaving the system's Postfix alone.

Follows ../shared/TESTING-NOTES.md: its own config, queue and data directories,
virtual mailboxes (no UNIX users), XCLIENT from loopback so tests can pose as
any relay, and a mail log file.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from tests.harness.docblocks import checked

#: Seconds to wait for Postfix to start listening.
START_SECONDS = 30
#: Where docs/postfix.md's main.cf asks fswl; tests point it at their own fswl.
DOC_POLICY = "inet:127.0.0.1:10040"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Postfix:
    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.port = port
        self.config = root / "etc"
        self.mailboxes = root / "mail"
        self.log = root / "maillog"

    def postfix(self, *args: str) -> subprocess.CompletedProcess[str]:
        # Postfix prints fatal errors only to a terminal; `script` gives it one.
        command = " ".join(["postfix", "-c", str(self.config), *args])
        return subprocess.run(["script", "-qec", command, "/dev/null"], capture_output=True, text=True, timeout=60)

    def delivered(self) -> list[str]:
        """The messages delivered to the virtual inbox, oldest first."""
        inbox = self.mailboxes / "inbox" / "new"
        if not inbox.is_dir():
            return []
        return [p.read_text(errors="replace") for p in sorted(inbox.iterdir(), key=lambda p: p.stat().st_mtime)]


def documented_restrictions(policy_port: int) -> str:
    """docs/postfix.md's main.cf lines for the policy service, asking fswl on ``policy_port``."""
    [block] = [b for b in checked("postfix.md", "main.cf") if "check_policy_service" in b.text]
    assert DOC_POLICY in block.text, f"{block} no longer asks {DOC_POLICY}"
    return block.text.replace(DOC_POLICY, f"inet:127.0.0.1:{policy_port}")


@contextmanager
def postfix(policy_port: int, restrictions: str | None = None) -> Iterator[Postfix]:
    """Start Postfix with docs/postfix.md's restrictions (or ``restrictions``) asking fswl on ``policy_port``.

    Its directory is made under /tmp, not pytest's 0700 temp dirs: Postfix's
    own user must be able to reach its data and queue directories.
    """
    root = Path(tempfile.mkdtemp(prefix="fswl-postfix-"))
    os.chmod(root, 0o755)
    try:
        instance = configure(root, documented_restrictions(policy_port) if restrictions is None else restrictions)
        with _started(instance):
            yield instance
    finally:
        shutil.rmtree(root, ignore_errors=True)


def configure(root: Path, main_cf: str) -> Postfix:
    """A private instance's config, queue and data directories under ``root``, ``main_cf`` ending its main.cf."""
    instance = Postfix(root, free_port())
    instance.config.mkdir(parents=True)
    for name in ("queue", "data", "mail"):
        (root / name).mkdir()
    shutil.copy("/etc/postfix/master.cf", instance.config / "master.cf")
    master = (instance.config / "master.cf").read_text().splitlines()
    master = [
        f"127.0.0.1:{instance.port} inet n - n - - smtpd" if line.startswith("smtp ") and " inet " in line else line
        for line in master
    ]
    (instance.config / "master.cf").write_text("\n".join(master) + "\n")
    (instance.config / "main.cf").write_text(f"""\
compatibility_level = 3.6
queue_directory = {root / 'queue'}
data_directory = {root / 'data'}
mail_owner = postfix
inet_interfaces = loopback-only
inet_protocols = ipv4
myhostname = mx.receiver.example
mydestination =
maillog_file = {instance.log}
maillog_file_prefixes = {root}
smtpd_authorized_xclient_hosts = 127.0.0.0/8
virtual_mailbox_domains = receiver.example
virtual_mailbox_base = {instance.mailboxes}
virtual_mailbox_maps = static:inbox/
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
""" + main_cf)
    shutil.chown(root / "data", "postfix")
    shutil.chown(instance.mailboxes, 65534, 65534)
    return instance


@contextmanager
def _started(instance: Postfix) -> Iterator[Postfix]:
    started = instance.postfix("start")
    try:
        _wait_listening(instance, started)
        yield instance
    finally:
        instance.postfix("stop")


def _wait_listening(instance: Postfix, started: subprocess.CompletedProcess[str]) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", instance.port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    log = instance.log.read_text() if instance.log.exists() else ""
    raise AssertionError(f"postfix did not start: {started.stdout} {started.stderr} {log}")
