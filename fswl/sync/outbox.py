"""Local writes on their way to peers: journalled whenever a peer is configured, decided per write.

A long-running writer (`fswl serve` confirming senders and recording hits,
a large import) must start journalling as soon as the first peer is added,
without a restart. Looking at peers/ on every write would cost a directory
scan each; instead the answer is kept for PEERS_RECHECK_SECONDS. A write
made in that short window after `fswl peers add` may go unjournalled, which
is why the first round with a new peer reconciles by digests
(fswl.sync.rounds) and waits until the window has passed before it does.

Every write is marked for the digest index whether or not peers exist, so
that index is never stale about fswl's own writes (fswl.sync.digests).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Callable

from fswl.store.journal import Change
from fswl.sync.peers import Peers

if TYPE_CHECKING:
    from fswl.config.home import HomeLayout
    from fswl.sync.batches import Spool

#: How long a writer trusts its last look at peers/. A first round with a
#: new peer waits this twice over after the peer was added (FIRST_ROUND_WAIT).
PEERS_RECHECK_SECONDS = 0.5
FIRST_ROUND_WAIT = 2 * PEERS_RECHECK_SECONDS


class Outbox:
    """A store listener: marks every local write for digests, journals it when any peer is configured."""

    def __init__(self, home: HomeLayout, clock: Callable[[], float] = time.monotonic) -> None:
        from fswl.sync.node import Node

        self.clock = clock
        self.peers = Peers(home.peers)
        #: Named after this node ([sync] node): a bad name is refused here, before any write.
        self.spool: Spool = Node(home).spool
        self._checked = -float("inf")
        self._peered = False

    def __call__(self, change: Change) -> None:
        spool = self.spool
        # Marked before peers/ is looked at: a first round, waiting out the
        # recheck period, then finds every unjournalled write marked.
        spool.mark_dirty(change)
        if self.peered():
            spool.journal(change)

    def peered(self) -> bool:
        """Whether any peer is configured, as seen at most PEERS_RECHECK_SECONDS ago."""
        now = self.clock()
        if now - self._checked >= PEERS_RECHECK_SECONDS:
            self._peered = _any_peer(self.peers)
            self._checked = now
        return self._peered


def _any_peer(peers: Peers) -> bool:
    try:
        return bool(peers.names())
    except OSError:  # peers/ unreadable: journal, a spool that grows is safer than a lost write
        return True
