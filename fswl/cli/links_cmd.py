"""fswl link / unlink: share one group's entries among relays."""

from __future__ import annotations

import click

from fswl.cli.whitelist_command import whitelist_command
from fswl.store import Whitelist


def register(cli: click.Group) -> None:
    cli.add_command(link)
    cli.add_command(unlink)


@whitelist_command("relay", "group")
def link(wl: Whitelist, relay: str, group: str) -> None:
    """Make RELAY's directory (an IP or a /8../32, /16../128 prefix) a symlink to groups/GROUP."""
    path = wl.link(relay, group)
    click.echo(f"linked {wl.tree.relative(path)} -> groups/{group}")


@whitelist_command("relay")
@click.option("--keep-entries", is_flag=True, help="Copy the group's entries into RELAY's own directory.")
def unlink(wl: Whitelist, relay: str, keep_entries: bool) -> None:
    """Give RELAY its own directory again."""
    path = wl.unlink(relay, keep_entries)
    click.echo(f"unlinked {wl.tree.relative(path)}")
