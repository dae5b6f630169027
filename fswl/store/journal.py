"""Changes the store announces to whoever keeps a copy: the DNS index, sync."""

from __future__ import annotations

from dataclasses import dataclass, field
import time
from typing import Callable

#: Operations a Change can carry.
ADD = "add"  # an entry was created (or its mtime refreshed by an explicit add)
REMOVE = "remove"  # an entry was explicitly removed; a tombstone was left
EXPIRE = "expire"  # an entry aged out; no tombstone
LINK = "link"  # a relay directory became a symlink to a group
UNLINK = "unlink"  # that symlink was removed
SEEN = "seen"  # an entry was seen in use (its last-seen time, never its mtime)


@dataclass(frozen=True)
class Change:
    """One write to db/: ``path`` is relative to db/, as sync carries it.

    For LINK, ``target`` is the link's relative target.
    """

    op: str
    path: str
    target: str | None = None
    when: float = field(default_factory=time.time)


Listener = Callable[[Change], None]
