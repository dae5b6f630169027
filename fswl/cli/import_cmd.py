"""fswl import: third-party lists into the tree."""

from __future__ import annotations

import click

from fswl.cli.progress import progress_counter

#: Bad lines shown before the rest are only counted.
SHOWN_ERRORS = 5


def register(cli: click.Group) -> None:
    cli.add_command(import_list)


@click.command(name="import")
@click.argument("file", type=click.File("r", encoding="utf-8", errors="replace"))
@click.option("--sender", default="*", show_default=True, help="The entry to list each network with.")
@click.option("--skip-bad", is_flag=True, help="Import the good lines even if some are bad.")
@click.option("--workers", type=click.IntRange(min=1), help="Processes for a large import (default: one per core).")
@click.option("--source", metavar="NAME", help="Name this list: a later import with the same NAME replaces its entries.")
@click.pass_obj
def import_list(obj, file, sender: str, skip_bad: bool, workers: int | None, source: str | None) -> None:
    """Import an rbldnsd ip4set/ip6trie file or a plain CIDR-per-line list (- for stdin).

    The whole file is checked first: with a bad line nothing is imported,
    unless --skip-bad.  With --source, entries that left the list since the
    last import of that source are removed (only those it created).
    """
    from fswl.errors import BadInput
    from fswl.importer import BadListLine, parse_list
    from fswl.names import parse_sender
    from fswl.store.bulk import add_parallel

    parse_sender(sender)  # refuse a bad --sender before reading anything
    if source is not None:
        from fswl.sources import parse_source

        parse_source(source)
    lines = file.readlines()
    errors = [item for item in parse_list(lines) if isinstance(item, BadListLine)]
    for error in errors[:SHOWN_ERRORS]:
        click.echo(f"fswl: {file.name}: {error}", err=True)
    if errors and not skip_bad:
        more = f" ({len(errors) - SHOWN_ERRORS} more)" if len(errors) > SHOWN_ERRORS else ""
        raise BadInput(
            f"{len(errors)} bad line(s) in {file.name}{more}; nothing imported. Fix them or pass --skip-bad"
        ) from None
    networks = [item.network for item in parse_list(lines) if not isinstance(item, BadListLine)]
    wl = obj.home.whitelist
    with progress_counter("import", total=len(networks)) as tick:
        if source is None:
            count = add_parallel(wl, sender, networks, workers=workers, progress=tick)
        else:
            from fswl.sources import Ledger, replace_source

            report = replace_source(wl, Ledger(obj.home.root), source, ((sender, n) for n in networks),
                                    write=lambda s, nets: add_parallel(wl, s, nets, workers=workers, progress=tick))
            count = report.added
    click.echo(f"imported {count} entries for {sender} from {file.name}")
    if source is not None:
        for removed_sender, network in report.removed:
            click.echo(f"removed {removed_sender} at {network} (no longer in {source})")
        kept = f"; {report.not_claimed} were already listed and stay if {source} drops them" if report.not_claimed else ""
        click.echo(f"source {source}: {report.listed} entries listed, {len(report.removed)} removed{kept}")
