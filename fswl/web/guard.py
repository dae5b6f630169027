"""CSRF tokens bound to a cookie, per-client rate limits, and the client's address."""

from __future__ import annotations

import hmac
import ipaddress
import os
import time

from aiohttp import web

from fswl.verify.codes import derive

CSRF_COOKIE = "fswl_csrf"
CSRF_FIELD = "csrf"
WINDOW_SECONDS = 60.0
#: Clients whose recent requests are remembered; the oldest are forgotten first.
MAX_CLIENTS = 20000
#: IPv6 clients are limited per /64 (one host usually holds a whole /64) and per /48 (one site).
IPV6_CLIENT_PREFIXES = (64, 48)
#: A /48 may make this many times a single client's requests.
SITE_FACTOR = 4
#: The key that new clients share once MAX_CLIENTS are counted in a window.
OVERFLOW = "overflow"
#: Random bytes in the CSRF cookie.
COOKIE_BYTES = 16


class Csrf:
    """A random cookie per browser; each form carries an HMAC of it (a double-submit token)."""

    def __init__(self, key: bytes) -> None:
        self.key = key

    def token(self, request: web.Request, response_cookies: dict[str, str]) -> str:
        """The token for this browser's forms; sets the cookie when it has none yet."""
        cookie = request.cookies.get(CSRF_COOKIE, "")
        if not _plausible(cookie):
            cookie = os.urandom(COOKIE_BYTES).hex()
            response_cookies[CSRF_COOKIE] = cookie
        return self._for(cookie)

    def check(self, request: web.Request, form: dict[str, str]) -> bool:
        cookie = request.cookies.get(CSRF_COOKIE, "")
        sent = form.get(CSRF_FIELD, "").encode("utf-8", "replace")  # bytes: compare_digest refuses non-ASCII str
        return _plausible(cookie) and hmac.compare_digest(sent, self._for(cookie).encode())

    def _for(self, cookie: str) -> str:
        return derive(self.key, "csrf", cookie).hex()[:32]


def set_cookies(response: web.StreamResponse, cookies: dict[str, str]) -> web.StreamResponse:
    for name, value in cookies.items():
        response.set_cookie(name, value, httponly=True, samesite="Strict", path="/")
    return response


def _plausible(cookie: str) -> bool:
    return len(cookie) == 2 * COOKIE_BYTES and all(c in "0123456789abcdef" for c in cookie)


class RateLimit:
    """At most ``per_minute`` events per key in each minute (fixed windows): one small int per key.

    Memory is bounded: past MAX_CLIENTS keys in one window, new keys share
    one overflow counter (a flood from many addresses slows only itself).
    """

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self.window = -1
        self.counts: dict[str, int] = {}

    def allow(self, key: str, now: float | None = None, factor: int = 1) -> bool:
        now = time.monotonic() if now is None else now
        window = int(now // WINDOW_SECONDS)
        if window != self.window:
            self.window, self.counts = window, {}
        if key not in self.counts and len(self.counts) >= MAX_CLIENTS:
            key = OVERFLOW
        count = self.counts.get(key, 0)
        if count >= self.per_minute * factor:
            return False
        self.counts[key] = count + 1
        return True


def client_keys(request: web.Request, trust_forwarded_for: bool) -> list[str]:
    """The buckets a request counts in: an IPv4 client by its address, an IPv6 client by its /64 and its /48."""
    text = request.remote or ""
    if trust_forwarded_for and request.headers.get("X-Forwarded-For"):
        text = request.headers["X-Forwarded-For"].split(",")[-1].strip()
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return [text]
    if address.version == 6:
        return [str(ipaddress.ip_network(f"{address}/{n}", strict=False)) for n in IPV6_CLIENT_PREFIXES]
    return [str(address)]
