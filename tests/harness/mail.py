"""A local SMTP sink (aiosmtpd Controller) standing in for the smarthost, and `fswl serve` with several services."""

from __future__ import annotations

import email
import email.policy
import socket
import threading
import time
from contextlib import contextmanager
from email.message import EmailMessage
from typing import Iterator

from aiosmtpd.controller import Controller

from tests.harness.dnsd import serve

__all__ = ["Sink", "free_port", "mail_sink", "serve"]  # serve: the verification tests start several services



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


