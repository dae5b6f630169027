"""fswl sync: a round with every (or one) peer, the serving end, the daemon."""

from __future__ import annotations

import logging
import signal
import threading

import click


def register(cli: click.Group) -> None:
    cli.add_command(sync)


@click.command()
@click.argument("peer", required=False)
@click.option("--full", is_flag=True, help="Also reconcile the whole tree by digests (a new or restored node).")
@click.option("--rescan", is_flag=True, help="With --full: walk the whole tree, not trusting the digest index.")
@click.option("--serve", is_flag=True, hidden=True, help="Be the remote end, over stdin/stdout (run by SSH).")
@click.option("--daemon", is_flag=True, help="Sync every [sync] interval seconds until stopped.")
@click.pass_obj
def sync(obj, peer: str | None, full: bool, rescan: bool, serve: bool, daemon: bool) -> int:
    """Exchange batches with every peer (or PEER); exit 1 if any peer failed."""
    from fswl.errors import FswlError
    from fswl.sync.node import Node
    from fswl.sync.rounds import run_daemon, serve_stdio, sync_round

    logging.getLogger("paramiko").setLevel(logging.WARNING)  # its INFO lines are per connection noise
    node = Node(obj.home, serving=serve)
    if peer and not serve:
        node.peers.get(peer)  # a name that is no peer is bad input, not a failed round
    if serve:
        summary = serve_stdio(node)
        logging.getLogger("fswl.sync").info("served %s", summary)
        return 0
    if daemon:
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        click.echo(f"fswl sync: daemon of {node.name}, every {node.settings.interval:g} s", err=True)
        run_daemon(node, stop, [peer] if peer else None, report=_print)
        return 0
    if not peer and not node.peers.names():
        raise click.UsageError("no peers configured: add one with `fswl peers add NAME ssh://user@host:port/path`")
    results = sync_round(node, [peer] if peer else None, full=full or rescan, rescan=rescan)
    _print(results)
    return 1 if any(isinstance(r, FswlError) for _, r in results) else 0


def _print(results) -> None:
    from fswl.errors import FswlError

    for name, result in results:
        if isinstance(result, FswlError):
            click.echo(f"fswl: sync with {name} failed: {result}", err=True)
        else:
            click.echo(str(result))
