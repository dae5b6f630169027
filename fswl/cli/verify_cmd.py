"""fswl verify stats: pending challenges, where the caps stand, what happened so far."""

from __future__ import annotations

import click


def register(cli: click.Group) -> None:
    cli.add_command(verify)


@click.group()
def verify() -> None:
    """Verification of new senders (challenge mail)."""


@verify.command()
@click.pass_obj
def stats(obj) -> None:
    """Show pending challenges, the caps (last hour), and counts of challenges, refusals and confirmations."""
    from fswl.dns.settings import DnsSettings
    from fswl.verify.stats import read_stats
    from fswl.verify.verifier import load_settings

    home = obj.home
    settings = load_settings(home)
    numbers = read_stats(home, settings)
    zone = settings.zone_or(home.settings("dns", DnsSettings).zone)
    click.echo(f"verification: {'enabled' if settings.enabled else 'disabled'}; zone {zone}; "
               f"smarthost {settings.smarthost}")
    click.echo(f"pending: {numbers['pending']}")
    caps = numbers["caps"]
    click.echo(f"sent last hour: {caps['sent_last_hour']} of {settings.global_per_hour} (global cap)")
    click.echo(f"busiest address last hour: {caps['busiest_address_last_hour']} of {settings.per_address_per_hour}")
    click.echo(f"busiest domain last hour: {caps['busiest_domain_last_hour']} of {settings.per_domain_per_hour}")
    click.echo(f"addresses blocked after forgery reports: {caps['blocked_addresses']}")
    for name, count in numbers["counts"].items():
        click.echo(f"{name}: {count}")
