"""The IPv6 self-service form: CAPTCHA, then a code by mail (or SMS), then the /128 or /64 is listed."""

from __future__ import annotations

import ipaddress
from html import escape

from aiohttp import web

from fswl.errors import BadCode, BadSender
from fswl.names import parse_sender
from fswl.verify.verifier import IPV6
from fswl.web import pages
from fswl.web.app import Site, bad_code

PREFIXES = (128, 64)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/ipv6", show_form)
    app.router.add_post("/ipv6", submit_form)
    app.router.add_post("/ipv6/sms", submit_sms)
    app.router.add_get("/captcha/{token}.png", captcha_image)


async def show_form(request: web.Request, error: str = "", values: dict[str, str] | None = None,
                    status: int = 200) -> web.StreamResponse:
    site: Site = request.app["site"]
    values = values or {"ip": request.query.get("ip", "")[:45], "sender": request.query.get("sender", "")[:254]}
    token = site.captchas.issue()
    sms = bool(site.verifier.settings.sms_command)
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
        + (pages.field("phone", "Or: a mobile number for an SMS code (optional)", "tel", values.get("phone", ""),
                       "With a number, the code comes by SMS instead of mail.", required=False) if sms else "")
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
    png = await site.in_thread(site.captchas.image, request.match_info["token"])
    if png is None:
        return pages.problem("No such image", "This picture has expired; reload the form.", 404)
    return web.Response(body=png, content_type="image/png", headers={"Cache-Control": "no-store"})


async def submit_form(request: web.Request) -> web.StreamResponse:
    site: Site = request.app["site"]
    form = await site.posted(request)
    if not isinstance(form, dict):
        return form
    values = {k: form.get(k, "").strip()[:254] for k in ("sender", "ip", "prefix", "phone")}
    if not site.captchas.solve(form.get("captcha", ""), form.get("answer", "")):
        return await show_form(request, "The characters did not match the picture; here is a new one.", values, 400)
    try:
        sender = parse_sender(values["sender"])
        if sender.startswith("*"):
            raise BadSender(values["sender"], "one address, please")
    except BadSender:
        return await show_form(request, "That is not an email address we can write to.", values, 400)
    network = _network(values["ip"], values["prefix"], site.settings.ipv6_extra_networks)
    if network is None:
        return await show_form(request, "That is not a public IPv6 address (e.g. 2a01:4f8:c0c:1234::25).", values, 400)
    verifier = site.verifier
    if values["phone"] and verifier.settings.sms_command:
        if not _phone(values["phone"]):
            return await show_form(request, "A mobile number has digits, and may start with +.", values, 400)
        token, refused = await site.in_thread(verifier.sms_challenge, sender, str(network), network.network_address,
                                              values["phone"])
        if token is None:
            return _refused(refused)
        return site.show(request, "Enter the SMS code", lambda csrf: (
            f"<p>We sent a {len(verifier.sms_code(token))}-digit code to the number you gave.</p>"
            + pages.form("/ipv6/sms", csrf, "List my network",
                         pages.field("digits", "The code from the SMS", "text", "", autocomplete="one-time-code"),
                         {"token": token})))
    refused = await site.in_thread(verifier.challenge, sender, network.network_address, IPV6, str(network))
    if refused is not None:
        return _refused(refused)
    return pages.page("Check your mail", f"<p class=\"ok\">We mailed a link to <code>{escape(sender)}</code>. "
                      f"Open it and press the button to list <code>{escape(str(network))}</code>.</p>"
                      "<p>Nothing arrived? Look in the spam folder; the link works for three days.</p>")


async def submit_sms(request: web.Request) -> web.StreamResponse:
    site: Site = request.app["site"]
    form = await site.posted(request)
    if not isinstance(form, dict):
        return form
    try:
        record = await site.in_thread(site.verifier.confirm_sms, form.get("token", ""), form.get("digits", ""))
    except BadCode as exc:
        return bad_code(exc)
    return pages.page("Confirmed", f"<p class=\"ok\">{escape(record.sender)} is now listed for {escape(record.relay)}.</p>")


def _refused(reason: str | None) -> web.StreamResponse:
    return pages.problem("Not sent", f"We cannot send a code for this address and network now ({reason}).", 429,
                         "Try again in an hour; if it keeps failing, write to the postmaster.")


def _network(text: str, prefix: str, extra: tuple) -> ipaddress.IPv6Network | None:
    try:
        address = ipaddress.IPv6Address(text)
    except ValueError:
        return None
    allowed = address.is_global or any(address in ipaddress.ip_network(n) for n in extra)
    if not allowed or address.ipv4_mapped or address.is_multicast:
        return None
    length = int(prefix) if prefix in ("64", "128") else 128
    return ipaddress.IPv6Network(f"{address}/{length}", strict=False)


def _phone(text: str) -> bool:
    digits = text.replace(" ", "").replace("-", "")
    return 6 <= len(digits.lstrip("+")) <= 16 and digits.lstrip("+").isdigit()
