"""The IPv6 self-service form over HTTP: CAPTCHA, CSRF, email or SMS verification, rate limits."""

from __future__ import annotations

import ipaddress
import re
import sys
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest

from fswl.app.home import Home
from fswl.verify.settings import VerifySettings
from fswl.verify.verifier import Verifier
from fswl.web.guard import SITE_FACTOR, RateLimit, client_keys
from tests.harness.mail import free_port, mail_sink, serve
from tests.harness.web import Browser, csrf_of, open_code_page

ANSWER = "FSWL7"
SMS_SCRIPT = "import sys; open(sys.argv[1], 'a').write(' '.join(sys.argv[2:]) + '\\n')\n"


def start(root: Path, sink_port: int, sms: bool = False, **web: object):
    web_port = free_port()
    extra = "".join(f"{k} = {v!r}\n".replace("'", '"') for k, v in web.items())
    (root / "sms.py").write_text(SMS_SCRIPT)
    (root / "fswl.toml").write_text(f"""
[dns]
zone = "wl.test"
[web]
listen = "127.0.0.1:{web_port}"
base_url = "http://127.0.0.1:{web_port}"
test_captcha_answer = "{ANSWER}"
{extra}
[verify]
smarthost = "127.0.0.1:{sink_port}"
spf_refuse = []
""" + (f"""sms_command = ["{sys.executable}", "{root / 'sms.py'}", "{root / 'sms.txt'}"]\n""" if sms else ""))
    return serve(root, "web")


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    root = tmp_path_factory.mktemp("web") / "home"
    root.mkdir()
    with mail_sink() as (sink, sink_port), start(root, sink_port, posts_per_minute=50) as ports:
        yield Home(root), sink, f"http://127.0.0.1:{ports['web']}"


def form_fields(page: str) -> dict[str, str]:
    return {"csrf": csrf_of(page), "captcha": re.search(r'name="captcha" value="([^"]+)"', page).group(1)}


def test_the_form_lists_a_64_after_the_emailed_link(web) -> None:
    home, sink, base = web
    browser = Browser()
    status, page = browser.get(base + "/ipv6?ip=2a01:4f8:c0c:1234::25&sender=ivy@example.org")
    assert status == 200 and 'value="2a01:4f8:c0c:1234::25"' in page
    image = re.search(r'src="(/captcha/[^"]+\.png)"', page).group(1)
    with browser.opener.open(base + image, timeout=10) as response:
        assert response.headers["Content-Type"] == "image/png" and response.read(8) == b"\x89PNG\r\n\x1a\n"
    status, page = browser.post(base + "/ipv6", {**form_fields(page), "sender": "ivy@example.org",
                                                 "ip": "2a01:4f8:c0c:1234::25", "prefix": "64", "answer": "fswl7"})
    assert status == 200 and "We mailed a link" in page, page
    message = sink.wait_for("ivy@example.org")
    assert "2a01:4f8:c0c:1234::/64" in message["Subject"]
    browser, url, page = open_code_page(message, "confirm")
    assert "2a01:4f8:c0c:1234::/64" in page
    status, page = browser.post(url, {"csrf": csrf_of(page)})
    assert status == 200 and "ivy@example.org is now listed for 2a01:4f8:c0c:1234::/64" in page
    assert home.whitelist.lookup("ivy@example.org", "2a01:4f8:c0c:1234:ffff::1") is not None


@pytest.mark.parametrize("change,message", [
    ({"answer": "WRONG"}, "did not match the picture"),
    ({"captcha": "0-0-0"}, "did not match the picture"),
    ({"sender": "not an address"}, "not an email address"),
    ({"ip": "::1"}, "not a public IPv6 address"),
    ({"ip": "192.0.2.1"}, "not a public IPv6 address"),
    ({"ip": "fe80::1"}, "not a public IPv6 address"),
    ({"sender": "postmaster@example.org"}, "We do not send links to this address (role or bounce address)"),
    ({"sender": "jo+tag@example.org"}, "We do not send links to this address (VERP or tagged address)"),
], ids=["wrong-answer", "forged-captcha", "bad-sender", "loopback", "ipv4", "link-local", "role", "tagged"])
def test_the_form_refuses(web, change: dict[str, str], message: str) -> None:
    _, _, base = web
    browser = Browser()
    _, page = browser.get(base + "/ipv6")
    fields = {**form_fields(page), "sender": "jo@example.org", "ip": "2a01:4f8::1", "prefix": "128",
              "answer": ANSWER, **change}
    status, page = browser.post(base + "/ipv6", fields)
    assert status == 400 and message in page


def test_a_captcha_answers_once_and_csrf_is_required(web) -> None:
    _, sink, base = web
    browser = Browser()
    _, page = browser.get(base + "/ipv6")
    fields = {**form_fields(page), "sender": "kay@example.org", "ip": "2a01:4f8::2", "prefix": "128", "answer": ANSWER}
    assert browser.post(base + "/ipv6", {**fields, "csrf": "f" * 32})[0] == 403
    assert Browser().post(base + "/ipv6", fields)[0] == 403, "another browser has no matching cookie"
    assert browser.post(base + "/ipv6", fields)[0] == 200
    status, page = browser.post(base + "/ipv6", fields)
    assert status == 400 and "did not match" in page


@pytest.fixture(scope="module")
def web_sms(tmp_path_factory):
    root = tmp_path_factory.mktemp("web-sms") / "home"
    root.mkdir()
    with mail_sink() as (sink, sink_port), start(root, sink_port, sms=True, posts_per_minute=50) as ports:
        yield Home(root), sink, f"http://127.0.0.1:{ports['web']}"


def test_sms_is_a_second_factor_after_the_emailed_link(web_sms) -> None:
    home, sink, base = web_sms
    browser = Browser()
    _, page = browser.get(base + "/ipv6")
    assert 'name="phone"' not in page, "no SMS instead of the mail"
    status, page = browser.post(base + "/ipv6", {**form_fields(page), "sender": "lou@example.org", "ip": "2a01:4f8::3",
                                                 "prefix": "128", "answer": ANSWER, "phone": "+41 79 555 01 23"})
    assert status == 200 and "We mailed a link" in page, page
    assert not (home.root / "sms.txt").exists() and home.whitelist.lookup("lou@example.org", "2a01:4f8::3") is None
    browser, url, page = open_code_page(sink.wait_for("lou@example.org"), "confirm")
    assert 'name="phone"' in page and 'action="/ipv6/sms/send"' in page
    status, refused = browser.post(url, {"csrf": csrf_of(page)})
    assert status == 404 and "needs a code by SMS" in refused
    code = url.rsplit("/", 1)[1]
    status, page = browser.post(base + "/ipv6/sms/send", {"csrf": csrf_of(page), "code": code,
                                                          "phone": "+41 79 555-01 23"})
    assert status == 200 and "Enter the SMS code" in page, page
    dashes, number, digits = (home.root / "sms.txt").read_text().splitlines()[-1].split(" ")
    assert (dashes, number) == ("--", "+41795550123") and re.fullmatch(r"\d{6}", digits)
    wrong = str((int(digits) + 1) % 10 ** 6).zfill(6)
    status, bad = browser.post(base + "/ipv6/sms", {"csrf": csrf_of(page), "code": code, "digits": wrong})
    assert status == 404 and "not the code we sent" in bad
    status, bad = browser.post(base + "/ipv6/sms", {"csrf": csrf_of(page), "code": code, "digits": "١٢٣٤٥٦"})
    assert status == 404 and "not the code we sent" in bad
    status, done = browser.post(base + "/ipv6/sms", {"csrf": csrf_of(page), "code": code, "digits": digits})
    assert status == 200 and "lou@example.org is now listed for 2a01:4f8::3/128" in done
    assert home.whitelist.lookup("lou@example.org", "2a01:4f8::3") is not None


def test_sms_takes_only_a_code_from_an_ipv6_mail(web_sms) -> None:
    home, _, base = web_sms
    sent = []
    verifier = Verifier(home, home.whitelist, VerifySettings(spf_refuse=()), "wl.test", base, send=lambda _s, message: sent.append(message))
    try:
        assert verifier.challenge("max@example.org", ipaddress.ip_address("192.0.2.8")) is None
    finally:
        verifier.close()
    code = sent[0]["Reply-To"].split("@")[0].removeprefix("confirm-")
    browser = Browser()
    _, page = browser.get(base + "/ipv6")
    for path in ("/ipv6/sms/send", "/ipv6/sms"):
        for bad_code in (code, "a" * 39):
            status, bad = browser.post(base + path, {"csrf": csrf_of(page), "code": bad_code, "phone": "+41795550999",
                                                     "digits": "123456"})
            assert status in (404, 410) and ("not valid here" in bad or "not known here" in bad), bad
    assert not (home.root / "sms.txt").exists() or "+41795550999" not in (home.root / "sms.txt").read_text()
    assert home.whitelist.lookup("max@example.org", "192.0.2.8") is None


def test_posts_are_rate_limited_per_client(tmp_path: Path) -> None:
    root = tmp_path / "home"
    root.mkdir()
    with mail_sink() as (_, sink_port), start(root, sink_port, posts_per_minute=3) as ports:
        base = f"http://127.0.0.1:{ports['web']}"
        browser = Browser()
        _, page = browser.get(base + "/ipv6")
        statuses = [browser.post(base + "/ipv6", {"csrf": csrf_of(page), "answer": "x"})[0] for _ in range(5)]
        assert statuses == [400, 400, 400, 429, 429]
        status, page = browser.get(base + "/ipv6")
        assert status == 200, "pages stay readable"


@pytest.mark.parametrize("path,form", [
    ("/ipv6", {"csrf": "\u00e9"}),
    ("/captcha/a-%C2%B2-b.png", None),
    ("/captcha/a-9999999999-%C3%A9.png", None),
], ids=["csrf", "captcha-superscript", "captcha-accent"])
def test_non_ascii_input_gets_a_page_not_a_traceback(web, path: str, form) -> None:
    _, _, base = web
    browser = Browser()
    browser.get(base + "/ipv6")
    status, page = browser.post(base + path, form) if form is not None else browser.get(base + path)
    assert status in (403, 404) and "Traceback" not in page and "<h1>" in page, page


def test_rate_limits_count_fixed_windows_per_64_and_per_48() -> None:
    limit = RateLimit(2)
    assert [limit.allow("a", now=60.0) for _ in range(3)] == [True, True, False]
    assert limit.allow("a", now=119.9) is False and limit.allow("a", now=120.0) is True, "a new minute"
    assert limit.counts == {"a": 1}, "one small counter per client, old windows forgotten"

    def keys(remote: str) -> list[str]:
        return client_keys(SimpleNamespace(remote=remote, headers={}), False)

    assert keys("192.0.2.1") == ["192.0.2.1"]
    assert keys("2a01:4f8:c0c:1234::25") == ["2a01:4f8:c0c:1234::/64", "2a01:4f8:c0c::/48"]
    site = RateLimit(2)
    hosts = [f"2a01:4f8:c0c:{n:x}::1" for n in range(20)]  # 20 /64s of one /48
    allowed = sum(all(site.allow(k, now=0.0, factor=SITE_FACTOR if i else 1) for i, k in enumerate(keys(h)))
                  for h in hosts for _ in range(2))
    assert allowed == 2 * SITE_FACTOR, "a /48 gets SITE_FACTOR times one client's share, however many /64s it uses"


def test_captcha_images_have_a_global_limit(tmp_path: Path) -> None:
    root = tmp_path / "home"
    root.mkdir()
    with mail_sink() as (_, sink_port), start(root, sink_port, costly_per_minute=2) as ports:
        base = f"http://127.0.0.1:{ports['web']}"
        statuses = []
        for _ in range(3):
            _, page = Browser().get(base + "/ipv6")
            try:
                with urllib.request.urlopen(base + re.search(r'src="(/captcha/[^"]+\.png)"', page).group(1)) as response:
                    statuses.append(response.status)
            except urllib.error.HTTPError as exc:
                statuses.append(exc.code)
        assert statuses == [200, 200, 429]
