"""fswl link / unlink: share one group's entries among relays."""

from __future__ import annotations

import click


def register(cli: click.Group) -> None:
    cli.add_command(link)
    cli.add_command(unlink)


@click.command()
@click.argument("relay")
@click.argument("group")
@click.pass_obj
def link(obj, relay: str, group: str) -> None:
    """Make RELAY's directory (an IP or a /8../32, /16../128 prefix) a symlink to groups/GROUP."""
    wl = obj.home.whitelist
    path = wl.link(relay, group)
    click.echo(f"linked {wl.tree.relative(path)} -> groups/{group}")


@click.command()
@click.argument("relay")
@click.option("--keep-entries", is_flag=True, help="Copy the group's entries into RELAY's own directory.")
@click.pass_obj
def unlink(obj, relay: str, keep_entries: bool) -> None:
    """Give RELAY its own directory again."""
    wl = obj.home.whitelist
    path = wl.unlink(relay, keep_entries)
    click.echo(f"unlinked {wl.tree.relative(path)}")
