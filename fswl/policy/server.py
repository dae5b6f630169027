"""PolicyServer: Postfix policy delegation over TCP or a unix socket, asyncio, pipelined requests."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import TYPE_CHECKING

from fswl.policy.protocol import MAX_REQUEST_BYTES, BadRequest, format_action, parse_request
from fswl.policy.rules import Decision, Rules

if TYPE_CHECKING:
    from fswl.services import Runtime

log = logging.getLogger(__name__)
#: How `fswl verify stats` counts a VERP/tagged miss: as fswl.verify.screen names that refusal.
VERP_REFUSAL = "VERP or tagged address"

#: Postfix keeps policy connections open between messages; drop idle ones after this.
IDLE_SECONDS = 300.0
#: The answer whenever fswl cannot decide: never block mail because of fswl.
FAIL_OPEN = "DUNNO"


class PolicyServer:
    """Answers policy requests from the runtime's index; fails open on anything unexpected."""

    def __init__(self, runtime: Runtime, rules: Rules, listen: tuple[str, int] | str) -> None:
        self.runtime = runtime
        self.rules = rules
        self.listen = listen
        self.server: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, lambda: self.runtime.index)
        if isinstance(self.listen, str):
            if os.path.exists(self.listen):
                os.unlink(self.listen)  # a socket left by a crash
            self.server = await asyncio.start_unix_server(self._serve, self.listen, limit=MAX_REQUEST_BYTES)
            os.chmod(self.listen, 0o666)
        else:
            host, port = self.listen
            self.server = await asyncio.start_server(self._serve, host, port, limit=MAX_REQUEST_BYTES)
            self.listen = (host, self.server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                lines, complete = await self._read_request(reader)
                if lines is None:
                    break
                writer.write(format_action(await self._answer(lines) if complete else _refuse_oversized()))
                await writer.drain()
                if not complete:
                    break
        except (ConnectionError, asyncio.TimeoutError):
            pass
        finally:
            writer.close()

    async def _read_request(self, reader: asyncio.StreamReader) -> tuple[list[bytes] | None, bool]:
        """One request's lines; (None, _) at end of stream; ([], False) when over the size limit.

        One read per request, under one timeout scope: a wait_for per line
        (a task and a timer each) cost more than the whole lookup.
        """
        try:
            async with asyncio.timeout(IDLE_SECONDS):
                block = await reader.readuntil(b"\n\n")
        except asyncio.IncompleteReadError:
            return None, True  # EOF, also mid-request: Postfix went away
        except asyncio.LimitOverrunError:
            return [], False
        return block[:-2].split(b"\n"), True

    async def _answer(self, lines: list[bytes]) -> str:
        try:
            request = parse_request(lines)
        except BadRequest as exc:
            log.warning("policy: %s; answering %s", exc, FAIL_OPEN)
            return FAIL_OPEN
        try:
            decision = await self._decide(request)
        except Exception:
            log.exception("policy: deciding failed; answering %s", FAIL_OPEN)
            return FAIL_OPEN
        log.info("action=%s, reason=%s, client_name=%s, client_address=%s, sender=%s, recipient=%s",
                 decision.action.split(" ", 1)[0] or FAIL_OPEN, decision.reason, request.get("client_name", ""),
                 request.get("client_address", ""), request.get("sender", ""), request.get("recipient", ""))
        return decision.action or FAIL_OPEN

    async def _decide(self, request: dict[str, str]) -> Decision:
        screened = self.rules.screen(request)
        if screened.action:
            return screened
        assert screened.address is not None
        match = await self.runtime.alookup(screened.sender, screened.address)
        if match is not None:
            self.runtime.seen.record(match.path)
            return self.rules.after_lookup(screened, match, admitted=False)
        admitted = self.runtime.admit_unlisted(screened.sender, screened.address)
        decision = self.rules.after_lookup(screened, None, admitted)
        if decision.challenge:
            self.runtime.on_miss(decision.sender, screened.address)
        elif screened.reason == "verp" and not admitted:  # its list source is not listed: count it
            self.runtime.on_unchallenged(VERP_REFUSAL)
        return decision


def _refuse_oversized() -> str:
    log.warning("policy: a request over %d bytes; answering %s and closing", MAX_REQUEST_BYTES, FAIL_OPEN)
    return FAIL_OPEN
