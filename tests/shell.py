"""Shell-like helpers, so tree tests read like what an admin types."""

from __future__ import annotations

import os
import time
from pathlib import Path


def touch(path: Path | str, mtime: float | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def ln_s(target: str, link: Path | str) -> Path:
    link = Path(link)
    link.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, link)
    return link


def files_under(root: Path | str) -> list[str]:
    """Every path under root, relative, with a trailing '@' for symlinks (like ls -F)."""
    root = Path(root)
    out = []
    for top, dirs, files in os.walk(root):
        for name in sorted(dirs + files):
            path = Path(top) / name
            rel = str(path.relative_to(root))
            out.append(rel + ("@" if path.is_symlink() else ""))
    return sorted(out)


def wait_for(condition, seconds: float = 1.0) -> bool:
    """Poll ``condition`` until it holds or ``seconds`` pass; its last answer."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()
