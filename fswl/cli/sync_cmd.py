"""fswl sync: a round with every (or one) peer, the serving end, the daemon."""

from __future__ import annotations

import logging
import signal
import threading
from contextlib import ExitStack
from typing import Callable

import click

from fswl.cli.progress import progress_counter

log = logging.getLogger("fswl.sync")


def register(cli: click.Group) -> None:
    cli.add_command(sync)


@click.command()
@click.argument("peer", required=False)
@click.option("--full", is_flag=True, help="Also reconcile the whole tree by digests (a new or restored node).")
@click.option("--rescan", is_flag=True, help="With --full: walk the whole tree, not trusting the digest index.")
@click.option("--send-access-list", is_flag=True,
              help="Send the entries seen in use since the last access list now, not at [sync] access_list_days.")
@click.option("--serve", is_flag=True, hidden=True, help="Be the remote end, over stdin/stdout (run by SSH).")
@click.option("--daemon", is_flag=True, help="Sync every [sync] interval seconds until stopped.")
@click.pass_obj
def sync(obj, peer: str | None, full: bool, rescan: bool, send_access_list: bool, serve: bool, daemon: bool) -> int:
    """Exchange batches with every peer (or PEER); exit 1 if any peer failed."""
    from fswl.cli.logs import stamp_lines
    from fswl.errors import FswlError
    from fswl.sync.node import Node
    from fswl.sync.rounds import run_daemon, serve_stdio, sync_round

    # Its lines are per connection noise, and its errors are said again, in words, by the round: -vv only.
    logging.getLogger("paramiko").setLevel(logging.DEBUG if log.isEnabledFor(logging.DEBUG) else logging.CRITICAL)
    node = Node(obj.home, serving=serve)
    if peer and not serve:
        node.peers.get(peer)  # a name that is no peer is bad input, not a failed round
    if serve:
        summary = serve_stdio(node)
        log.info("served %s", summary)
        return 0
    if not peer and not node.peers.names() and (send_access_list or not daemon):
        raise click.UsageError("no peers configured: add one with `fswl peers add NAME ssh://user@host:port/path`")
    if send_access_list:
        count = node.spool.send_access_list(node.signer)
        click.echo(f"access list: {count} entries seen in use since the last one", err=True)
    if daemon:
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        stamp_lines()  # it runs for days: each line says when
        click.echo(f"fswl sync: daemon of {node.name}, every {node.settings.interval:g} s", err=True)
        run_daemon(node, stop, [peer] if peer else None, report=_log_rounds)
        return 0
    counters = _Counters()
    try:
        results = sync_round(node, [peer] if peer else None, full=full or rescan, rescan=rescan, progress=counters)
    finally:
        counters.close()
    for _name, result in results:
        if not isinstance(result, FswlError):  # a failure was logged by the round, once
            click.echo(str(result))
    return 1 if any(isinstance(r, FswlError) for _, r in results) else 0


def _log_rounds(results) -> None:
    """The daemon's word on its rounds: those that carried something at info, idle ones at debug only."""
    from fswl.errors import FswlError

    for _name, result in results:
        if isinstance(result, FswlError):
            continue  # logged by the round, with the next try after it
        busy = result.sent or result.received or result.drained or result.reconciled != (0, 0)
        log.log(logging.INFO if busy else logging.DEBUG, "%s", result)


class _Counters:
    """A record counter per peer of a round (fswl.cli.progress: shown on a terminal only)."""

    def __init__(self) -> None:
        self._stack = ExitStack()

    def __call__(self, peer: str) -> Callable[[int], None]:
        self.close()  # the previous peer's line is done
        return self._stack.enter_context(progress_counter(f"sync with {peer}: records sent and applied"))

    def close(self) -> None:
        self._stack.close()
        self._stack = ExitStack()
