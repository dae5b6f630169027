"""Response-rate limiting: answers per second per client network, so the responder is nobody's amplifier.

A UDP query's source address is trivially forged; a flood of small queries
"from" a victim would otherwise have fswl send the victim every answer.
Each client network (/24 for IPv4, /56 for IPv6, RFC 6890-style customer
sizes) gets a token bucket of ``rrl_per_second`` answers a second; past
it, queries go unanswered (the resolver retries, or asks another server).
"""

from __future__ import annotations

import time
from typing import Callable

#: The first 12 bytes of an IPv4-mapped IPv6 address (``::ffff:a.b.c.d``), as a dual-stack socket reports IPv4 clients.
_V4_MAPPED = bytes(10) + b"\xff\xff"


class RateLimiter:
    """A token bucket per client network, bounded in memory."""

    #: Networks remembered at most; past that the buckets start afresh (a flood of sources must not grow memory).
    MAX_CLIENTS = 100_000

    def __init__(self, per_second: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_second = per_second
        self.clock = clock
        self.buckets: dict[bytes, tuple[float, float]] = {}

    def allow(self, source: bytes) -> bool:
        """Whether a query from ``source`` (a packed IPv4 or IPv6 address) may be answered now."""
        if len(source) == 16 and source[:12] == _V4_MAPPED:
            source = source[12:]
        key = source[:3] if len(source) == 4 else source[:7]
        now = self.clock()
        tokens, stamp = self.buckets.get(key, (float(self.per_second), now))
        tokens = min(float(self.per_second), tokens + (now - stamp) * self.per_second)
        if len(self.buckets) >= self.MAX_CLIENTS and key not in self.buckets:
            self.buckets.clear()
        if tokens < 1:
            self.buckets[key] = (tokens, now)
            return False
        self.buckets[key] = (tokens - 1, now)
        return True
