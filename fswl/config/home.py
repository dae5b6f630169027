"""Where everything of one fswl home lives, and its fswl.toml read into settings.

Every part finds its files here: nothing else spells a path under the home.
The stores are not here: fswl.app.Home wires them (with their listeners), so
this layer sits below every part that needs a path or a setting.

    db/                 the whitelist tree (docs/tree.md)
    changes.log         every process's writes to db/, which `fswl serve`'s index follows
    peers/, spool/      sync: who the peers are, batches on their way (docs/mirrors.md)
    pending/            verification codes waiting for an answer
    verify/             verification's caps and statistics
    state/seen.sqlite   last-seen times of entries
    state/events/       the event log (reputation, correlation)
    state/imports/      the ledger of `fswl import` sources
    cache/              what can be rebuilt: the index snapshot
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

from fswl import defaults
from fswl.config import CONFIG_NAME, load_config, section

T = TypeVar("T")


@dataclass(frozen=True)
class StoreSettings:
    """[store] in fswl.toml."""

    expire_days: float = float(defaults.EXPIRE_DAYS)
    tombstone_days: float = float(defaults.TOMBSTONE_DAYS)
    #: Watch db/ with inotify so hand edits show at once (one watch per
    #: directory: a very large tree may need fs.inotify.max_user_watches
    #: raised, or this off, in which case hand edits show after a sweep).
    watch_tree: bool = True
    #: Without inotify (watch_tree off, or a tree too large to watch), every
    #: directory's mtime is checked once per this many seconds, so hand edits
    #: show within it; 0 switches the sweep off (hand edits then need a restart).
    sweep_seconds: float = defaults.SWEEP_SECONDS


def default_home() -> Path:
    """$FSWL_HOME, else the spool/ of the checkout fswl runs from, else /var/spool/fswl."""
    if os.environ.get("FSWL_HOME"):
        return Path(os.environ["FSWL_HOME"])
    checkout = Path(__file__).resolve().parent.parent.parent
    if (checkout / "setup.cfg").is_file() and (checkout / "spool").is_dir():
        return checkout / "spool"
    return Path(defaults.SYSTEM_HOME)


class HomeLayout:
    """One fswl home directory: its paths and its settings."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).absolute()
        self.db = self.root / "db"
        self.peers = self.root / "peers"
        self.spool = self.root / "spool"
        self.pending = self.root / "pending"
        self.verify = self.root / "verify"
        self.state = self.root / "state"
        self.events = self.state / "events"
        self.imports = self.state / "imports"
        self.seen_db = self.state / "seen.sqlite"
        self.cache = self.root / "cache"
        self.index_snapshot = self.cache / "index.snapshot"
        self.config_path = self.root / CONFIG_NAME
        #: Every process's writes to db/, which the index of `fswl serve` follows.
        self.changelog_path = self.root / "changes.log"

    @cached_property
    def config(self) -> dict[str, Any]:
        return load_config(self.root)

    def settings(self, name: str, cls: type[T]) -> T:
        """The [name] table of fswl.toml as ``cls``, defaults filled in."""
        return section(self.config, name, cls, str(self.config_path))

    @cached_property
    def store_settings(self) -> StoreSettings:
        return self.settings("store", StoreSettings)

    @cached_property
    def base_url(self) -> str:
        """[web] base_url without a trailing slash: where DNS TXT, policy replies and mail point."""
        table = self.config.get("web", {})
        url = table.get("base_url", defaults.WEB_BASE_URL) if isinstance(table, dict) else defaults.WEB_BASE_URL
        return str(url).rstrip("/")
