"""No challenge where the relay's SPF result for the sender's domain is `fail`: pyspf against a local dnslib server."""

from __future__ import annotations

import ipaddress
import re
import socket
import time

import pytest
from dnslib.server import DNSServer
from dnslib.zoneresolver import ZoneResolver

from fswl.app.home import Home
from fswl.verify.screen import spf_result
from fswl.verify.settings import VerifySettings
from fswl.verify.verifier import Verifier
from tests.harness.mail import free_port, mail_sink, serve
from tests.harness.web import Browser, csrf_of

ZONE_TEXT = """
strict.example. 60 IN TXT "v=spf1 ip4:192.0.2.0/24 -all"
soft.example.   60 IN TXT "v=spf1 ip4:192.0.2.0/24 ~all"
v6.example.     60 IN TXT "v=spf1 ip6:2a01:4f8:c0c:1234::25 -all"
"""


@pytest.fixture
def nameserver():
    port = free_port()
    server = DNSServer(ZoneResolver(ZONE_TEXT), port=port, address="127.0.0.1")
    server.start_thread()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop()
        server.thread.join(5)


@pytest.mark.parametrize("sender,relay,expected", [
    ("bob@strict.example", "192.0.2.5", "pass"),
    ("bob@strict.example", "198.51.100.7", "fail"),
    ("bob@soft.example", "198.51.100.7", "softfail"),
    ("bob@nothing.example", "198.51.100.7", "none"),
])
def test_spf_results_from_the_configured_nameserver(nameserver: str, sender: str, relay: str, expected: str) -> None:
    settings = VerifySettings(spf_nameservers=(nameserver,), spf_timeout=3.0)
    assert spf_result(settings, sender, ipaddress.ip_address(relay)) == expected


def test_spf_fail_means_no_challenge(home: Home, nameserver: str) -> None:
    with mail_sink() as (sink, port):
        settings = VerifySettings(enabled=True, smarthost=f"127.0.0.1:{port}", spf_nameservers=(nameserver,))
        verifier = Verifier(home, home.whitelist, settings, "wl.test", "http://127.0.0.1:8025")
        try:
            assert verifier.challenge("bob@strict.example", ipaddress.ip_address("198.51.100.7")) == "SPF fail"
            assert verifier.challenge("bob@soft.example", ipaddress.ip_address("198.51.100.7")) is None
            assert verifier.challenge("bob@strict.example", ipaddress.ip_address("192.0.2.5")) is None
            assert len(sink.messages) == 2
        finally:
            verifier.close()


def test_a_silent_nameserver_costs_at_most_the_timeout() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:  # bound, never answers
        silent.bind(("127.0.0.1", 0))
        settings = VerifySettings(spf_nameservers=(f"127.0.0.1:{silent.getsockname()[1]}",), spf_timeout=0.5)
        started = time.monotonic()
        assert spf_result(settings, "bob@strict.example", ipaddress.ip_address("198.51.100.7")) == "temperror"
        assert time.monotonic() - started < 3.0


def test_the_ipv6_form_checks_spf_at_the_typed_address_and_lists_the_network(tmp_path, nameserver: str) -> None:
    root = tmp_path / "home"
    root.mkdir()
    web_port = free_port()
    with mail_sink() as (sink, sink_port):
        (root / "fswl.toml").write_text(f"""
[dns]
zone = "wl.test"
[web]
listen = "127.0.0.1:{web_port}"
base_url = "http://127.0.0.1:{web_port}"
test_captcha_answer = "FSWL7"
[verify]
smarthost = "127.0.0.1:{sink_port}"
spf_nameservers = ["{nameserver}"]
""")
        with serve(root, "web"):
            base = f"http://127.0.0.1:{web_port}"
            browser = Browser()

            def submit(ip: str) -> tuple[int, str]:
                _, page = browser.get(base + "/ipv6")
                captcha = re.search(r'name="captcha" value="([^"]+)"', page).group(1)
                return browser.post(base + "/ipv6", {"csrf": csrf_of(page), "captcha": captcha, "answer": "FSWL7",
                                                     "sender": "uma@v6.example", "ip": ip, "prefix": "64"})

            status, page = submit("2a01:4f8:c0c:1234::25")
            assert status == 200 and "2a01:4f8:c0c:1234::/64" in page, page
            assert "2a01:4f8:c0c:1234::/64" in sink.wait_for("uma@v6.example")["Subject"]
            status, page = submit("2a01:4f8:ffff::25")
            assert status == 400 and "We do not send links to this address (SPF fail)" in page, page
