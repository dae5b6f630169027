"""`fswl serve web`: the aiohttp site on the runtime's loop."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from aiohttp import web

from fswl.util.hostport import parse_listen
from fswl.verify.extension import verifier_for
from fswl.web.app import make_app
from fswl.web.settings import WebSettings
from fswl.serving.factory import service_factory

if TYPE_CHECKING:
    from fswl.serving import Runtime

log = logging.getLogger(__name__)


class WebService:
    name = "web"

    def __init__(self, runtime: Runtime, settings: WebSettings, listen: str) -> None:
        self.host, self.port = parse_listen(listen)
        self.settings = settings
        self.app = make_app(verifier_for(runtime), settings)
        self.runner: web.AppRunner | None = None

    async def start(self) -> None:
        if self.settings.test_captcha_answer:
            log.warning("web: [web] test_captcha_answer is set: the CAPTCHA stops nobody; tests only")
        self.runner = web.AppRunner(self.app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.host, self.port)
        await site.start()
        self.port = self.runner.addresses[0][1]

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    def describe(self) -> str:
        return f"web: pages for {self.settings.base_url} on {self.host}:{self.port}"


make_service = service_factory("web", WebSettings, WebService)
