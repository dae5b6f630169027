"""fswl correlate: propose groups of relays that many of the same senders use; --apply links them."""

from __future__ import annotations

import ipaddress

import click


def register(cli: click.Group) -> None:
    cli.add_command(correlate)


@click.command()
@click.option("--threshold", type=click.FloatRange(0.0, 1.0), help="Jaccard index of two relays' senders to call them similar (default: [correlate] threshold, 0.3).")
@click.option("--min-senders", type=click.IntRange(min=1), help="Shared senders two similar relays need (default: [correlate] min_senders, 3).")
@click.option("--ptr", is_flag=True, help="Look up the names (PTR) of relays in different networks that have none recorded; one naming domain lets them group.")
@click.option("--nameserver", metavar="IP[:PORT]", help="Ask this name server for --ptr (default: the system's).")
@click.option("--force", is_flag=True, help="Group similar relays even across unrelated networks.")
@click.option("--apply", "apply_", is_flag=True, help="Link the proposed groups (as `fswl link RELAY GROUP`).")
@click.pass_obj
def correlate(obj, threshold: float | None, min_senders: int | None, ptr: bool, nameserver: str | None,
              force: bool, apply_: bool) -> None:
    """Propose groups of relays that share senders, with the evidence; --apply links them.

    The evidence is the senders listed at each relay and the event log's
    confirmations and admissions. Relays in different /16s (IPv6 /32s) are
    grouped only when their names share a domain (recorded with the events,
    or looked up with --ptr) or with --force.
    """
    from fswl.populate.correlate import CorrelateSettings, propose, sender_sets
    from fswl.store.events import EventLog
    from fswl.store.walk import walk

    settings = obj.home.settings("correlate", CorrelateSettings)
    threshold = settings.threshold if threshold is None else threshold
    min_senders = settings.min_senders if min_senders is None else min_senders
    wl = obj.home.whitelist
    names: dict = {}
    sets = sender_sets(walk(wl.tree), EventLog.of(obj.home).read(), names)
    name_of = _ptr_lookup(nameserver) if ptr else None
    proposals, held = propose(sets, threshold, min_senders, force=force, name_of=name_of, recorded=names)
    click.echo(f"{len(sets)} relays with known senders; J >= {threshold:g} and >= {min_senders} shared senders")
    for proposal in proposals:
        click.echo(f"proposed group {proposal.name}: {len(proposal.relays)} relays, "
                   f"{proposal.common} senders seen at two or more of them")
        for relay in proposal.relays:
            best = max((p for p in proposal.pairs if relay in (p.a, p.b)), key=lambda p: p.jaccard)
            other = best.b if best.a == relay else best.a
            name = f" {proposal.names[relay]}" if relay in proposal.names else ""
            click.echo(f"  {relay}{name}: {proposal.senders[relay]} senders; closest {other} "
                       f"(J={best.jaccard:.2f}, {best.shared} shared, {best.related})")
    for (first, second), pairs in _by_networks(held).items():
        best = max(pairs, key=lambda p: p.jaccard)
        click.echo(f"held apart: {first} ~ {second}: {len(pairs)} similar pair(s), closest {best.a} ~ {best.b} "
                   f"(J={best.jaccard:.2f}, {best.shared} shared); different networks and no common naming: "
                   "--ptr to check names, --force to group anyway")
    if not proposals:
        click.echo("no groups to propose")
    if apply_:
        _apply(wl, proposals)


def _by_networks(pairs) -> dict:
    from fswl.populate.correlate import SAME_NETWORK_BITS

    found: dict = {}
    for pair in pairs:
        key = tuple(ipaddress.ip_network((r, SAME_NETWORK_BITS[r.version]), strict=False) for r in (pair.a, pair.b))
        found.setdefault(key, []).append(pair)
    return found


def _apply(wl, proposals) -> None:
    from fswl.errors import FswlError

    for proposal in proposals:
        for relay in proposal.relays:
            network = ipaddress.ip_network(relay)
            try:
                path = wl.link(network, proposal.name)
            except FswlError as exc:
                click.echo(f"fswl: not linked {relay}: {exc}", err=True)
                continue
            click.echo(f"linked {wl.tree.relative(path)} -> groups/{proposal.name}")


def _ptr_lookup(nameserver: str | None):
    import dns.exception
    import dns.resolver
    import dns.reversename

    from fswl.populate.spf import parse_nameserver

    from fswl.populate.spf import system_resolver

    resolver = system_resolver() if nameserver is None else dns.resolver.Resolver(configure=False)
    if nameserver:
        host, port = parse_nameserver(nameserver)
        resolver.nameservers, resolver.port = [host], port
    resolver.lifetime = 3.0

    def name_of(address) -> str:
        try:
            answer = resolver.resolve(dns.reversename.from_address(str(address)), "PTR", search=False)
        except dns.exception.DNSException:
            return ""
        return answer[0].target.to_text(omit_final_dot=True)

    return name_of
