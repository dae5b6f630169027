"""How fswl's log lines look on stderr: ``fswl: message``, time-stamped for the long-running commands.

`fswl serve` and `fswl sync --daemon` run for days; their lines need the
time they were written. Under systemd the journal stamps every line itself,
so a second stamp would only be noise: systemd says so with JOURNAL_STREAM,
the device and inode of the stderr it gave the service.
"""

from __future__ import annotations

import logging
import os
import sys

#: ISO 8601 local time with the offset, as `date -Iseconds` prints it (without the colon).
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S%z"
#: The level of "what listens where" and other news shown by default: not a warning.
NEWS = logging.WARNING - 1


class Formatter(logging.Formatter):
    """``fswl: message`` for news, ``fswl: WARNING: message`` where the level matters; a time first if asked."""

    def __init__(self) -> None:
        super().__init__()
        self.timestamps = False

    def format(self, record: logging.LogRecord) -> str:
        message = super().format(record)
        if record.levelno in (logging.INFO, NEWS):
            text = f"fswl: {message}"
        else:
            text = f"fswl: {record.levelname}: {message}"
        if self.timestamps:
            text = f"{self.formatTime(record, TIME_FORMAT)} {text}"
        return text


_formatter = Formatter()


def configure(verbose: int) -> None:
    """Log to stderr: news and warnings, then -v info, -vv debug."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_formatter)
    logging.basicConfig(level=NEWS - 10 * min(verbose, 2), handlers=[handler])


def stamp_lines() -> None:
    """Put the time on every log line from now on, unless stderr is systemd's journal."""
    _formatter.timestamps = not under_journal()


def under_journal() -> bool:
    """Whether stderr is the journal stream systemd named in JOURNAL_STREAM (``DEVICE:INODE``)."""
    named = os.environ.get("JOURNAL_STREAM", "")
    if not named:
        return False
    try:
        device, inode = (int(part) for part in named.split(":"))
        status = os.fstat(sys.stderr.fileno())
    except (ValueError, OSError):
        return True  # set, but unreadable: trust it rather than stamp twice
    # A service's child with stderr sent elsewhere (a file, a pipe) inherits the variable: stamp then.
    return (status.st_dev, status.st_ino) == (device, inode)
