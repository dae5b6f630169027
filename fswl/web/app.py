"""The pages: a code's confirm / forgery / mailing-list pages, and /why. GET shows, POST acts."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from html import escape
from typing import Awaitable, Callable
from urllib.parse import urlencode

from aiohttp import web

from fswl.errors import BadCode, VerifyRefused
from fswl.verify.pending import Record
from fswl.verify.verifier import IPV6, Verifier
from fswl.web import ipv6, pages
from fswl.web.guard import OVERFLOW, SITE_FACTOR, client_keys
from fswl.web.settings import WebSettings
from fswl.web.site import MAX_ADDRESS_CHARS, MAX_FORM_BYTES, MAX_IP_CHARS, Site, bad_code, not_done

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def rate_limits(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Per client (an IPv6 client per /64, and its /48 at SITE_FACTOR times), and CAPTCHA images for all together."""
    site: Site = request.app["site"]
    keys = client_keys(request, site.settings.trust_forwarded_for)
    image = request.path.startswith("/captcha/")
    costly = request.method == "POST" or image
    allowed = all(site.pages_limit.allow(key, factor=SITE_FACTOR if i else 1) for i, key in enumerate(keys))
    if allowed and costly:
        allowed = all(site.posts_limit.allow(key, factor=SITE_FACTOR if i else 1) for i, key in enumerate(keys))
    if allowed and image:
        allowed = site.costly_limit.allow(OVERFLOW)
    if not allowed:
        return pages.problem("Too many requests", "Too many requests from your address in the last minute.", 429,
                             "Wait a minute, then try again.")
    return await handler(request)


def make_app(verifier: Verifier, settings: WebSettings) -> web.Application:
    app = web.Application(middlewares=[rate_limits], client_max_size=MAX_FORM_BYTES)
    app["site"] = Site(verifier, settings)
    app.router.add_get("/", index)
    app.router.add_get("/why", why)
    for action in ACTIONS:
        app.router.add_get(f"/{action}/{{code}}", show_code)
        app.router.add_post(f"/{action}/{{code}}", act_on_code)
    ipv6.add_routes(app)
    return app


async def index(request: web.Request) -> web.StreamResponse:
    site: Site = request.app["site"]
    body = (f"<p>This server keeps a whitelist of which mail servers each sender uses. Mail from a sender "
            f"through a server not yet listed is deferred once, and the sender is asked to confirm by mail.</p>"
            f"<ul><li><a href=\"/ipv6\">List an IPv6 mail server</a> (self-service)</li>"
            f"<li>Questions: <a href=\"mailto:postmaster@{escape(site.verifier.zone)}\">postmaster@{escape(site.verifier.zone)}</a></li></ul>")
    return pages.page("Sender whitelist", body)


async def why(request: web.Request) -> web.StreamResponse:
    """What the policy service's 451 links to: why the mail was deferred and what happens next."""
    sender = request.query.get("sender", "")[:MAX_ADDRESS_CHARS]
    ip = request.query.get("ip", "")[:MAX_IP_CHARS]
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        address = None
    who = f"<code>{escape(sender)}</code>" if sender else "this sender"
    via = f"<code>{escape(ip)}</code>" if address else "this mail server"
    body = (f"<p>Mail from {who} through {via} was deferred with a temporary error (451), because this "
            f"pair is not yet in the whitelist. Nothing is lost: the sending server keeps the message and "
            f"tries again by itself.</p>"
            f"<h2>What happens next</h2><p>A short message asking for confirmation is usually sent to the "
            f"sender's address (at most one per sender and server a day, never to addresses that look "
            f"automatic or forged). Once confirmed, the retry is accepted, here and at every site using "
            f"this whitelist.</p>"
            f"<h2>Mailing lists</h2><p>A list server that sends with per-recipient bounce addresses (VERP) "
            f"is listed for its whole domain (<code>*@lists.example.org</code>); its postmaster can ask at "
            f"<a href=\"mailto:postmaster@{escape(request.app['site'].verifier.zone)}\">postmaster@"
            f"{escape(request.app['site'].verifier.zone)}</a>.</p>")
    if address is not None and address.version == 6:
        link = escape("/ipv6?" + urlencode([(k, v) for k, v in (("ip", ip), ("sender", sender)) if v]), quote=True)
        body += (f"<h2>IPv6 servers</h2><p>An IPv6 server can be listed at once with the "
                 f"<a href=\"{link}\">self-service form</a>.</p>")
    return pages.page("Why was this mail deferred?", body)


# -- a code's pages --------------------------------------------------------


def _confirm_text(record: Record, days: float) -> str:
    what = "the IPv6 network" if record.purpose == IPV6 else "the mail server"
    return (f"<p>Confirm that <code>{escape(record.sender)}</code> sends mail through {what} "
            f"<code>{escape(record.relay)}</code>. It is then listed at every site using this whitelist.</p>")


def _forged_text(record: Record, days: float) -> str:
    return (f"<p>If you did not send mail from <code>{escape(record.sender)}</code> through "
            f"<code>{escape(record.relay)}</code>, someone used your address. Report it, and this whitelist sends "
            f"no more messages to your address for {days:g} days.</p>")


def _list_text(record: Record, days: float) -> str:
    return (f"<p>The server <code>{escape(record.relay)}</code> sends for many people. Its postmaster can list it "
            f"for all its senders at once:</p><ol>"
            f"<li>Use VERP or a fixed bounce address at one domain, e.g. <code>list-bounces+user=example.com@lists.example.org</code>.</li>"
            f"<li>Ask for <code>*@lists.example.org</code> to be listed for the server's addresses, by mail to "
            f"postmaster of this whitelist, or with <code>fswl add '*@lists.example.org' {escape(record.relay)}</code> "
            f"on a node you run.</li>"
            f"<li>Tagged and VERP senders are never challenged one by one.</li></ol>"
            f"<p>Press the button to record that this server is a list server; the postmaster of this whitelist sees it.</p>")


ACTIONS: dict[str, tuple[str, Callable[[Record, float], str], str, str]] = {
    # action: (title, explanation, button, method of Verifier)
    "confirm": ("Confirm your sender address", _confirm_text, "Confirm", "confirm"),
    "forged": ("I did not send this", _forged_text, "Report forgery", "report_forgery"),
    "list": ("This is a mailing-list server", _list_text, "Record: list server", "request_list"),
}

DONE = {
    "confirm": ("Confirmed", "{sender} is now listed for {relay}. The sending server's next retry is accepted."),
    "forged": ("Thank you", "Reported. No more messages go to {sender} from this whitelist for a while."),
    "list": ("Recorded", "Recorded that {relay} is a mailing-list server. Its postmaster can now follow the steps above."),
}


async def show_code(request: web.Request) -> web.StreamResponse:
    """GET: say what the button does; nothing happens until it is pressed (mail scanners prefetch links)."""
    site: Site = request.app["site"]
    action = request.path.split("/")[1]
    title, explain, button, _ = ACTIONS[action]
    try:
        record = await asyncio.to_thread(site.verifier.lookup, request.match_info["code"])
    except BadCode as exc:
        return bad_code(exc)
    days = site.verifier.settings.forgery_block_days
    if action == "confirm" and site.verifier.needs_sms(record):
        return site.show(request, title, lambda csrf: explain(record, days) + ipv6.sms_number_form(csrf, request.match_info["code"]))
    return site.show(request, title, lambda csrf: explain(record, days) + pages.form(request.path, csrf, button))


async def act_on_code(request: web.Request) -> web.StreamResponse:
    site: Site = request.app["site"]
    action = request.path.split("/")[1]
    form = await site.posted(request)
    if not isinstance(form, dict):
        return form
    method = getattr(site.verifier, ACTIONS[action][3])
    args = (request.match_info["code"], "http") if action == "confirm" else (request.match_info["code"],)
    try:
        record = await asyncio.to_thread(method, *args)
    except BadCode as exc:
        return bad_code(exc)
    except VerifyRefused as exc:
        log.warning("web: %s failed: %s", action, exc)
        return not_done(str(exc))
    title, text = DONE[action]
    return pages.page(title, f"<p class=\"ok\">{escape(text.format(sender=record.sender, relay=record.relay))}</p>")
