"""`fswl serve dns`: the responder as a service of the shared runtime."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from fswl.dns.resolver import WhitelistResolver
from fswl.dns.server import DnsServer
from fswl.dns.settings import DnsSettings
from fswl.services import parse_listen

if TYPE_CHECKING:
    from fswl.services import Runtime


class DnsService:
    """Answers the zone from the runtime's shared index."""

    name = "dns"

    def __init__(self, runtime: Runtime, settings: DnsSettings, listen: str) -> None:
        self.runtime = runtime
        self.settings = settings
        self.host, self.port = parse_listen(listen)
        self.server: DnsServer | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        index = await loop.run_in_executor(None, lambda: self.runtime.index)
        resolver = WhitelistResolver(index, self.settings, self.runtime.base_url,
                                     record_hit=self.runtime.seen.record, on_miss=self.runtime.on_miss)
        self.server = DnsServer(resolver, self.host, self.port, self.settings.rrl_per_second)
        await self.server.start()
        self.port = self.server.port

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()

    def describe(self) -> str:
        return f"dns: zone {self.settings.zone} on {self.host}:{self.port} (udp+tcp)"


def make_service(runtime: Runtime, listen: str | None) -> DnsService:
    settings = runtime.home.settings("dns", DnsSettings)
    return DnsService(runtime, settings, listen or settings.listen)
