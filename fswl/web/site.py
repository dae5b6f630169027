"""What every page handler shares (the Site), and the pages that refuse a code or a request."""

from __future__ import annotations

from typing import Callable

from aiohttp import web

from fswl.errors import BadCode, CodeGone
from fswl.verify.verifier import Verifier
from fswl.web import pages
from fswl.web.captchas import Captchas
from fswl.web.guard import Csrf, RateLimit, set_cookies
from fswl.web.settings import WebSettings

#: Form bodies larger than this are refused (a form here is a few fields).
MAX_FORM_BYTES = 8192
#: The longest mail address (RFC 5321 path) and the longest IP text (an IPv4-mapped IPv6) a page accepts.
MAX_ADDRESS_CHARS = 254
MAX_IP_CHARS = 45


class Site:
    """What every page handler shares."""

    def __init__(self, verifier: Verifier, settings: WebSettings) -> None:
        self.verifier = verifier
        self.settings = settings
        self.csrf = Csrf(verifier.key)
        self.pages_limit = RateLimit(settings.pages_per_minute)
        self.posts_limit = RateLimit(settings.posts_per_minute)
        self.costly_limit = RateLimit(settings.costly_per_minute)
        self.captchas = Captchas(verifier.key, verifier.caps, settings.captcha_length, settings.captcha_seconds,
                                 settings.test_captcha_answer)

    def show(self, request: web.Request, title: str, build: Callable[[str], str], status: int = 200) -> web.StreamResponse:
        """A page with forms: ``build(csrf_token)`` makes its body; sets the CSRF cookie if needed."""
        cookies: dict[str, str] = {}
        token = self.csrf.token(request, cookies)
        return set_cookies(pages.page(title, build(token), status), cookies)

    async def posted(self, request: web.Request) -> dict[str, str] | web.StreamResponse:
        """The form of a POST, or the page that refuses it (CSRF, size)."""
        if request.content_length is not None and request.content_length > MAX_FORM_BYTES:
            return pages.problem("Form too large", "That form is larger than any form here.", 413)
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        if not self.csrf.check(request, form):
            return pages.problem("Form expired", "This form did not come with a valid token (cookies may be off).", 403,
                                 "Enable cookies for this site, reload the page and send the form again.")
        return form


def bad_code(exc: BadCode) -> web.StreamResponse:
    """The page for a code that never worked (404), or no longer works (410: expired, already used)."""
    status = 410 if isinstance(exc, CodeGone) else 404
    return pages.problem("This link does not work", _sentence(str(exc)), status,
                         "If your mail is still being deferred, a new message comes with the next retry.")


def not_done(reason: str) -> web.StreamResponse:
    """The page for a failure on our side (the store cannot be written, the SMS gateway fails): nothing changed."""
    return pages.problem("Not done", _sentence(reason), 503, "Please try again in a few minutes.")


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + "."
