"""`fswl serve policy`: the policy server as a service of the shared runtime."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fswl.policy.rules import Rules
from fswl.policy.server import PolicyServer
from fswl.policy.settings import PolicySettings
from fswl.util.hostport import parse_listen
from fswl.serving.factory import service_factory

if TYPE_CHECKING:
    from fswl.serving import Runtime

UNIX_PREFIX = "unix:"


class PolicyService:
    name = "policy"

    def __init__(self, runtime: Runtime, settings: PolicySettings, listen: str) -> None:
        target = listen[len(UNIX_PREFIX):] if listen.startswith(UNIX_PREFIX) else parse_listen(listen)
        self.server = PolicyServer(runtime, Rules(settings, runtime.base_url), target)

    async def start(self) -> None:
        await self.server.start()

    async def stop(self) -> None:
        await self.server.stop()

    def describe(self) -> str:
        listen = self.server.listen
        where = f"unix:{listen}" if isinstance(listen, str) else f"{listen[0]}:{listen[1]}"
        return f"policy: Postfix policy delegation on {where}"


make_service = service_factory("policy", PolicySettings, PolicyService)
