"""fswl import-spf: list the networks of domains' SPF records as *@DOMAIN."""

from __future__ import annotations

import click


def register(cli: click.Group) -> None:
    cli.add_command(import_spf)


@click.command(name="import-spf")
@click.argument("domains", nargs=-1)
@click.option("--from-file", "from_file", type=click.File("r", encoding="utf-8"),
              help="Also read domains from FILE, one a line (# comments; - for stdin).")
@click.option("--nameserver", metavar="IP[:PORT]", help="Ask this name server (default: [spf] nameserver, else the system's).")
@click.option("--timeout", type=click.FloatRange(min=0.1), help="Seconds per DNS lookup (default: [spf] timeout, 5).")
@click.option("--dry-run", is_flag=True, help="Print what would be listed and removed; change nothing.")
@click.pass_obj
def import_spf(obj, domains: tuple[str, ...], from_file, nameserver: str | None, timeout: float | None,
               dry_run: bool) -> int:
    """List each network DOMAIN's SPF record passes as *@DOMAIN.

    Follows include, redirect, a, mx, ip4 and ip6 within RFC 7208's limits.
    Re-running replaces the earlier import of each domain: networks that left
    its record are removed (only those this command created). A domain whose
    lookup fails keeps its earlier import. Exit 1 if any domain failed.
    """
    from fswl.errors import BadInput, BadSender
    from fswl.names import parse_domain
    from fswl.populate.spf import Resolver, SpfSettings, parse_nameserver

    settings = obj.home.settings("spf", SpfSettings)
    names = list(domains)
    if from_file is not None:
        names += [line.split("#", 1)[0].strip() for line in from_file]
        names = [n for n in names if n]
    if not names:
        raise BadInput("no domains given; name them or pass --from-file FILE")
    server = nameserver if nameserver is not None else settings.nameserver
    address = parse_nameserver(server) if server else None
    resolver = Resolver(address, timeout or settings.timeout)
    failed = 0
    for name in names:
        try:
            domain = parse_domain(name)
        except BadSender as exc:
            click.echo(f"{name}: error: not a domain ({exc.args[1]})")
            failed += 1
            continue
        failed += not _import_one(obj.home, domain, resolver, settings, dry_run)
    click.echo(f"{len(names) - failed} of {len(names)} domain(s) imported" + (" (dry run)" if dry_run else ""))
    return 1 if failed else 0


def _import_one(home, domain: str, resolver, settings, dry_run: bool) -> bool:
    from fswl.names import boundary_networks
    from fswl.populate.sources import Ledger, replace_source
    from fswl.populate.spf import expand, fit_to_tree

    expansion = expand(domain, resolver)
    sender = f"*@{domain}"
    wanted = []
    notes = list(expansion.notes)
    for version in sorted(expansion.networks):
        widest = settings.widest_ipv4 if version == 4 else settings.widest_ipv6
        for network in expansion.networks[version]:
            fitted, note = fit_to_tree(network, widest)
            if note:
                notes.append(note)
            if fitted is not None and fitted not in wanted:
                wanted.append(fitted)
    errors = sorted(set(expansion.errors.values()))
    if len(expansion.errors) == 2 and len(errors) == 1:
        click.echo(f"{domain}: error: {errors[0]}")
    else:
        for version, error in sorted(expansion.errors.items()):
            click.echo(f"{domain}: error (IPv{version}): {error}; its IPv{version} listing is kept as it was")
    if not expansion.networks:
        return False
    click.echo(f"{domain}: {len(wanted)} network(s), {expansion.lookups} DNS lookup(s)")
    for network in wanted:
        count = len(boundary_networks(network))
        split = f" (as {count} /{boundary_networks(network)[0].prefixlen}s)" if count > 1 else ""
        click.echo(f"  {sender} {network}{split}")
    for note in notes:
        click.echo(f"  note: {note}")
    if not dry_run:
        failed = set(expansion.errors)
        report = replace_source(home.whitelist, Ledger(home.root), f"spf:{domain}", [(sender, n) for n in wanted],
                                keep=lambda claim: claim[1].version in failed)
        for _sender, network in report.removed:
            click.echo(f"  removed {sender} {network} (left the record)")
    return expansion.ok

