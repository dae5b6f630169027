"""The composition root's home: the layout (fswl.config.home) with its stores wired.

This is the one place that decides who hears of a write to db/: the change
log (which `fswl serve`'s index follows) and the sync outbox (which journals
it for peers). Everything above (cli) takes its stores from here; everything
below is handed what it needs.
"""

from __future__ import annotations

from functools import cached_property

from fswl.config.home import HomeLayout, StoreSettings, default_home
from fswl.store import Whitelist
from fswl.store.changelog import ChangeLog
from fswl.store.journal import Listener
from fswl.sync.outbox import Outbox

__all__ = ["Home", "StoreSettings", "default_home"]


class Home(HomeLayout):
    """One fswl home, with the whitelist wired to its listeners."""

    @cached_property
    def whitelist(self) -> Whitelist:
        """The store, with every configured change listener attached."""
        self.db.mkdir(parents=True, exist_ok=True)
        return Whitelist(self.db, self.change_listeners())

    def change_listeners(self) -> list[Listener]:
        """Who hears of local writes: the change log (for `fswl serve`'s index) and the sync outbox,
        which journals each write for peers whenever one is configured (fswl.sync.outbox)."""
        return [ChangeLog(self.changelog_path), Outbox(self)]
