"""fswl add / rm / check / ls."""

from __future__ import annotations

import time

import click

from fswl.cli.whitelist_command import whitelist_command
from fswl.names import sender_to_name
from fswl.store import Listing, Problem, Whitelist


def register(cli: click.Group) -> None:
    for command in (add, rm, check, ls):
        cli.add_command(command)


@whitelist_command("sender", "relay")
def add(wl: Whitelist, sender: str, relay: str) -> None:
    """List SENDER (addr, *@domain or *) for RELAY (IP or CIDR)."""
    for path in wl.add(sender, relay):
        click.echo(f"added {wl.tree.relative(path)}")


@whitelist_command("sender", "relay")
def rm(wl: Whitelist, sender: str, relay: str) -> None:
    """Remove SENDER for RELAY, leaving a tombstone so mirrors remove it too."""
    for path, existed in wl.remove(sender, relay):
        state = "removed" if existed else "not listed here; tombstone left for"
        click.echo(f"{state} {wl.tree.relative(path)}")


@whitelist_command("sender", "relay")
def check(wl: Whitelist, sender: str, relay: str) -> int:
    """Exit 0 and print the entry that lists SENDER via RELAY, or exit 1."""
    match = wl.lookup(sender, relay)
    if match is None:
        click.echo(f"not listed: {sender} via {relay}")
        return 1
    via = f" via {match.via}" if match.via else ""
    click.echo(f"listed: {sender_to_name(match.sender)} at {match.network}{via} ({match.answer}) {wl.tree.relative(match.path)}")
    return 0


@click.command(name="ls")
@click.argument("relay", required=False)
@click.option("--groups", is_flag=True, help="Also list groups' entries on their own.")
@click.pass_obj
def ls(obj, relay: str | None, groups: bool) -> None:
    """List entries (all, or those overlapping RELAY): network, sender, last added or seen, group."""
    from fswl.store.walk import walk

    wl = obj.home.whitelist
    problems: list[Problem] = []
    if relay is None:
        listings = walk(wl.tree, problems, groups=groups)
    else:
        listings = wl.entries(relay)
    seen = wl.last_seen.since(float("-inf"))
    for listing in listings:
        click.echo(format_listing(listing, seen.get(wl.tree.relative(listing.path), 0.0)))
    for problem in problems:
        click.echo(f"fswl: warning: {problem}", err=True)


def format_listing(listing: Listing, seen: float = 0.0) -> str:
    """``seen`` is the last-seen time on this node: the date shown is when expiry counts from."""
    where = str(listing.network) if listing.network is not None else f"group:{listing.group}"
    date = time.strftime("%Y-%m-%d", time.gmtime(max(listing.mtime, seen)))
    via = f" via {listing.via}" if listing.via else ""
    # The file-name form: control bytes stay percent-encoded, never reach the terminal raw.
    return f"{where} {sender_to_name(listing.sender)} {date}{via}"
