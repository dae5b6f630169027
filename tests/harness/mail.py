"""A local SMTP sink (aiosmtpd Controller) standing in for the smarthost, and `fswl serve` with several services."""

from __future__ import annotations

import email
import email.policy
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from email.message import EmailMessage
from pathlib import Path
from typing import Iterator

from aiosmtpd.controller import Controller

REPO = Path(__file__).resolve().parent.parent.parent
START_SECONDS = 30


def free_port() -> int:
    """A port free right now (for a service whose URL must be known before it starts)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Sink:
    """Keeps every message it is given; wait_for() blocks until one to an address arrives."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], EmailMessage]] = []
        self.changed = threading.Condition()

    async def handle_DATA(self, server, session, envelope) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.changed:
            self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), message))
            self.changed.notify_all()
        return "250 OK"

    def wait_for(self, rcpt: str, timeout: float = 20.0) -> EmailMessage:
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                for _, rcpts, message in self.messages:
                    if rcpt in rcpts:
                        return message
                left = deadline - time.monotonic()
                assert left > 0, f"no mail to {rcpt} within {timeout}s (got {[r for _, r, _ in self.messages]})"
                self.changed.wait(left)

    def to(self, rcpt: str) -> list[EmailMessage]:
        with self.changed:
            return [m for _, rcpts, m in self.messages if rcpt in rcpts]


@contextmanager
def mail_sink() -> Iterator[tuple[Sink, int]]:
    sink = Sink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield sink, port
    finally:
        controller.stop()


@contextmanager
def serve(home: Path, *services: str) -> Iterator[dict[str, int]]:
    """`fswl serve SERVICES...` (each listening as fswl.toml says); yields {service: port}."""
    env = {**os.environ, "FSWL_HOME": str(home)}
    process = subprocess.Popen([sys.executable, "-m", "fswl", "serve", *services],
                               stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env, cwd=REPO)
    lines: list[str] = []
    ports: dict[str, int] = {}
    deadline = time.monotonic() + START_SECONDS
    assert process.stderr is not None
    while len(ports) < len(services) and time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        lines.append(line)
        found = re.match(r"fswl: (\w+): .* on \[?[0-9a-fA-F:.]+\]?:(\d+)", line)
        if found:
            ports[found.group(1)] = int(found.group(2))
    if len(ports) < len(services):
        process.kill()
        process.wait()
        raise AssertionError(f"fswl serve {' '.join(services)} did not start: {''.join(lines)}")
    drain = threading.Thread(target=lambda: lines.extend(process.stderr), daemon=True)  # type: ignore[arg-type]
    drain.start()
    try:
        yield ports
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        drain.join(5)
        assert process.returncode == 0, f"fswl serve exited {process.returncode}: {''.join(lines[-30:])}"
