"""A progress counter on stderr for long walks, shown only on a terminal."""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import Callable, Iterator

#: Seconds between redraws of the counter.
REDRAW_SECONDS = 0.2


@contextmanager
def progress_counter(label: str, total: int | None = None) -> Iterator[Callable[[int], None]]:
    """Yield ``tick(n)``; on a TTY, stderr shows ``label: count[/total]`` as it grows."""
    if not sys.stderr.isatty():
        yield lambda n: None
        return
    done = 0
    last = 0.0

    def tick(n: int) -> None:
        nonlocal done, last
        done += n
        now = time.monotonic()
        if now - last >= REDRAW_SECONDS:
            last = now
            shown = f"{done}/{total}" if total else str(done)
            sys.stderr.write(f"\r{label}: {shown}")
            sys.stderr.flush()

    try:
        yield tick
    finally:
        sys.stderr.write(f"\r{label}: {done}{'/' + str(total) if total else ''} done\n")
        sys.stderr.flush()
