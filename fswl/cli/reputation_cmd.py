"""fswl reputation show / record: the quota of an unlisted relay, explained; events recorded by hand."""

from __future__ import annotations

import time

import click


def register(cli: click.Group) -> None:
    cli.add_command(reputation)


@click.group()
def reputation() -> None:
    """Reputation quotas of unlisted relays (the policy service's [reputation])."""


@reputation.command()
@click.argument("ip")
@click.pass_obj
def show(obj, ip: str) -> None:
    """Explain the hourly quota of relay IP (an IPv6 relay counts by its /64)."""
    from fswl.store.events import EventLog
    from fswl.names import parse_address
    from fswl.reputation.model import Reputation, ReputationSettings

    settings = obj.home.settings("reputation", ReputationSettings)
    address = parse_address(ip)
    table = Reputation(settings)
    table.apply(EventLog.of(obj.home).read())
    key = table.key(address)
    # the senders listed at the address's own levels, as the policy service counts them
    listed = [listing.sender for listing in obj.home.whitelist.entries(key) if address in listing.network]
    score = table.score(address, listed)
    state = "" if settings.enabled else " ([reputation] enabled is false: the policy service does not use it)"
    click.echo(f"relay {score.key}{state}")
    click.echo(f"quota: {score.quota} message(s)/hour, {score.used} used in the last hour")
    for text, value in score.parts:
        click.echo(f"  {value:7.1f}  {text}")
    click.echo(f"  (capped at {settings.max_quota})")
    if score.first_seen is not None:
        click.echo("first recorded: " + time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(score.first_seen)))
    click.echo(f"blocked: {score.blocked}" if score.blocked else "abuse reports: none in force")


@reputation.command()
@click.argument("kind", type=click.Choice(["confirm", "abuse", "spf_pass"]))
@click.argument("ip")
@click.argument("sender", required=False, default="")
@click.option("--name", default="", help="The relay's host name, if known (relay correlation uses it).")
@click.pass_obj
def record(obj, kind: str, ip: str, sender: str, name: str) -> None:
    """Add an event to the log by hand: a confirmed SENDER, an abuse report, an SPF pass."""
    from fswl.errors import BadInput
    from fswl.store.events import EventLog, make_event

    if kind in ("confirm", "spf_pass") and not sender:
        raise BadInput(f"{kind} needs a SENDER, e.g. `fswl reputation record {kind} {ip} dave@example.org`")
    event = make_event(kind, ip, sender, name=name)
    EventLog.of(obj.home).append([event])
    click.echo(f"recorded {kind} for {event.ip}" + (f" ({event.sender})" if event.sender else ""))
