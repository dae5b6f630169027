"""Groups: a relay or prefix directory that is a symlink into db/groups/ shares its entries."""

from __future__ import annotations

import errno
import os
import secrets
import shutil
import stat
from typing import TYPE_CHECKING

from fswl.errors import BadName, BadRelay, Conflict, UnsafePath
from fswl.names import IPNetwork, name_to_sender, parse_group, parse_relay
from fswl.store import journal
from fswl.store.journal import Change
from fswl.store.tree import TOMB_DIR
from fswl.util import atomic

if TYPE_CHECKING:
    from fswl.store.whitelist import Whitelist

#: Attempts at replacing a directory that concurrent writers keep filling.
_LINK_ATTEMPTS = 5


def link(wl: Whitelist, relay: str | IPNetwork, group: str) -> str:
    """Make the relay's directory a relative symlink to db/groups/GROUP.

    Entries (and tombstones) already in the relay's directory move into the
    group, so nothing listed is lost.  Returns the link's path.
    """
    directory, network = _relay_dir(wl, relay)
    parse_group(group)
    parent = wl.make_dirs(os.path.dirname(directory))
    lexical = os.path.join(parent, os.path.basename(directory))
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
            if wl.tree.resolve(lexical) == group_dir:
                return lexical
            raise Conflict(f"{network} is already linked to {os.readlink(lexical)}; run `fswl unlink {network}` first")
        if mode is not None:
            _merge_into(wl, lexical, group_dir)
            try:
                os.rmdir(lexical)
            except OSError as exc:
                if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                    continue  # a writer added an entry meanwhile: merge again
                raise
        temp = os.path.join(parent, f".link-{secrets.token_hex(6)}")
        os.symlink(target, temp)
        try:
            atomic.replace(temp, lexical)  # durable: the entries have moved to the group already
        except OSError as exc:
            os.unlink(temp)
            if exc.errno in (errno.EISDIR, errno.ENOTEMPTY, errno.EEXIST):
                continue  # a writer recreated the directory meanwhile
            raise
        wl.emit(Change(journal.LINK, wl.tree.relative(lexical), target=target))
        return lexical
    raise Conflict(f"{network} keeps changing under concurrent writers; try `fswl link` again")


def unlink(wl: Whitelist, relay: str | IPNetwork, keep_entries: bool = False) -> str:
    """Turn a linked relay back into a directory of its own (empty, or with a copy of the group's entries)."""
    directory, network = _relay_dir(wl, relay)
    parent = wl.make_dirs(os.path.dirname(directory))
    lexical = os.path.join(parent, os.path.basename(directory))
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
    os.unlink(lexical)
    wl.emit(Change(journal.UNLINK, wl.tree.relative(lexical)))
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


def _relay_dir(wl: Whitelist, relay: str | IPNetwork) -> tuple[str, IPNetwork]:
    network = parse_relay(relay) if isinstance(relay, str) else relay
    try:
        return wl.tree.relay_dir(network), network
    except BadRelay as exc:
        raise BadRelay(str(network), f"{exc.args[1]}; a link stands for one tree directory") from exc


def _merge_into(wl: Whitelist, source: str, group_dir: str) -> None:
    """Move the entries and tombstones of ``source`` into ``group_dir``.

    :raises Conflict: before moving anything, if ``source`` has sub-levels:
        a group is flat, so they could not follow it.
    """
    _refuse_sub_levels(wl, source)
    for child in os.scandir(source):
        if child.name == TOMB_DIR:
            destination = os.path.join(group_dir, TOMB_DIR)
            os.makedirs(destination, exist_ok=True)
            _move_files(child.path, destination)
            shutil.rmtree(child.path, ignore_errors=True)
        elif not child.name.startswith("."):
            _move_files(source, group_dir, only=child.name)


def _refuse_sub_levels(wl: Whitelist, source: str) -> None:
    for child in os.scandir(source):
        if child.name != TOMB_DIR and (child.is_dir(follow_symlinks=False) or child.is_symlink()):
            raise Conflict(
                f"{wl.tree.relative(source)} has more specific relays under it ({child.name}/); a group holds "
                "entries only, so link those relays one by one or remove them first"
            )


def _move_files(source: str, destination: str, only: str | None = None) -> None:
    names = [only] if only else [c.name for c in os.scandir(source) if c.is_file(follow_symlinks=False)]
    for name in names:
        src, dst = os.path.join(source, name), os.path.join(destination, name)
        newest = max(os.lstat(src).st_mtime, os.lstat(dst).st_mtime if os.path.lexists(dst) else 0)
        atomic.replace(src, dst, durable=False)  # both are empty files: replacing loses nothing but an older mtime
        os.utime(dst, (newest, newest), follow_symlinks=False)
    if names:  # once for the lot, before the directory is swapped for the link
        atomic.sync_dir(destination)
        atomic.sync_dir(source)

