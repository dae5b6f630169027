"""Groups: a relay or prefix directory that is a symlink into db/groups/ shares its entries.

A link carries its time, as an entry does: the symlink's own mtime (``lstat``)
is when it was made. An unlink leaves a tombstone dated by the unlink: the
relay becomes a real directory holding ``.tomb/.link`` (fswl.store.tree.LINK_TOMB).
A replayed link or unlink (a mirror's record, a reconciliation) is settled
against them by the entry rule: the newer wins, a tie goes to the unlink;
two links of one relay to different groups, the newer (a tie: the greater
target, the same choice on every node).
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
import stat
import time
from typing import Protocol

from fswl.errors import BadName, BadRelay, Conflict, UnsafePath
from fswl.names import IPNetwork, name_to_sender, parse_group, parse_relay
from fswl.store import journal
from fswl.store.files import mtime, stamp
from fswl.store.journal import Change
from fswl.store.tree import LINK_TOMB, TOMB_DIR, Tree
from fswl.util import atomic



class Store(Protocol):
    """What a link is made with: fswl.store.whitelist.Whitelist, which builds on this module (not the reverse)."""

    tree: Tree

    def make_dirs(self, path: str) -> str: ...

    def emit(self, change: Change) -> None: ...

    def add_at(self, directory: str, sender: str, when: float | None = None) -> bool: ...


#: Attempts at replacing a directory that concurrent writers keep filling.
_LINK_ATTEMPTS = 5


def link(wl: Store, relay: str | IPNetwork, group: str) -> str:
    """Make the relay's directory a relative symlink to db/groups/GROUP, dated now (`fswl link`).

    Entries (and tombstones) already in the relay's directory move into the
    group, so nothing listed is lost; a link tombstone there is older, and
    goes.  Linking again to the same group re-dates the link, as a re-add
    does an entry.  Returns the link's path.

    :raises Conflict: if the relay is linked to another group (unlink it first).
    """
    parse_group(group)  # before anything is made
    lexical, network = _lexical(wl, relay)
    _link(wl, lexical, network, group, time.time(), replay=False)
    return lexical


def link_at(wl: Store, network: IPNetwork, group: str, when: float) -> bool:
    """Replay a link made at ``when`` elsewhere; True if db/ changed.

    It loses to an unlink (a link tombstone) dated at or after it and to a
    newer link, to this group or another.
    """
    parse_group(group)
    lexical, network = _lexical(wl, network)
    return _link(wl, lexical, network, group, when, replay=True)


def unlink(wl: Store, relay: str | IPNetwork, keep_entries: bool = False) -> str:
    """Turn a linked relay back into a directory of its own, with a link tombstone dated now (`fswl unlink`).

    With ``keep_entries`` the directory also gets a copy of the group's
    entries (dated by their add times).

    :raises Conflict: if the relay is not linked.
    """
    lexical, network = _lexical(wl, relay)
    try:
        is_link = stat.S_ISLNK(os.lstat(lexical).st_mode)
    except FileNotFoundError:
        is_link = False
    if not is_link:
        raise Conflict(f"{network} is not linked to a group; nothing to unlink")
    try:
        shared = wl.tree.resolve(lexical)
    except UnsafePath:
        shared = None  # a bad link is removed all the same, and nothing is copied through it
    unlink_at(wl, network, time.time())
    if keep_entries and shared is not None:
        own = wl.make_dirs(lexical)
        for child in os.scandir(shared):
            if child.is_file(follow_symlinks=False) and not child.name.startswith("."):
                try:
                    sender = name_to_sender(child.name)
                except BadName:
                    continue  # fsck reports stray files
                wl.add_at(own, sender, when=child.stat(follow_symlinks=False).st_mtime)
    return lexical


def unlink_at(wl: Store, network: IPNetwork, when: float) -> bool:
    """Remove the relay's link, if it is not newer than ``when``, and leave a link tombstone dated ``when``.

    Also for a relay not linked here (the unlink of a link this node never
    had, or a hand ``rm`` of the link): the tombstone is left all the same, so
    that a link older than the unlink, arriving later, stays unlinked.
    True if db/ changed.
    """
    lexical, _network = _lexical(wl, network)
    try:
        is_link = stat.S_ISLNK(os.lstat(lexical).st_mode)
    except FileNotFoundError:
        is_link = False
    tomb = wl.tree.link_tomb_path(lexical)
    if is_link:
        if mtime(lexical) > when:
            return False  # linked again after this unlink: the later explicit link wins
        os.unlink(lexical)
    elif mtime(tomb) >= when:
        return False  # unlinked here at that time or later already
    # The link goes first, then the tombstone is made: a rename cannot put a directory in a
    # symlink's place. A crash between the two leaves the relay unlinked without a tombstone,
    # as every unlink did before links carried their time.
    own = wl.make_dirs(lexical)
    os.makedirs(os.path.join(own, TOMB_DIR), exist_ok=True)
    stamp(wl.tree.link_tomb_path(own), when)
    wl.emit(Change(journal.UNLINK, wl.tree.relative(lexical), when=when))
    return True


def _link(wl: Store, lexical: str, network: IPNetwork, group: str, when: float, replay: bool) -> bool:
    parent = os.path.dirname(lexical)
    if os.path.isdir(lexical) and not os.path.islink(lexical):
        _refuse_sub_levels(wl, lexical)
    group_dir = wl.make_dirs(wl.tree.group_dir(group))
    target = os.path.relpath(group_dir, parent)
    for _ in range(_LINK_ATTEMPTS):
        try:
            mode = os.lstat(lexical).st_mode
        except FileNotFoundError:
            mode = None
        if mode is not None and stat.S_ISLNK(mode):
            current = os.readlink(lexical)
            if wl.tree.check_link(lexical).resolved == group_dir:
                if mtime(lexical) >= when:
                    return False  # linked so at that time or later already
                os.utime(lexical, (when, when), follow_symlinks=False)
                wl.emit(Change(journal.LINK, wl.tree.relative(lexical), target=current, when=when))
                return True
            if not replay:
                raise Conflict(f"{network} is already linked to {current}; run `fswl unlink {network}` first")
            if (mtime(lexical), current) >= (when, target):
                return False  # the newer link wins (a tie: the greater target, on every node alike)
        elif mode is not None:
            if mtime(wl.tree.link_tomb_path(lexical)) >= when:
                return False  # unlinked at that time or later: the unlink wins
            _merge_into(wl, lexical, group_dir)
            try:
                os.rmdir(lexical)
            except OSError as exc:
                if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                    continue  # a writer added an entry meanwhile: merge again
                raise
        temp = os.path.join(parent, f".link-{secrets.token_hex(6)}")
        os.symlink(target, temp)
        os.utime(temp, (when, when), follow_symlinks=False)  # the link's time, kept by the rename
        try:
            atomic.replace(temp, lexical)  # durable: the entries have moved to the group already
        except OSError as exc:
            os.unlink(temp)
            if exc.errno in (errno.EISDIR, errno.ENOTEMPTY, errno.EEXIST):
                continue  # a writer recreated the directory meanwhile
            raise
        wl.emit(Change(journal.LINK, wl.tree.relative(lexical), target=target, when=when))
        return True
    raise Conflict(f"{network} keeps changing under concurrent writers; try `fswl link` again")


def _lexical(wl: Store, relay: str | IPNetwork) -> tuple[str, IPNetwork]:
    """The relay's own path (its parent's links resolved, never its own) and its network."""
    network = parse_relay(relay) if isinstance(relay, str) else relay
    try:
        directory = wl.tree.relay_dir(network)
    except BadRelay as exc:
        raise BadRelay(str(network), f"{exc.args[1]}; a link stands for one tree directory") from exc
    parent = wl.make_dirs(os.path.dirname(directory))
    return os.path.join(parent, os.path.basename(directory)), network


def _merge_into(wl: Store, source: str, group_dir: str) -> None:
    """Move the entries and tombstones of ``source`` into ``group_dir`` (a link tombstone is dropped).

    :raises Conflict: before moving anything, if ``source`` has sub-levels:
        a group is flat, so they could not follow it.
    """
    _refuse_sub_levels(wl, source)
    for child in os.scandir(source):
        if child.name == TOMB_DIR:
            destination = os.path.join(group_dir, TOMB_DIR)
            os.makedirs(destination, exist_ok=True)
            _move_files(child.path, destination)
            shutil.rmtree(child.path, ignore_errors=True)  # the link tombstone with it: this link is newer
        elif not child.name.startswith("."):
            _move_files(source, group_dir, only=child.name)


def _refuse_sub_levels(wl: Store, source: str) -> None:
    for child in os.scandir(source):
        if child.name != TOMB_DIR and (child.is_dir(follow_symlinks=False) or child.is_symlink()):
            raise Conflict(
                f"{wl.tree.relative(source)} has more specific relays under it ({child.name}/); a group holds "
                "entries only, so link those relays one by one or remove them first"
            )


def _move_files(source: str, destination: str, only: str | None = None) -> None:
    names = [only] if only else [c.name for c in os.scandir(source)
                                 if c.is_file(follow_symlinks=False) and c.name != LINK_TOMB]
    for name in names:
        src, dst = os.path.join(source, name), os.path.join(destination, name)
        newest = max(os.lstat(src).st_mtime, os.lstat(dst).st_mtime if os.path.lexists(dst) else 0)
        atomic.replace(src, dst, durable=False)  # both are empty files: replacing loses nothing but an older mtime
        os.utime(dst, (newest, newest), follow_symlinks=False)
    if names:  # once for the lot, before the directory is swapped for the link
        atomic.sync_dir(destination)
        atomic.sync_dir(source)
