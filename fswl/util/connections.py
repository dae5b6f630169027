"""Caps on held TCP connections, per client address and in total, for the DNS and policy listeners.

Each held connection costs a file descriptor, a task and a timer; without a
cap one client can hold thousands (the idle timeout only frees them
slowly) until accept() fails with EMFILE and nobody else gets in. Over a
cap a new connection is closed at once, before anything is read from it,
and the refusals are logged once per LOG_SECONDS with their count, not once
each (a flood of log lines would be a second way to hurt the host).
"""

from __future__ import annotations

import asyncio
import logging
import resource
from typing import Awaitable, Callable

log = logging.getLogger(__name__)

#: Refusals are summed up in one log line per this many seconds.
LOG_SECONDS = 60.0
#: File descriptors asked for beyond the caps: the index, logs, sockets, a transfer's pipes.
SPARE_DESCRIPTORS = 256

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
#: Descriptors each cap of this process may hold (the soft RLIMIT_NOFILE is raised to fit their sum).
_reserved: dict[int, int] = {}


class ConnectionCap:
    """At most ``total`` connections at once, ``per_client`` from one address; 0 means no such cap."""

    def __init__(self, service: str, total: int, per_client: int) -> None:
        self.service = service
        self.total = total
        self.per_client = per_client
        self.held = 0
        self.by_client: dict[str, int] = {}
        #: Connections closed over the cap, since the start (for tests and stats).
        self.refused = 0
        self._unlogged = 0
        self._last: tuple[str, str] = ("", "")
        self._timer: asyncio.TimerHandle | None = None

    def reserve_descriptors(self) -> None:
        """Raise this process's soft RLIMIT_NOFILE so the caps, not EMFILE, are what refuses."""
        _reserved[id(self)] = self.total
        raise_descriptor_limit(sum(_reserved.values()) + SPARE_DESCRIPTORS)

    def close(self) -> None:
        """Forget the reservation and the pending log line (the listener stopped)."""
        _reserved.pop(id(self), None)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def admit(self, host: str) -> bool:
        """Count one new connection from ``host`` ("" for a unix socket: no per-client cap) if the caps allow."""
        if self.total and self.held >= self.total:
            self._refuse(host, f"{self.held} held, the most in total ({self.total})")
            return False
        count = self.by_client.get(host, 0) if host else 0
        if host and self.per_client and count >= self.per_client:
            self._refuse(host, f"{count} held from that address, the most per client ({self.per_client})")
            return False
        self.held += 1
        if host:
            self.by_client[host] = count + 1
        return True

    def release(self, host: str) -> None:
        """One connection admitted for ``host`` ended."""
        self.held -= 1
        if host:
            count = self.by_client.pop(host, 1) - 1
            if count > 0:
                self.by_client[host] = count

    def wrap(self, handler: Handler) -> Handler:
        """``handler`` for asyncio.start_server behind the caps: over them, the connection is closed at once."""
        async def capped(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            peer = writer.get_extra_info("peername")
            host = peer[0] if isinstance(peer, tuple) and peer else ""
            if not self.admit(host):
                writer.transport.abort()  # nothing to flush, no FIN handshake to wait for: the descriptor goes now
                return
            try:
                await handler(reader, writer)
            finally:
                self.release(host)
        return capped

    def _refuse(self, host: str, why: str) -> None:
        self.refused += 1
        self._last = (host or "a local socket", why)
        if self._timer is not None:
            self._unlogged += 1
            return
        log.warning("%s: closed a new connection from %s: %s (further ones are counted, logged once per %.0f s)",
                    self.service, self._last[0], why, LOG_SECONDS)
        self._timer = asyncio.get_running_loop().call_later(LOG_SECONDS, self._report)

    def _report(self) -> None:
        if not self._unlogged:
            self._timer = None
            return
        log.warning("%s: closed %d more new connections over the caps in the last %.0f s (the last from %s: %s)",
                    self.service, self._unlogged, LOG_SECONDS, *self._last)
        self._unlogged = 0
        self._timer = asyncio.get_running_loop().call_later(LOG_SECONDS, self._report)


def raise_descriptor_limit(wanted: int) -> None:
    """Raise the soft RLIMIT_NOFILE towards ``wanted`` (never above the hard limit, never lower it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target < wanted:
        log.warning("the connection caps need %d file descriptors but the hard limit is %d: connections will "
                    "fail with 'too many open files' first; raise it (systemd: LimitNOFILE=%d) or lower the caps",
                    wanted, hard, wanted)
