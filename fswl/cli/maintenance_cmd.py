"""fswl expire / fsck."""

from __future__ import annotations


import click

from fswl.cli.progress import progress_counter


def register(cli: click.Group) -> None:
    cli.add_command(expire)
    cli.add_command(fsck)


@click.command()
@click.option("--days", type=click.FloatRange(min=0), help="Idle days before removal (default: [store] expire_days, 180).")
@click.option("--tombstone-days", type=click.FloatRange(min=0), help="Age at which tombstones go (default 400).")
@click.option("--dry-run", is_flag=True, help="Print what would be removed; remove nothing.")
@click.pass_obj
def expire(obj, days: float | None, tombstone_days: float | None, dry_run: bool) -> None:
    """Remove entries not seen for DAYS, and old tombstones."""
    from fswl.store.maintenance import expire as run_expire

    settings = obj.home.store_settings
    days = settings.expire_days if days is None else days
    tomb_days = settings.tombstone_days if tombstone_days is None else tombstone_days
    if tomb_days < days:
        raise click.BadParameter("tombstones must outlive entries: --tombstone-days >= --days")
    with progress_counter("expire") as tick:
        report = run_expire(obj.home.whitelist, days, tomb_days, dry_run=dry_run, progress=tick)
    verb = "would remove" if dry_run else "removed"
    for path in report.entries:
        click.echo(f"{verb} {path}")
    for path in report.tombstones:
        click.echo(f"{verb} tombstone {path}")
    click.echo(f"{verb} {len(report.entries)} entries idle over {days:g} days, "
               f"{len(report.tombstones)} tombstones over {tomb_days:g} days", err=True)


@click.command()
@click.option("--repair", is_flag=True, help="Settle entry/tombstone pairs and remove crash leftovers.")
@click.pass_obj
def fsck(obj, repair: bool) -> int:
    """Check db/ for links that leave it, dangle or loop, and for stray files; exit 1 if any."""
    from fswl.store.maintenance import fsck as run_fsck

    problems = run_fsck(obj.home.whitelist, repair=repair) + _unjournalled(obj.home)
    for problem in problems:
        click.echo(str(problem))
    if problems:
        click.echo(f"{len(problems)} problem(s) in {obj.home.db}", err=True)
        return 1
    click.echo("db/ is clean")
    return 0


def _unjournalled(home):
    """Hand edits of db/ that no round has journalled for peers yet (none without a peer)."""
    from fswl.store.walk import Problem
    from fswl.sync.node import Node

    node = Node(home)
    if not node.peers.names():
        return []
    return [Problem(c.path, f"{_BY_HAND[c.op]} by hand; peers have not seen it yet: a plain `fswl sync` "
                    "journals and sends it") for c in node.hand_edits(dry_run=True).edits]


_BY_HAND = {"add": "added", "remove": "removed", "link": "linked", "unlink": "unlinked"}
