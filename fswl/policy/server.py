"""PolicyServer: Postfix policy delegation over TCP or a unix socket, asyncio, pipelined requests."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import TYPE_CHECKING

from fswl.util.connections import ConnectionCap
from fswl.policy.protocol import MAX_REQUEST_BYTES, BadRequest, format_action, parse_request
from fswl.policy.rules import Decision, Rules

if TYPE_CHECKING:
    from fswl.serving import Runtime

log = logging.getLogger(__name__)
#: How `fswl verify stats` counts a VERP/tagged miss: as fswl.verify.screen names that refusal.
VERP_REFUSAL = "VERP or tagged address"

#: Postfix keeps policy connections open between messages; drop idle ones after this.
IDLE_SECONDS = 300.0
#: Connections the kernel queues for accept(): a burst of smtpd processes must not wait out SYN retries.
BACKLOG = 1024
#: The answer whenever fswl cannot decide: never block mail because of fswl.
FAIL_OPEN = "DUNNO"
#: The line that ends a request, as either kind of client ends its lines.
_EMPTY_LINES = (b"\n", b"\r\n")


class PolicyServer:
    """Answers policy requests from the runtime's index; fails open on anything unexpected."""

    def __init__(self, runtime: Runtime, rules: Rules, listen: tuple[str, int] | str) -> None:
        self.runtime = runtime
        self.rules = rules
        self.listen = listen
        self.server: asyncio.base_events.Server | None = None
        settings = rules.settings
        #: Held connections ([policy] connections, connections_per_client; unix sockets: the total only).
        self.cap = ConnectionCap("policy", settings.connections, settings.connections_per_client)

    async def start(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, lambda: self.runtime.index)
        self.cap.reserve_descriptors()
        serve = self.cap.wrap(self._serve)
        if isinstance(self.listen, str):
            if os.path.exists(self.listen):
                os.unlink(self.listen)  # a socket left by a crash
            self.server = await asyncio.start_unix_server(serve, self.listen, limit=MAX_REQUEST_BYTES,
                                                          backlog=BACKLOG)
            os.chmod(self.listen, 0o666)
        else:
            host, port = self.listen
            self.server = await asyncio.start_server(serve, host, port, limit=MAX_REQUEST_BYTES, backlog=BACKLOG)
            self.listen = (host, self.server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
        self.cap.close()

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

        Lines end with LF, as Postfix sends them, or CR LF, as a hand-written
        client may: the first line says which, and the rest is then read up
        to the empty line in one go. A read per line cost more than the
        lookup, and so did a wait_for (a task and a timer) per read: all
        reads of a request share one timeout scope.
        """
        try:
            async with asyncio.timeout(IDLE_SECONDS):
                first = await reader.readuntil(b"\n")
                if first in _EMPTY_LINES:
                    return [], True
                end = b"\r\n\r\n" if first.endswith(b"\r\n") else b"\n\n"
                # The empty line may come at once; one byte says so without splitting the terminator.
                byte = await reader.readexactly(1)
                if byte == b"\r":
                    byte += await reader.readexactly(1)
                if byte in _EMPTY_LINES:
                    return [first], True
                block = first + byte + await reader.readuntil(end)
        except asyncio.IncompleteReadError:
            return None, True  # EOF, also mid-request: Postfix went away
        except asyncio.LimitOverrunError:
            return [], False
        return block[:-len(end)].split(b"\n"), True  # parse_request drops each line's CR

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
