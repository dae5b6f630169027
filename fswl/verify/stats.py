"""What `fswl verify stats` shows, read without writing anything: no key, no database, no directory is made."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from fswl.verify.caps import USAGE_KEYS, Caps
from fswl.verify.pending import Pending
from fswl.verify.settings import VerifySettings
from fswl.verify.verifier import limits_of, verify_dir

if TYPE_CHECKING:
    from fswl.config.home import HomeLayout


def read_stats(home: HomeLayout, settings: VerifySettings, now: float | None = None) -> dict[str, object]:
    """What `fswl verify stats` shows, read only: creates no key, no database, no directory."""
    now = time.time() if now is None else now
    pending = 0
    if home.pending.is_dir():
        pending = sum(1 for name in os.listdir(home.pending) if name.endswith(".json")
                      and _unexpired(home.pending / name, now))
    path = verify_dir(home) / "state.sqlite"
    if not path.exists():
        return {"pending": pending, "caps": dict.fromkeys(USAGE_KEYS, 0), "counts": {}}
    caps = Caps(path, limits_of(settings), readonly=True)
    try:
        return {"pending": pending, "caps": caps.usage(), "counts": caps.counters()}
    finally:
        caps.close()


def _unexpired(path: Path, now: float) -> bool:
    try:
        return Pending.read(path).expires >= now
    except (FileNotFoundError, ValueError, TypeError):
        return False
