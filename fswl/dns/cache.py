"""Replies remembered by the query's bytes after its ID, so a repeated question costs one dict lookup.

A reply depends only on the query (everything but its 2-byte ID: flags,
question as asked, EDNS options) and on the index; the index's
``generation`` counter moves on every change, and the cache empties when it
does. It also empties every :data:`CACHE_SECONDS`, so the side effects of
answering (recording hits, refreshed at most once a day; challenges on a
miss) still happen for names asked all the time, just not on every query.
"""

from __future__ import annotations

import time
from typing import Callable

#: How long a remembered reply may skip the answer path's side effects.
CACHE_SECONDS = 60.0
#: Replies remembered at most by default (about 250 bytes each); the cache empties when full.
CACHE_ENTRIES = 250_000
#: ANCOUNT of a reply with no answer record (NXDOMAIN, NODATA).
_NO_ANSWER = b"\x00\x00"


class ReplyCache:
    """UDP replies by query bytes (after the ID) for one index; see the module docstring."""

    def __init__(self, index: object, size: int = CACHE_ENTRIES, answers_only: bool = False,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.index = index
        self.size = size
        #: With challenges on a miss, only replies with an answer are kept: a miss must reach on_miss.
        self.answers_only = answers_only
        self.clock = clock
        self.replies: dict[bytes, bytes] = {}
        self.generation = -1
        self.expires = 0.0

    def current(self) -> dict[bytes, bytes]:
        """The replies still current, by key: a batch of datagrams looks them up with one check."""
        if self.index.generation != self.generation or self.clock() >= self.expires:
            self.replies.clear()
            self.generation = self.index.generation
            self.expires = self.clock() + CACHE_SECONDS
        return self.replies

    def put(self, key: bytes, reply: bytes, generation: int) -> None:
        """Remember ``reply`` (without its ID) if it was made from index ``generation`` and may be kept."""
        if generation != self.generation or (self.answers_only and reply[4:6] == _NO_ANSWER):
            return
        if len(self.replies) >= self.size:
            self.replies.clear()
        self.replies[key] = reply
