"""The in-memory index of db/, kept current by watchdog: what DNS and policy answer from."""

from __future__ import annotations

import logging
import math
import os
import threading
import time

from pathlib import Path

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer

from fswl import defaults
from fswl.index import snapshot
from fswl.index.loader import changed_directories, load_all, refresh_directory, reload_logged
from fswl.store.changelog import ChangeFollower
from fswl.index.memory import MemoryIndex
from fswl.names import IPAddress
from fswl.store import Match, Whitelist

log = logging.getLogger(__name__)

#: The events the index needs (creation, deletion, renames of files, links and directories).
WATCHED_EVENTS = [FileCreatedEvent, DirCreatedEvent, FileDeletedEvent, DirDeletedEvent, FileMovedEvent, DirMovedEvent]
#: Changes are applied in batches this often; a change shows in answers within it.
APPLY_SECONDS = 0.05
#: How often the change log is read when no inotify event wakes the index.
FOLLOW_SECONDS = 0.2
#: The fix to print when inotify cannot watch every directory of db/.
WATCH_LIMIT_HINT = (
    "db/ has too many directories to watch within fs.inotify.max_user_watches, so edits made by hand "
    "(touch, rm, ln -s) show only after the next sweep of db/ ([store] sweep_seconds); fswl's own writes "
    "still show at once. Raise the limit: sysctl fs.inotify.max_user_watches=4194304 (and in /etc/sysctl.d/)"
)


class Index(MemoryIndex):
    """A MemoryIndex of one store, loaded at start and updated by file-system events."""

    def __init__(self, whitelist: Whitelist, changelog: str | os.PathLike[str] | None = None,
                 watch: bool = True, snapshot_path: Path | None = None, sweep_seconds: float = defaults.SWEEP_SECONDS) -> None:
        super().__init__(whitelist.tree)
        #: Where the index is saved for a quick restart (None: never saved).
        self.snapshot_path = snapshot_path
        #: "snapshot" or "db": how the last start loaded.
        self.loaded_from = "db"
        self._saved_generation = -1
        self.changelog = changelog
        self.watch = watch
        #: Whether hand edits anywhere in db/ are seen at once (inotify covers the tree).
        self.watching = False
        #: Without inotify: a full pass over the directories' mtimes takes this long (0: none).
        self.sweep_seconds = sweep_seconds
        self._sweep_queue: list[str] = []
        self._sweep_share = 1
        self._follower: ChangeFollower | None = None
        self._dirty: set[str] = set()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._observer: Observer | None = None
        self._thread: threading.Thread | None = None
        self.entry_count = 0
        self.load_seconds = 0.0

    def start(self) -> None:
        """Follow the change log, load db/, then watch it; the log covers fswl's writes made during the load."""
        os.makedirs(self.tree.db, exist_ok=True)
        if self.changelog is not None:
            self._follower = ChangeFollower(self.changelog)
        started = time.monotonic()
        reread = snapshot.load(self, self.snapshot_path) if self.snapshot_path is not None else None
        if reread is None:
            self.entry_count = load_all(self)
            self.save()
        else:
            self.loaded_from = "snapshot"
            self.entry_count = self.count()
            if reread:
                self.save()
            else:
                self._saved_generation = self.generation
        self.load_seconds = time.monotonic() - started
        log.info("index: %d entries loaded from %s in %.2f s", self.entry_count, self.loaded_from, self.load_seconds)
        if self.watch:
            self._start_watching()
        self._thread = threading.Thread(target=self._apply_changes, name="fswl-index", daemon=True)
        self._thread.start()

    def _start_watching(self) -> None:
        # One inotify watch per directory, from a per-user budget (fswl runs
        # as its own user): past half of it, watching would starve the rest
        # and take minutes of CPU to set up; the change log still covers
        # fswl's own writes.
        directories = len(self.stamps)  # every directory read: db/, the families, levels, groups
        limit = _watch_limit()
        if limit is not None and directories > limit // 2:
            log.warning("index: %s (%d directories, limit %d)", WATCH_LIMIT_HINT, directories, limit)
            return
        observer = Observer()
        # Only what changes listings: inotify then never reports opens, reads
        # or the hit recorder's mtime refreshes (IN_ATTRIB), which at a few
        # thousand a second would cost more CPU than the answers.
        observer.schedule(_Handler(self), self.tree.db, recursive=True, event_filter=WATCHED_EVENTS)
        observer.daemon = True
        try:
            observer.start()
        except OSError as exc:  # inotify's watch limit (ENOSPC) or instance limit (EMFILE)
            observer.stop()
            log.warning("index: %s (%s)", WATCH_LIMIT_HINT, exc.strerror or exc)
            return
        self._observer = observer
        self.watching = True

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join()
            self._observer = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._follower is not None:
            self._follower.close()
            self._follower = None
        if self.generation != self._saved_generation:
            self.save()

    def save(self) -> None:
        """Write the snapshot (if this index has a place for one); failures are logged, not raised."""
        if self.snapshot_path is None:
            return
        try:
            with self.lock:
                generation = self.generation
                snapshot.write(self, self.snapshot_path)
            self._saved_generation = generation
        except OSError as exc:
            log.warning("index snapshot not written to %s: %s", self.snapshot_path, exc)

    def lookup(self, sender: str, address: str | IPAddress) -> Match | None:  # noqa: D102 (same as MemoryIndex)
        return super().lookup(sender, address)

    def mark(self, rel: str) -> None:
        """Note that ``rel`` (relative to db/) changed; applied within APPLY_SECONDS."""
        self._dirty.add(rel)
        self._wake.set()

    def wait_current(self, timeout: float = 2.0) -> bool:
        """Block until every change noted so far is applied (for tests and the CLI)."""
        deadline = time.monotonic() + timeout
        while self._dirty and time.monotonic() < deadline:
            time.sleep(0.01)
        with self.lock:
            return not self._dirty

    def _apply_changes(self) -> None:
        sweeping = not self.watching and self.sweep_seconds > 0
        while not self._stop.is_set():
            woken = self._wake.wait(FOLLOW_SECONDS if self._follower is not None or sweeping else None)
            self._wake.clear()
            if sweeping:
                self._sweep()
            if woken:
                time.sleep(APPLY_SECONDS)  # gather a burst (an import, a link) into one pass
            if self._follower is not None:
                self._dirty.update(self._follower.read())
                if self._follower.lost:  # slept through a rotation of the log: start over
                    self._follower.lost = False
                    log.warning("index: change log rotated unread; reloading db/")
                    load_all(self)
            if not self._dirty:
                continue
            with self.lock:
                dirty, self._dirty = self._dirty, set()
                for rel in sorted(dirty, key=lambda r: r.count("/")):
                    try:
                        reload_logged(self, rel)
                    except Exception:  # one bad directory must not stop the index
                        log.exception("index: reloading %s failed", rel)


    def _sweep(self) -> None:
        """Check the next share of directories against their stamps: hand edits without inotify.

        Each pass over db/ is spread over sweep_seconds, FOLLOW_SECONDS at a
        time; a directory whose mtime moved (an entry, link or level made,
        removed or renamed in it) is read again, as after an inotify event.
        """
        if not self._sweep_queue:
            self._sweep_queue = list(self.stamps)
            self._sweep_share = max(1, math.ceil(len(self._sweep_queue) * FOLLOW_SECONDS / self.sweep_seconds))
        share = self._sweep_queue[-self._sweep_share:]
        del self._sweep_queue[-self._sweep_share:]
        changed = changed_directories(self.tree.db, self.stamps, share)
        if changed:
            with self.lock:
                for rel in sorted(changed, key=lambda r: (r.count("/"), r)):
                    try:
                        refresh_directory(self, rel)
                    except Exception:  # one bad directory must not stop the index
                        log.exception("index: reloading %s failed", rel)


def _watch_limit() -> int | None:
    """The per-user inotify watch limit, or None where there is none to read (not Linux)."""
    try:
        with open("/proc/sys/fs/inotify/max_user_watches") as handle:
            return int(handle.read())
    except (OSError, ValueError):
        return None


class _Handler(FileSystemEventHandler):
    def __init__(self, index: Index) -> None:
        self.index = index
        self.prefix = index.tree.db + os.sep

    def on_any_event(self, event: FileSystemEvent) -> None:
        # Only creation, deletion and renames change what is listed; "modified"
        # is an mtime refresh (the hit recorder's own) or an entry list that
        # the created/deleted events already describe.
        if event.event_type not in ("created", "deleted", "moved"):
            return
        for path in (event.src_path, getattr(event, "dest_path", "")):
            if isinstance(path, bytes):
                path = os.fsdecode(path)
            if path and path.startswith(self.prefix):
                rel = path[len(self.prefix):]
                if "/.tomb" not in rel and not rel.startswith("."):
                    self.index.mark(rel)
