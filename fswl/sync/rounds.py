"""Rounds of sync: one with every peer, the serving end, and the daemon loop."""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Callable

from fswl.errors import FswlError
from fswl.sync.node import Node
from fswl.sync.protocol import Session, Summary
from fswl.sync.wire import Wire

log = logging.getLogger(__name__)


def sync_round(node: Node, names: list[str] | None = None, full: bool = False, rescan: bool = False
               ) -> list[tuple[str, Summary | FswlError]]:
    """One conversation with each peer (or each named one); an unreachable peer does not stop the others."""
    from fswl.sync.transport import connect  # paramiko: only the connecting side needs it

    settings = node.settings
    peers = node.peers.all() if not names else [node.peers.get(n) for n in names]
    results: list[tuple[str, Summary | FswlError]] = []
    for peer in peers:
        try:
            with connect(peer, ["sync", "--serve"], settings.timeout, settings.keepalive) as wire:
                summary = Session(node, wire, client=True, expect=peer.name).run(full=full, rescan=rescan)
            summary.drained += node.drain()  # what the server side learned reaches this node's spool too
            results.append((peer.name, summary))
        except FswlError as exc:
            log.warning("sync with %s failed: %s", peer.name, exc)
            results.append((peer.name, exc))
    return results


def serve_stdio(node: Node) -> Summary:
    """The remote end: converse over this process's stdin and stdout."""
    wire = Wire(sys.stdin.buffer, sys.stdout.buffer, "client")
    try:
        return Session(node, wire, client=False).run()
    finally:
        try:
            wire.flush()
        except OSError:
            pass


def run_daemon(node: Node, stop: threading.Event, names: list[str] | None = None,
               report: Callable[[list[tuple[str, Summary | FswlError]]], None] | None = None) -> None:
    """Sync every ``interval`` seconds until ``stop``; after failed rounds wait longer, up to ``max_backoff``."""
    settings = node.settings
    failures = 0
    while not stop.is_set():
        started = time.monotonic()
        try:
            results = sync_round(node, names)
        except FswlError as exc:  # bad configuration: say so and keep trying, it may be fixed
            log.error("sync round failed: %s", exc)
            results = [("*", exc)]
        if report:
            report(results)
        failed = any(isinstance(r, FswlError) for _, r in results)
        failures = failures + 1 if failed else 0
        wait = settings.interval * (2 ** min(failures, 16)) if failures else settings.interval
        wait = min(wait, max(settings.max_backoff, settings.interval)) - (time.monotonic() - started)
        stop.wait(max(wait, 0.0))

