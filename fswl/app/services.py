"""What `fswl serve` runs: the services as a table of factories, sharing one Runtime.

A factory takes (Runtime, listen or None) and returns a Service; the
extensions attach hooks to every Runtime, whichever services run:
verification on a miss, reputation quotas on an unlisted pair.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Callable

from fswl.app.home import Home
from fswl.dns.service import make_service as make_dns
from fswl.errors import BadInput, ServiceError
from fswl.policy.service import make_service as make_policy
from fswl.reputation.service import attach as attach_reputation
from fswl.serving import ANNOUNCE, Runtime, Service
from fswl.smtp.service import make_service as make_smtp
from fswl.verify.extension import attach as attach_verification
from fswl.web.service import make_service as make_web

log = logging.getLogger(__name__)

#: Service name -> factory, in the order they start.
REGISTRY: dict[str, Callable[[Runtime, str | None], Service]] = {
    "dns": make_dns,
    "policy": make_policy,
    "smtp": make_smtp,
    "web": make_web,
}

#: Called with every new Runtime, in this order.
EXTENSIONS: list[Callable[[Runtime], None]] = [attach_verification, attach_reputation]


def make_runtime(home: Home) -> Runtime:
    """The Runtime of one process: the wired store, with every extension attached."""
    runtime = Runtime(home, home.whitelist)
    for attach in EXTENSIONS:
        attach(runtime)
    return runtime


def build(runtime: Runtime, name: str, listen: str | None = None) -> Service:
    """Make the named service; ``listen`` overrides its configured address."""
    if name not in REGISTRY:
        known = ", ".join(REGISTRY) or "none"
        raise BadInput(f"no service named {name!r} (known: {known})")
    return REGISTRY[name](runtime, listen)


async def run(services: list[Service], runtime: Runtime, ready: asyncio.Event | None = None) -> None:
    """Start the services, run until SIGINT/SIGTERM, then stop them in reverse order."""
    started: list[Service] = []
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    runtime.seen.start()
    try:
        for service in services:
            try:
                await service.start()
            except OSError as exc:
                raise ServiceError(f"{service.name}: cannot listen: {exc.strerror or exc}") from exc
            started.append(service)
            log.log(ANNOUNCE, "%s", service.describe())
        if ready is not None:
            ready.set()
        await stop.wait()
    finally:
        for service in reversed(started):
            try:
                await service.stop()
            except Exception:
                log.exception("stopping %s failed", service.name)
        runtime.close()
