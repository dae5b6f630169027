"""What the services of one `fswl serve` process share: the store, the hit recorder, the index, the hooks.

The composition root (fswl.app.services) makes one Runtime, lets the
extensions (verification, reputation) attach their hooks, and hands it to
each service's factory. The services depend on this contract, never on the
root.
"""

from __future__ import annotations

import asyncio
import logging
from functools import cached_property
from typing import TYPE_CHECKING, Callable, Protocol

from fswl.names import IPAddress
from fswl.store import Match, Whitelist
from fswl.store.seen import SeenRecorder

if TYPE_CHECKING:
    from fswl.config.home import HomeLayout
    from fswl.index import Index

log = logging.getLogger(__name__)
#: The level of "what listens where": shown by default, and not a warning.
ANNOUNCE = logging.WARNING - 1
logging.addLevelName(ANNOUNCE, "ANNOUNCE")


class Service(Protocol):
    """One listening part of fswl."""

    name: str

    async def start(self) -> None:
        """Bind and begin answering; raise ServiceError if that is impossible."""

    async def stop(self) -> None:
        """Stop answering and release the sockets."""

    def describe(self) -> str:
        """One line for the operator: what listens where."""


class Runtime:
    """What the services of one process share."""

    def __init__(self, home: HomeLayout, whitelist: Whitelist) -> None:
        self.home = home
        #: The wired store (fswl.app.Home.whitelist): writes through it are journalled.
        self.whitelist = whitelist
        self.seen = SeenRecorder(self.whitelist)
        #: Called as hook(sender, address) when a lookup that may introduce a
        #: sender misses (verification registers here). Must not block.
        self.miss_hooks: list[Callable[[str, IPAddress], None]] = []
        #: Called as hook(sender, address) -> bool for an unlisted pair; any
        #: True admits this one message (reputation throttling registers here).
        self.admit_hooks: list[Callable[[str, IPAddress], bool]] = []
        #: Called as hook(reason) for a miss never challenged by design (a VERP sender at the
        #: policy service), so that `fswl verify stats` counts it. Must not block.
        self.unchallenged_hooks: list[Callable[[str], None]] = []
        #: Called with no arguments by close(), last first (extensions' cleanup).
        self.close_hooks: list[Callable[[], None]] = []
        #: `fswl serve --workers N`: DNS processes sharing the port (None: [dns] workers).
        self.dns_workers: int | None = None

    def on_miss(self, sender: str, address: IPAddress) -> None:
        """A lookup missed; hand it to the miss hooks. Never raises."""
        for hook in self.miss_hooks:
            try:
                hook(sender, address)
            except Exception:
                log.exception("miss hook failed for %s via %s", sender, address)

    def on_unchallenged(self, reason: str) -> None:
        """A miss that is not challenged, and why; hand it to the hooks. Never raises."""
        for hook in self.unchallenged_hooks:
            try:
                hook(reason)
            except Exception:
                log.exception("unchallenged hook failed (%s)", reason)

    def admit_unlisted(self, sender: str, address: IPAddress) -> bool:
        """Whether an unlisted (sender, relay) may pass this once (a quota). Never raises."""
        for hook in self.admit_hooks:
            try:
                if hook(sender, address):
                    return True
            except Exception:
                log.exception("admit hook failed for %s via %s", sender, address)
        return False

    @cached_property
    def index(self) -> Index:
        """The in-memory index every service answers from, loaded and watching on first use."""
        from fswl.index import Index

        store = self.home.store_settings
        index = Index(self.whitelist, self.home.changelog_path, watch=store.watch_tree,
                      snapshot_path=self.home.index_snapshot, sweep_seconds=store.sweep_seconds)
        index.start()
        return index

    @property
    def base_url(self) -> str:
        """Where the web pages are (the URL in reject texts, TXT records and mail)."""
        return self.home.base_url

    def lookup(self, sender: str, address: str | IPAddress) -> Match | None:
        """Whitelist.lookup's answer, from the shared in-memory index (no disk access)."""
        return self.index.lookup(sender, address)

    async def alookup(self, sender: str, address: str | IPAddress) -> Match | None:
        """A lookup that never blocks the event loop (the index is memory only)."""
        if "index" not in self.__dict__:
            await asyncio.get_running_loop().run_in_executor(None, lambda: self.index)
        return self.lookup(sender, address)

    def close(self) -> None:
        """Stop what the services shared: extensions, the index watcher, the hit recorder."""
        for hook in reversed(self.close_hooks):
            try:
                hook()
            except Exception:
                log.exception("closing an extension failed")
        index = self.__dict__.pop("index", None)
        if index is not None:
            index.stop()
        self.seen.stop()
