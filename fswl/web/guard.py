"""CSRF tokens bound to a cookie, per-client rate limits, and the client's address."""

from __future__ import annotations

import hmac
import ipaddress
import os
import time
from collections import OrderedDict, deque

from aiohttp import web

from fswl.verify.codes import derive

CSRF_COOKIE = "fswl_csrf"
CSRF_FIELD = "csrf"
WINDOW_SECONDS = 60.0
#: Clients whose recent requests are remembered; the oldest are forgotten first.
MAX_CLIENTS = 20000
#: IPv6 clients are limited per /64: one host usually holds a whole /64.
IPV6_CLIENT_PREFIX = 64


class Csrf:
    """A random cookie per browser; each form carries an HMAC of it (a double-submit token)."""

    def __init__(self, key: bytes) -> None:
        self.key = key

    def token(self, request: web.Request, response_cookies: dict[str, str]) -> str:
        """The token for this browser's forms; sets the cookie when it has none yet."""
        cookie = request.cookies.get(CSRF_COOKIE, "")
        if not _plausible(cookie):
            cookie = os.urandom(16).hex()
            response_cookies[CSRF_COOKIE] = cookie
        return self._for(cookie)

    def check(self, request: web.Request, form: dict[str, str]) -> bool:
        cookie = request.cookies.get(CSRF_COOKIE, "")
        return _plausible(cookie) and hmac.compare_digest(form.get(CSRF_FIELD, ""), self._for(cookie))

    def _for(self, cookie: str) -> str:
        return derive(self.key, "csrf", cookie).hex()[:32]


def set_cookies(response: web.StreamResponse, cookies: dict[str, str]) -> web.StreamResponse:
    for name, value in cookies.items():
        response.set_cookie(name, value, httponly=True, samesite="Strict", path="/")
    return response


def _plausible(cookie: str) -> bool:
    return len(cookie) == 32 and all(c in "0123456789abcdef" for c in cookie)


class RateLimit:
    """At most ``per_minute`` events per client in any minute (a sliding window), bounded memory."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self.clients: OrderedDict[str, deque[float]] = OrderedDict()

    def allow(self, client: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        recent = self.clients.pop(client, None) or deque()
        while recent and recent[0] <= now - WINDOW_SECONDS:
            recent.popleft()
        allowed = len(recent) < self.per_minute
        if allowed:
            recent.append(now)
        self.clients[client] = recent
        while len(self.clients) > MAX_CLIENTS:
            self.clients.popitem(last=False)
        return allowed


def client_key(request: web.Request, trust_forwarded_for: bool) -> str:
    """The client's address, as the rate limits count it (an IPv6 client by its /64)."""
    text = request.remote or ""
    if trust_forwarded_for and request.headers.get("X-Forwarded-For"):
        text = request.headers["X-Forwarded-For"].split(",")[-1].strip()
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return text
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/{IPV6_CLIENT_PREFIX}", strict=False))
    return str(address)
