"""`fswl serve dns`: the responder as a service of the shared runtime."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from fswl.util.connections import ConnectionCap
from fswl.dns import workers
from fswl.dns.resolver import WhitelistResolver
from fswl.dns.server import DnsServer
from fswl.dns.settings import DnsSettings
from fswl.util.hostport import parse_listen
from fswl.serving.factory import service_factory

if TYPE_CHECKING:
    from fswl.serving import Runtime


class DnsService:
    """Answers the zone from the runtime's shared index."""

    name = "dns"

    def __init__(self, runtime: Runtime, settings: DnsSettings, listen: str) -> None:
        self.runtime = runtime
        self.settings = settings
        self.host, self.port = parse_listen(listen)
        self.server: DnsServer | None = None
        #: Processes sharing the port; set by --workers or [dns] workers.
        self.workers = 1 if workers.is_worker() else max(1, getattr(runtime, "dns_workers", None) or settings.workers)
        self._pool: workers.WorkerPool | None = None
        self._supervisor: asyncio.Task[None] | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        index = await loop.run_in_executor(None, lambda: self.runtime.index)
        resolver = WhitelistResolver(index, self.settings, self.runtime.base_url,
                                     record_hit=self.runtime.seen.record, on_miss=self.runtime.on_miss)
        reuse_port = self.workers > 1 or workers.is_worker()
        transfer = None
        if self.settings.axfr_allow:
            from fswl.dns.transfer import ZoneTransfer

            transfer = ZoneTransfer(self.runtime.home.root, self.settings, self.runtime.base_url, lambda: index.serial)
        cap = ConnectionCap("dns", self.settings.tcp_connections, self.settings.tcp_connections_per_client)
        self.server = DnsServer(resolver, self.host, self.port, self.settings.rrl_per_second, reuse_port=reuse_port,
                                transfer=transfer, reply_cache=self.settings.reply_cache, tcp_cap=cap,
                                tcp_idle_seconds=self.settings.tcp_idle_seconds)
        await self.server.start()
        self.port = self.server.port
        if self.workers > 1:
            home, host, port = self.runtime.home.root, self.host, self.port
            self._pool = workers.WorkerPool(lambda: workers.spawn(home, host, port), self.workers - 1)
            self._pool.start()
            self._supervisor = loop.create_task(self._pool.supervise(), name="dns workers")

    async def stop(self) -> None:
        if self._pool is not None:
            # close() first: from here on no replacement starts, so none
            # outlives the stop (check() runs on this loop, never in between).
            running = self._pool.close()
            if self._supervisor is not None:
                self._supervisor.cancel()
                await asyncio.gather(self._supervisor, return_exceptions=True)
            await asyncio.get_running_loop().run_in_executor(None, workers.stop, running)
        if self.server is not None:
            await self.server.stop()

    def describe(self) -> str:
        extra = ""
        if self._pool is not None:
            alive = 1 + self._pool.alive()
            extra = f", {self.workers} processes" if alive == self.workers else f", {alive} of {self.workers} processes"
        role = "worker " if workers.is_worker() else ""
        return f"dns: {role}zone {self.settings.zone} on {self.host}:{self.port} (udp+tcp{extra})"


make_service = service_factory("dns", DnsSettings, DnsService)
