"""The IPv6 self-service form: CAPTCHA, then a link by mail (then, where set up, a code by SMS), then the listing."""

from __future__ import annotations

import asyncio
import ipaddress
from html import escape

from aiohttp import web

from fswl.errors import BadCode, BadSender, VerifyRefused
from fswl.names import parse_sender
from fswl.verify.caps import CAP_REFUSALS
from fswl.verify.mail import duration
from fswl.verify.verifier import IPV6
from fswl.web import pages
from fswl.web.site import MAX_ADDRESS_CHARS, MAX_IP_CHARS, Site, bad_code, not_done

PREFIXES = (128, 64)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/ipv6", show_form)
    app.router.add_post("/ipv6", submit_form)
    app.router.add_post("/ipv6/sms/send", send_sms)
    app.router.add_post("/ipv6/sms", submit_sms)
    app.router.add_get("/captcha/{token}.png", captcha_image)


async def show_form(request: web.Request, error: str = "", values: dict[str, str] | None = None,
                    status: int = 200) -> web.StreamResponse:
    site: Site = request.app["site"]
    values = values or {"ip": request.query.get("ip", "")[:MAX_IP_CHARS],
                        "sender": request.query.get("sender", "")[:MAX_ADDRESS_CHARS]}
    token = site.captchas.issue()
    chosen = values.get("prefix", "128")
    choices = "".join(
        f"<label style=\"font-weight:normal\"><input type=\"radio\" name=\"prefix\" value=\"{n}\""
        f"{' checked' if str(n) == chosen else ''}> /{n}: {'this address only' if n == 128 else 'the whole /64 network'}</label>"
        for n in PREFIXES)
    fields = (
        pages.field("sender", "Your email address", "email", values.get("sender", ""),
                    "We mail a link to this address; the listing is for mail from it.", autocomplete="email")
        + pages.field("ip", "Your mail server's IPv6 address", "text", values.get("ip", ""),
                      "As in the rejection message, e.g. 2a01:4f8:c0c:1234::25")
        + f"<fieldset><legend>What to list</legend>{choices}</fieldset>"
        + f"<label for=\"answer\">The characters in the image</label>"
        f"<img class=\"captcha\" src=\"/captcha/{escape(token)}.png\" alt=\"A distorted picture of {site.captchas.length} "
        f"letters and digits; if you cannot read it, write to postmaster@{escape(site.verifier.zone)}\">"
        + pages.field("answer", "", "text", "", "Letters and digits; capitals or small letters both work.")
    )
    notice = f"<p class=\"bad\" role=\"alert\">{escape(error)}</p>" if error else ""
    intro = ("<p>Mail from a new IPv6 server is refused until the server is listed for the sender. "
             "List yours here: prove you are a person, then confirm from your mailbox.</p>")
    return site.show(request, "List an IPv6 mail server",
                     lambda csrf: notice + intro + pages.form("/ipv6", csrf, "Send me the link", fields,
                                                              {"captcha": token}), status)


async def captcha_image(request: web.Request) -> web.StreamResponse:
    site: Site = request.app["site"]
    png = await asyncio.to_thread(site.captchas.image, request.match_info["token"])
    if png is None:
        return pages.problem("No such image", "This picture has expired; reload the form.", 404)
    return web.Response(body=png, content_type="image/png", headers={"Cache-Control": "no-store"})


async def submit_form(request: web.Request) -> web.StreamResponse:
    """The form: always a link by mail first, so only the mailbox's owner can list anything."""
    site: Site = request.app["site"]
    form = await site.posted(request)
    if not isinstance(form, dict):
        return form
    values = {k: form.get(k, "").strip()[:MAX_ADDRESS_CHARS] for k in ("sender", "ip", "prefix")}
    if not await asyncio.to_thread(site.captchas.solve, form.get("captcha", ""), form.get("answer", "")):
        return await show_form(request, "The characters did not match the picture; here is a new one.", values, 400)
    try:
        sender = parse_sender(values["sender"])
        if sender.startswith("*"):
            raise BadSender(values["sender"], "one address, please")
    except BadSender:
        return await show_form(request, "That is not an email address we can write to.", values, 400)
    parsed = _network(values["ip"], values["prefix"], site.settings.ipv6_extra_networks)
    if parsed is None:
        return await show_form(request, "That is not a public IPv6 address (e.g. 2a01:4f8:c0c:1234::25).", values, 400)
    address, network = parsed
    verifier = site.verifier
    # SPF is checked for the address typed (the server that sends), the listing is for the network chosen.
    refused = await asyncio.to_thread(verifier.challenge, sender, address, IPV6, str(network))
    if refused is not None:
        return _refused(refused)
    ttl = duration(verifier.settings.code_ttl_seconds)
    then = " and follow the SMS step" if verifier.settings.sms_command else ""
    return pages.page("Check your mail", f"<p class=\"ok\">We mailed a link to <code>{escape(sender)}</code>. "
                      f"Open it and press the button{then} to list <code>{escape(str(network))}</code>.</p>"
                      f"<p>Nothing arrived? Look in the spam folder; the link works for {ttl}.</p>")


def sms_number_form(csrf: str, code: str) -> str:
    """On the confirm page of an IPv6 code: the SMS step that comes after the emailed link."""
    return ("<p>This whitelist also checks a mobile number before listing a network.</p>"
            + pages.form("/ipv6/sms/send", csrf, "Send me the code by SMS",
                         pages.field("phone", "Your mobile number", "tel", "", "Digits, with the country code after a +.",
                                     autocomplete="tel"), {"code": code}))


async def send_sms(request: web.Request) -> web.StreamResponse:
    site: Site = request.app["site"]
    form = await site.posted(request)
    if not isinstance(form, dict):
        return form
    code = form.get("code", "")
    try:
        await asyncio.to_thread(site.verifier.sms_send, code, form.get("phone", ""))
    except BadCode as exc:
        return bad_code(exc)
    except VerifyRefused as exc:
        return not_done(str(exc))
    return site.show(request, "Enter the SMS code", lambda csrf: (
        "<p>We sent a code to the number you gave.</p>"
        + pages.form("/ipv6/sms", csrf, "List my network",
                     pages.field("digits", "The code from the SMS", "text", "", autocomplete="one-time-code"),
                     {"code": code})))


async def submit_sms(request: web.Request) -> web.StreamResponse:
    site: Site = request.app["site"]
    form = await site.posted(request)
    if not isinstance(form, dict):
        return form
    try:
        record = await asyncio.to_thread(site.verifier.confirm_sms, form.get("code", ""), form.get("digits", ""))
    except BadCode as exc:
        return bad_code(exc)
    except VerifyRefused as exc:
        return not_done(str(exc))
    return pages.page("Confirmed", f"<p class=\"ok\">{escape(record.sender)} is now listed for {escape(record.relay)}.</p>")


def _refused(reason: str) -> web.StreamResponse:
    """429 when a cap stops it (wait and retry), 503 when sending failed, 400 when this address is never mailed."""
    if reason in CAP_REFUSALS:
        return pages.problem("Not sent", f"We cannot send a link for this address and network now ({reason}).", 429,
                             "Try again in an hour; if it keeps failing, write to the postmaster.")
    if reason == "sending failed":
        return not_done("sending the mail failed on our side")
    return pages.problem("Not sent", f"We do not send links to this address ({reason}).", 400,
                         "Use the address you send mail from, a plain personal one (no +tags or role addresses "
                         "like postmaster@), whose domain's SPF record allows this server.")


def _network(text: str, prefix: str, extra: tuple) -> tuple[ipaddress.IPv6Address, ipaddress.IPv6Network] | None:
    try:
        address = ipaddress.IPv6Address(text)
    except ValueError:
        return None
    allowed = address.is_global or any(address in ipaddress.ip_network(n) for n in extra)
    if not allowed or address.ipv4_mapped or address.is_multicast:
        return None
    length = int(prefix) if prefix in ("64", "128") else 128
    return address, ipaddress.IPv6Network(f"{address}/{length}", strict=False)
