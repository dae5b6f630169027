"""fswl import: third-party lists into the tree."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from fswl.cli.progress import progress_counter
from fswl.names import IPNetwork, boundary_networks

if TYPE_CHECKING:
    from fswl.populate.importer import ListItem

#: Bad lines shown before the rest are only counted.
SHOWN_ERRORS = 5


class Refusals:
    """Networks the tree refused, by the line of the list they came from."""

    def __init__(self, items: list[ListItem]) -> None:
        self._items = items
        self._line: dict[IPNetwork, int] | None = None  # built at the first refusal
        self.lines: dict[int, str] = {}  #: line number -> the first reason

    def add(self, network: IPNetwork, reason: str) -> None:
        if self._line is None:  # by network and by each boundary piece (--source writes pieces)
            self._line = {}
            for item in self._items:
                for key in (item.network, *boundary_networks(item.network)):
                    self._line.setdefault(key, item.lineno)
        self.lines.setdefault(self._line.get(network, 0), f"{network}: {reason}")

    def first(self, n: int) -> list[tuple[int, str]]:
        return sorted(self.lines.items())[:n]


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
    unless --skip-bad.  A line that cannot be written (under a linked
    directory) is named and the rest imported, with exit status 1.  Safe to
    run again after an interruption: it finishes the job.  With --source,
    entries that left the list since the last import of that source are
    removed (only those it created).
    """
    from fswl.errors import BadInput, Refused
    from fswl.populate.importer import BadListLine, parse_list
    from fswl.names import parse_sender
    from fswl.store.bulk import add_parallel

    parse_sender(sender)  # refuse a bad --sender before reading anything
    if source is not None:
        from fswl.populate.sources import parse_source

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
    items = [item for item in parse_list(lines) if not isinstance(item, BadListLine)]
    networks = [item.network for item in items]
    refusals = Refusals(items)
    wl = obj.home.whitelist
    with progress_counter("import", total=len(networks)) as tick:
        if source is None:
            count = add_parallel(wl, sender, networks, workers=workers, progress=tick, refused=refusals.add)
        else:
            from fswl.populate.sources import Ledger, replace_source

            report = replace_source(wl, Ledger(obj.home.root), source, ((sender, n) for n in networks),
                                    write=lambda s, nets, refused: add_parallel(wl, s, nets, workers=workers,
                                                                                progress=tick, refused=refused),
                                    refused=refusals.add)
            count = report.added
    if not refusals.lines:
        click.echo(f"imported {count} entries for {sender} from {file.name}")
    if source is not None:
        for removed_sender, network in report.removed:
            click.echo(f"removed {removed_sender} at {network} (no longer in {source})")
        kept = f"; {report.not_claimed} were already listed and stay if {source} drops them" if report.not_claimed else ""
        click.echo(f"source {source}: {report.listed} entries listed, {len(report.removed)} removed{kept}")
    if refusals.lines:
        for lineno, reason in refusals.first(SHOWN_ERRORS):
            click.echo(f"fswl: {file.name}: line {lineno:,}: {reason}", err=True)
        lineno, reason = refusals.first(1)[0]
        raise Refused(f"{file.name}: {count:,} imported, {len(refusals.lines):,} refused, first: line {lineno:,}: "
                      f"{reason} (the rest is imported; fix those lines and import again)")
