"""This node as sync sees it: its name, spool, peers, keys and settings ([sync] in fswl.toml)."""

from __future__ import annotations

import logging
import socket
import sqlite3
import time
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from fswl import defaults
from fswl.errors import FswlError
from fswl.store import Whitelist
from fswl.store.changelog import ChangeLog
from fswl.sync.acks import Acks
from fswl.sync.batches import Spool, check_origin
from fswl.sync.peers import Peers

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from fswl.config.home import HomeLayout
    from fswl.store.journal import Change
    from fswl.sync.handedits import Scan
    from fswl.sync.signing import Keyring, Signer

log = logging.getLogger(__name__)

DAY = 86400.0


@dataclass(frozen=True)
class SyncSettings:
    """[sync] in fswl.toml."""

    node: str = ""  #: this node's name; peers name it so in their peers/ (default: the short host name)
    signing_key: str = ""  #: OpenSSH ed25519 private key that signs this node's batches
    require_signatures: bool = False  #: refuse batches not signed by a key in peers/keys/ORIGIN.pub
    interval: float = float(defaults.SYNC_INTERVAL_SECONDS)  #: seconds between rounds of `fswl sync --daemon`
    max_backoff: float = float(defaults.SYNC_MAX_BACKOFF_SECONDS)  #: longest wait after failed rounds
    keepalive: float = float(defaults.SYNC_KEEPALIVE_SECONDS)  #: SSH keepalive interval
    timeout: float = float(defaults.SYNC_TIMEOUT_SECONDS)  #: connect and authentication timeout
    deadline: float = float(defaults.SYNC_DEADLINE_SECONDS)  #: longest a round with one peer may take, either end
    access_list_days: float = float(defaults.ACCESS_LIST_DAYS)  #: how often the entries seen in use are sent


class Node:
    """Everything sync needs of one home."""

    def __init__(self, home: HomeLayout, serving: bool = False) -> None:
        self.home = home
        #: The far end of a round (`fswl sync --serve`): it looks for hand edits only when no
        #: round has for [sync] interval, since the node's own rounds look anyway.
        self.serving = serving
        self._hand_looked = -float("inf")

    @cached_property
    def settings(self) -> SyncSettings:
        return self.home.settings("sync", SyncSettings)

    @cached_property
    def name(self) -> str:
        return check_origin(self.settings.node or socket.gethostname().split(".")[0])

    @cached_property
    def spool(self) -> Spool:
        return Spool(self.home.spool, self.name)

    @cached_property
    def peers(self) -> Peers:
        return Peers(self.home.peers)

    @cached_property
    def keyring(self) -> Keyring:
        from fswl.sync.signing import Keyring  # cryptography: only rounds need it

        return Keyring(self.home.peers / "keys", self.settings.require_signatures)

    @cached_property
    def signer(self) -> Signer | None:
        from fswl.sync.signing import Signer

        return Signer(self.settings.signing_key) if self.settings.signing_key else None

    @cached_property
    def acks(self) -> Acks:
        return Acks(self.home.peers)

    @property
    def signs(self) -> bool:
        """Whether holdings travel as signed acks (fswl.sync.acks) in this node's rounds."""
        return bool(self.settings.signing_key) or self.settings.require_signatures

    def key_of(self, origin: str) -> Ed25519PublicKey | None:
        """The public key of ``origin``'s batches and acks (this node's own from its signing key)."""
        if origin == self.name:
            return self.signer.key.public_key() if self.signer is not None else self.keyring.key(origin)
        return self.keyring.key(origin)

    @cached_property
    def writer(self) -> Whitelist:
        """The store for received writes: not journalled (nothing is re-originated here), only marked
        for digests and logged for the index of a running `fswl serve`."""
        self.home.db.mkdir(parents=True, exist_ok=True)
        return Whitelist(self.home.db, [self.spool.mark_dirty, ChangeLog(self.home.changelog_path)])

    def seal(self) -> list[int]:
        """Journal hand edits made since the last round, then seal local writes (and, when due,
        the access list) into batches."""
        try:
            if self._hand_edits_due():
                self.hand_edits()
        except (OSError, FswlError, sqlite3.Error) as exc:  # the batches must go on all the same
            log.warning("hand edits not looked for this round: %s", exc)
        return self.spool.seal(self.signer, self.settings.access_list_days * DAY)

    def _hand_edits_due(self) -> bool:
        """Whether this round looks for hand edits: one stat per directory of db/, about 0.9 s at
        100,000 relays, so the daemon looks once per tick (not once per peer), and the serving end
        only when no round on this node has looked for an interval."""
        interval = self.settings.interval
        now = time.monotonic()
        if now - self._hand_looked < interval / 2:
            return False
        if self.serving:
            from fswl.sync.handedits import STATE

            try:
                if time.time() - (self.spool.root / STATE).stat().st_mtime < interval:
                    return False
            except FileNotFoundError:
                pass
        self._hand_looked = now
        return True

    def hand_edits(self, dry_run: bool = False) -> Scan:
        """The edits made to db/ by hand since the last round (fswl.sync.handedits); unless
        ``dry_run``, marked for digests and, when a peer is configured, journalled."""
        from fswl.sync.handedits import journal_hand_edits

        peered = bool(self.peers.names())

        def announce(change: Change) -> None:
            self.spool.mark_dirty(change)
            if peered:
                self.spool.journal(change)

        return journal_hand_edits(str(self.home.db), str(self.spool.root), str(self.home.changelog_path),
                                  announce, dry_run=dry_run)

    def drain(self) -> int:
        """Drop the batches every configured peer is known to hold; returns how many.

        With ``require_signatures``, a peer holds only what its own signed ack says (fswl.sync.acks):
        an unsigned claim, about itself or a third node, must not make this node drop a signed write.
        """
        peers = self.peers.names()
        if not peers:
            return 0
        known = self.acks.holdings() if self.settings.require_signatures else self.peers.known()
        removed = 0
        for origin in self.spool.origins():
            held = min(known.get(p, {}).get(origin, 0) if p != origin else 1 << 62 for p in peers)
            removed += self.spool.drain(origin, held)
        return removed
