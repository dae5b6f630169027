"""`fswl serve smtp`: aiosmtpd on the runtime's loop, confirming codes by reply."""

from __future__ import annotations

import asyncio
import ssl
from typing import TYPE_CHECKING, Any

from aiosmtpd.smtp import SMTP

from fswl.util.hostport import parse_listen
from fswl.smtp.handler import ConfirmHandler
from fswl.smtp.settings import SmtpSettings
from fswl.verify.extension import verifier_for
from fswl.serving.factory import service_factory

if TYPE_CHECKING:
    from fswl.serving import Runtime

#: SMTP commands one connection may send (aiosmtpd's command_call_limit).
COMMAND_LIMIT = 100
IDLE_SECONDS = 120


class LimitedSMTP(SMTP):
    """aiosmtpd's SMTP that answers 421 and closes when its service already has max_connections open."""

    def __init__(self, service: SmtpService, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.service = service
        self.counted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.service.connections >= self.service.settings.max_connections:
            transport.write(b"421 4.3.2 too many connections; try again later\r\n")  # type: ignore[attr-defined]
            transport.close()
            return
        self.service.connections += 1
        self.counted = True
        super().connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.counted:
            self.counted = False
            self.service.connections -= 1
            super().connection_lost(exc)


class SmtpService:
    name = "smtp"

    def __init__(self, runtime: Runtime, settings: SmtpSettings, listen: str) -> None:
        self.host, self.port = parse_listen(listen)
        self.settings = settings
        verifier = verifier_for(runtime)
        self.handler = ConfirmHandler(verifier, settings, runtime.home.root / settings.postmaster_maildir)
        self.hostname = settings.hostname or verifier.zone
        self.server: asyncio.base_events.Server | None = None
        self.connections = 0

    async def start(self) -> None:
        tls = None
        if self.settings.tls_cert:
            tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            tls.load_cert_chain(self.settings.tls_cert, self.settings.tls_key or None)

        def factory() -> SMTP:
            return LimitedSMTP(self, self.handler, data_size_limit=self.settings.max_message_bytes, hostname=self.hostname,
                        ident="fswl confirmations", tls_context=tls, timeout=IDLE_SECONDS,
                        command_call_limit=COMMAND_LIMIT)

        self.server = await asyncio.get_running_loop().create_server(factory, self.host, self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    def describe(self) -> str:
        return f"smtp: confirmations for confirm-<code>@{self.handler.zone} on {self.host}:{self.port}"


make_service = service_factory("smtp", SmtpSettings, SmtpService)
