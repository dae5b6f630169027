"""A hostile sync peer speaking fswl's wire format through a real sshd, from either end.

- ``Intruder``: the attacker as the *client*: it logs in to a mirror's sshd
  (the mesh's own key, as a peer whose key was stolen, or one that is simply
  malicious) and runs that mirror's ``fswl sync --serve``, then says whatever
  a test scripts.
- As a *server*: this file is the remote command of a peer (``fswl peers add
  evil ... --remote-command "python hostile.py PLAN.json"``), so the mirror's
  own ``fswl sync`` talks to a liar. The plan (``Plan``, written as JSON)
  says what it claims, what batches it sends, what a reconciliation returns,
  and how it trickles or cuts its output; it logs every header it receives
  to PLAN.json.log.

Only the standard library and cryptography, so that the server side runs
in sshd's bare environment.
"""

from __future__ import annotations

import base64
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

SIG_PREFIX = b"sig ed25519 "
#: What this file runs as when it is a peer's remote command.
SERVER_COMMAND = f"{sys.executable} {Path(__file__).resolve()}"


def message(header: dict[str, Any], payload: bytes = b"") -> bytes:
    if payload:
        header = {**header, "size": len(payload)}
    return json.dumps(header).encode() + b"\n" + payload


def batch(origin: str, seq: int, lines: list[bytes], key_file: Path | None = None) -> bytes:
    """A batch as fswl seals it, signed with the OpenSSH ed25519 key in ``key_file`` if given."""
    body = b"fswl-batch 1 %s %d %d\n" % (origin.encode(), seq, len(lines)) + b"".join(lines)
    if key_file is None:
        return body
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_ssh_private_key(Path(key_file).read_bytes(), password=None)
    return body + SIG_PREFIX + base64.b64encode(key.sign(body)) + b"\n"  # type: ignore[union-attr]


def record(op: str, path: str, when: float, target: str = "") -> bytes:
    return f"{op}\t{path}\t{target}\t{when:.6f}\n".encode()


def read_message(rfile: BinaryIO) -> tuple[dict[str, Any], bytes] | None:
    """One message, or None at the end of the stream."""
    line = rfile.readline()
    if not line:
        return None
    header = json.loads(line)
    size = header.get("size", 0)
    payload = rfile.read(size) if size else b""
    return header, payload


class Intruder:
    """An SSH session to ``mirror``'s ``fswl sync --serve``, driven by hand."""

    def __init__(self, mesh: Any, mirror: Any) -> None:
        import paramiko

        from tests.harness.sshd import REMOTE_COMMAND

        self.client = paramiko.SSHClient()
        self.client.load_host_keys(str(mesh.known_hosts))
        self.client.connect("127.0.0.1", port=mirror.sshd.port, username="root", key_filename=str(mesh.key),
                            allow_agent=False, look_for_keys=False, timeout=10)
        transport = self.client.get_transport()
        assert transport is not None
        self.channel = transport.open_session()
        self.channel.exec_command(f"{REMOTE_COMMAND} --home {mirror.home} sync --serve")
        self.rfile = self.channel.makefile("rb")

    def send(self, data: bytes) -> None:
        self.channel.sendall(data)

    def trickle(self, data: bytes, every: float, until: float) -> int:
        """Send ``data`` one byte every ``every`` seconds until done, the far end hangs up, or ``until``
        (a time.monotonic()); returns the bytes sent."""
        sent = 0
        for byte in data:
            if time.monotonic() >= until or self.channel.exit_status_ready():
                break
            try:
                self.channel.sendall(bytes([byte]))
            except OSError:
                break
            sent += 1
            time.sleep(every)
        return sent

    def recv(self) -> tuple[dict[str, Any], bytes] | None:
        return read_message(self.rfile)

    def finish(self, timeout: float = 60) -> tuple[int, str]:
        """Close our side; the far end's exit status and stderr."""
        try:
            self.channel.shutdown_write()
        except OSError:
            pass
        ends = time.monotonic() + timeout
        while not self.channel.exit_status_ready() and time.monotonic() < ends:
            time.sleep(0.05)
        status = self.channel.recv_exit_status() if self.channel.exit_status_ready() else -1
        self.channel.settimeout(5)
        err = self.channel.makefile_stderr("rb").read().decode("utf-8", "replace")
        self.client.close()
        return status, err


@dataclass
class Plan:
    """What the hostile server says, in the order the conversation asks for it."""

    name: str = "evil"
    hello: dict[str, Any] = field(default_factory=lambda: {"have": {}, "known": {}})
    batches: list[tuple[dict[str, Any], str]] = field(default_factory=list)  #: header, payload (base64)
    status: dict[str, Any] = field(default_factory=lambda: {"have": {}, "known": {}})
    listings: dict[str, Any] = field(default_factory=dict)  #: rel -> listing, for every "children" request
    records: str = ""  #: what every "records" request gets
    silent: bool = False  #: read, never answer
    trickle: float = 0.0  #: seconds between the bytes of everything it sends
    cut_after: int = -1  #: hang up after sending this many bytes

    def add_batch(self, header: dict[str, Any], payload: bytes) -> None:
        self.batches.append((header, base64.b64encode(payload).decode()))

    def write(self, path: Path) -> Path:
        path.write_text(json.dumps(asdict(self)))
        return path


class _Out:
    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.sent = 0

    def send(self, header: dict[str, Any], payload: bytes = b"") -> None:
        data = message(header, payload)
        if self.plan.cut_after >= 0 and self.sent + len(data) > self.plan.cut_after:
            data = data[: self.plan.cut_after - self.sent]
            self._write(data)
            sys.exit(0)
        self._write(data)

    def _write(self, data: bytes) -> None:
        out = sys.stdout.buffer
        if self.plan.trickle:
            for byte in data:
                out.write(bytes([byte]))
                out.flush()
                time.sleep(self.plan.trickle)
        else:
            out.write(data)
            out.flush()
        self.sent += len(data)


def serve(plan_file: Path) -> None:
    """Be the far end of a round, following the plan in ``plan_file``; log what comes to plan_file.log."""
    plan = Plan(**json.loads(plan_file.read_text()))
    log = open(f"{plan_file}.log", "a")
    rfile = sys.stdin.buffer
    out = _Out(plan)

    def receive() -> tuple[dict[str, Any], bytes]:
        got = read_message(rfile)
        if got is None:
            sys.exit(0)
        log.write(json.dumps(got[0]) + "\n")
        log.flush()
        return got

    receive()  # the client's hello
    if plan.silent:
        while read_message(rfile) is not None:
            pass
        return
    out.send({"hello": plan.name, "version": 1, "full": False, "rescan": False, **plan.hello})
    while not receive()[0].get("end"):
        pass
    for header, payload in plan.batches:
        out.send(header, base64.b64decode(payload))
    out.send({"end": True})
    receive()  # the client's status
    out.send(plan.status)
    while True:
        header, _ = receive()
        if header.get("bye"):
            return
        if "children" in header:
            wanted = {rel: plan.listings.get(rel, {}) for rel in header["children"]}
            out.send({"listings": True, "held": {}}, json.dumps(wanted).encode())
        elif "records" in header:
            out.send({"records": True}, plan.records.encode())


if __name__ == "__main__":
    serve(Path(sys.argv[1]))  # sshd appends `--home PATH sync --serve`: ignored
