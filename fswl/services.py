"""What `fswl serve` runs: named services sharing one store, hit recorder and index."""

from __future__ import annotations

import asyncio
import importlib
import ipaddress
import logging
import signal
from functools import cached_property
from typing import TYPE_CHECKING, Callable, Protocol

from fswl.errors import BadInput, ServiceError
from fswl.home import Home
from fswl.names import IPAddress
from fswl.seen import SeenRecorder
from fswl.store import Match

if TYPE_CHECKING:
    from fswl.index import Index

log = logging.getLogger(__name__)
#: The level of "what listens where": shown by default, and not a warning.
ANNOUNCE = logging.WARNING - 1
logging.addLevelName(ANNOUNCE, "ANNOUNCE")

#: Service name -> "module:factory"; a factory takes (Runtime, listen or None)
#: and returns a Service.  Listed in the order they start.
REGISTRY: dict[str, str] = {
    "dns": "fswl.dns.service:make_service",
    "policy": "fswl.policy.service:make_service",
    "smtp": "fswl.smtp.service:make_service",
    "web": "fswl.web.service:make_service",
}

#: Parts that attach hooks to every Runtime, whichever services run
#: ("module:function", called with the Runtime): verification on a miss,
#: reputation quotas on an unlisted pair.
EXTENSIONS: list[str] = [
    "fswl.verify.extension:attach",
    "fswl.reputation.service:attach",
]


class Service(Protocol):
    """One listening part of fswl."""

    name: str

    async def start(self) -> None:
        """Bind and begin answering; raise ServiceError if that is impossible."""

    async def stop(self) -> None:
        """Stop answering and release the sockets."""

    def describe(self) -> str:
        """One line for the operator: what listens where."""


class Runtime:
    """What the services of one process share."""

    def __init__(self, home: Home) -> None:
        self.home = home
        self.whitelist = home.whitelist
        self.seen = SeenRecorder(self.whitelist)
        #: Called as hook(sender, address) when a lookup that may introduce a
        #: sender misses (verification registers here). Must not block.
        self.miss_hooks: list[Callable[[str, IPAddress], None]] = []
        #: Called as hook(sender, address) -> bool for an unlisted pair; any
        #: True admits this one message (reputation throttling registers here).
        self.admit_hooks: list[Callable[[str, IPAddress], bool]] = []
        #: Called as hook(reason) for a miss never challenged by design (a VERP sender at the
        #: policy service), so that `fswl verify stats` counts it. Must not block.
        self.unchallenged_hooks: list[Callable[[str], None]] = []
        #: Called with no arguments by close(), last first (extensions' cleanup).
        self.close_hooks: list[Callable[[], None]] = []
        #: `fswl serve --workers N`: DNS processes sharing the port (None: [dns] workers).
        self.dns_workers: int | None = None
        for spec in EXTENSIONS:
            module, _, function = spec.partition(":")
            getattr(importlib.import_module(module), function)(self)

    def on_miss(self, sender: str, address: IPAddress) -> None:
        """A lookup missed; hand it to the miss hooks. Never raises."""
        for hook in self.miss_hooks:
            try:
                hook(sender, address)
            except Exception:
                log.exception("miss hook failed for %s via %s", sender, address)

    def on_unchallenged(self, reason: str) -> None:
        """A miss that is not challenged, and why; hand it to the hooks. Never raises."""
        for hook in self.unchallenged_hooks:
            try:
                hook(reason)
            except Exception:
                log.exception("unchallenged hook failed (%s)", reason)

    def admit_unlisted(self, sender: str, address: IPAddress) -> bool:
        """Whether an unlisted (sender, relay) may pass this once (a quota). Never raises."""
        for hook in self.admit_hooks:
            try:
                if hook(sender, address):
                    return True
            except Exception:
                log.exception("admit hook failed for %s via %s", sender, address)
        return False

    @cached_property
    def index(self) -> Index:
        """The in-memory index every service answers from, loaded and watching on first use."""
        from fswl.index import Index

        store = self.home.store_settings
        index = Index(self.whitelist, self.home.changelog_path, watch=store.watch_tree,
                      snapshot_path=self.home.root / "cache" / "index.snapshot", sweep_seconds=store.sweep_seconds)
        index.start()
        return index

    @property
    def base_url(self) -> str:
        """Where the web pages are (the URL in reject texts, TXT records and mail)."""
        return self.home.base_url

    def lookup(self, sender: str, address: str | IPAddress) -> Match | None:
        """Whitelist.lookup's answer, from the shared in-memory index (no disk access)."""
        return self.index.lookup(sender, address)

    async def alookup(self, sender: str, address: str | IPAddress) -> Match | None:
        """A lookup that never blocks the event loop (the index is memory only)."""
        if "index" not in self.__dict__:
            await asyncio.get_running_loop().run_in_executor(None, lambda: self.index)
        return self.lookup(sender, address)

    def close(self) -> None:
        """Stop what the services shared: extensions, the index watcher, the hit recorder."""
        for hook in reversed(self.close_hooks):
            try:
                hook()
            except Exception:
                log.exception("closing an extension failed")
        index = self.__dict__.pop("index", None)
        if index is not None:
            index.stop()
        self.seen.stop()


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT`` -> (host, port)."""
    host, sep, port = text.strip().rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ipaddress.ip_address(host)
        number = int(port)
        if not sep or not 0 <= number <= 65535:
            raise ValueError(port)
    except ValueError:
        raise BadInput(f"not a listen address: {text!r}; use HOST:PORT, e.g. 127.0.0.1:5353 or [::1]:5353") from None
    return host, number


def build(runtime: Runtime, name: str, listen: str | None = None) -> Service:
    """Make the named service; ``listen`` overrides its configured address."""
    if name not in REGISTRY:
        known = ", ".join(REGISTRY) or "none"
        raise BadInput(f"no service named {name!r} (known: {known})")
    module, _, factory = REGISTRY[name].partition(":")
    return getattr(importlib.import_module(module), factory)(runtime, listen)


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
