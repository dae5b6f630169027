"""A cookie-keeping HTTP client for the web pages, and what tests pick out of pages and mail."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from email.message import EmailMessage
from http.cookiejar import CookieJar
from urllib.parse import urlencode


class Browser:
    """urllib with cookies: GET a page, POST its form back."""

    def __init__(self) -> None:
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))

    def get(self, url: str) -> tuple[int, str]:
        return self._open(urllib.request.Request(url))

    def post(self, url: str, fields: dict[str, str]) -> tuple[int, str]:
        return self._open(urllib.request.Request(url, data=urlencode(fields).encode(), method="POST"))

    def _open(self, request: urllib.request.Request) -> tuple[int, str]:
        try:
            with self.opener.open(request, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf" value="([0-9a-f]+)"', page).group(1)


def link(message: EmailMessage, kind: str) -> str:
    return re.search(rf"(http://\S+/{kind}/[a-z2-7]+)", message.get_content()).group(1)


def open_code_page(message: EmailMessage, action: str) -> tuple[Browser, str, str]:
    """A fresh browser on the page of a mail's ``action`` link (confirm, forged, list): (browser, url, page); asserts 200."""
    browser = Browser()
    url = link(message, action)
    status, page = browser.get(url)
    assert status == 200, page
    return browser, url, page
