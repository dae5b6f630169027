"""fswl serve: every configured service in one process."""

from __future__ import annotations

import click


def register(cli: click.Group) -> None:
    cli.add_command(serve)


@click.command()
@click.argument("names", nargs=-1, metavar="[SERVICE]...")
@click.option("--listen", metavar="HOST:PORT", help="Where a service named alone listens.")
@click.option("--workers", type=click.IntRange(1, 64), help="DNS processes sharing the port (default: [dns] workers).")
@click.pass_obj
def serve(obj, names: tuple[str, ...], listen: str | None, workers: int | None) -> None:
    """Run services (dns, policy, smtp, web; default all) until SIGTERM or Ctrl-C."""
    import asyncio

    from fswl.cli.logs import stamp_lines
    from fswl.errors import BadInput
    from fswl.app.services import REGISTRY, build, make_runtime, run

    chosen = list(names) or list(REGISTRY)
    if listen is not None and len(chosen) != 1:
        raise BadInput("--listen goes with exactly one service, e.g. `fswl serve dns --listen 127.0.0.1:53`")
    if not chosen:
        raise BadInput("no services are built into this fswl")
    stamp_lines()  # it runs for days: each line says when
    runtime = make_runtime(obj.home)
    runtime.dns_workers = workers
    services = [build(runtime, name, listen) for name in chosen]
    click.echo(f"fswl: serving {obj.home.root}; Ctrl-C to stop", err=True)
    asyncio.run(run(services, runtime))
