"""fswl export: the tree as rbldnsd data or a zone file, for read-only DNS mirrors."""

from __future__ import annotations

import io
import os
import sys
import time
from contextlib import contextmanager
from typing import Iterator, TextIO

import click

from fswl.cli.progress import progress_counter
from fswl.errors import BadInput
from fswl.util import atomic

FORMATS = ("rbldnsd", "zone")
#: Skipped entries shown before the rest are only counted.
SHOWN_WARNINGS = 5


def register(cli: click.Group) -> None:
    cli.add_command(export)


@click.command()
@click.option("--format", "fmt", type=click.Choice(FORMATS),
              help="rbldnsd: one combined dataset; zone: an RFC 1035 master file (NSD, Knot, BIND).")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True),
              help="Write to FILE (replaced atomically) instead of stdout.")
@click.option("--serial", type=click.IntRange(min=1, max=2**32 - 1),
              help="SOA serial (default: the time now, in seconds).")
@click.pass_obj
def export(obj, fmt: str | None, output: str | None, serial: int | None) -> None:
    """Export the whitelist for rbldnsd, NSD, Knot or BIND, answering what `fswl serve dns` answers.

    The zone, TTLs, SOA and NS come from [dns] in fswl.toml. Mailbox names
    are private: serve the export only to your own secondaries.
    """
    from fswl.dns.settings import DnsSettings
    from fswl.dns.export_names import ExportNames
    from fswl.export.apex import Apex
    from fswl.export.rbldnsd import write_rbldnsd
    from fswl.export.zone import write_zone

    if fmt is None:  # click's own message for a missing choice spans lines
        raise click.UsageError(f"Missing option '--format' ({' or '.join(FORMATS)})")
    home = obj.home
    if output is not None and _inside(output, str(home.db)):
        raise BadInput(f"--output {output} is inside db/, where it would become part of the tree; write it elsewhere")
    settings = home.settings("dns", DnsSettings)
    names = ExportNames(home.whitelist.tree, settings)
    write = write_rbldnsd if fmt == "rbldnsd" else write_zone
    with progress_counter("export", total=len(names.addresses)) as tick, _destination(output) as out:
        write(out, names, Apex.of(settings, serial or int(time.time()), home.base_url), tick)
    for message in names.skipped[:SHOWN_WARNINGS]:
        click.echo(f"fswl: export: skipped {message}", err=True)
    if len(names.skipped) > SHOWN_WARNINGS:
        click.echo(f"fswl: export: {len(names.skipped) - SHOWN_WARNINGS} more skipped", err=True)
    if names.problems:
        click.echo(f"fswl: export: {len(names.problems)} things in db/ not followed; see `fswl fsck`", err=True)


@contextmanager
def _destination(output: str | None) -> Iterator[TextIO]:
    """stdout, or a temporary file beside OUTPUT renamed onto it only when complete."""
    if output is None:
        out = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", errors="surrogateescape", newline="\n")
        try:
            yield out
        finally:
            out.flush()
            out.detach()
        return
    directory = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(directory):
        raise BadInput(f"no directory {directory} for --output; create it first")
    with atomic.replacing(output) as raw:
        out = io.TextIOWrapper(raw, encoding="utf-8", errors="surrogateescape", newline="\n")
        yield out
        out.flush()
        out.detach()  # the raw file is fsynced and renamed into place by atomic.replacing


def _inside(path: str, directory: str) -> bool:
    real = os.path.realpath(path)
    top = os.path.realpath(directory)
    return real == top or real.startswith(top + os.sep)
