"""Verification end to end: a miss at the policy service, the challenge mail, confirmation by link and by reply."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from urllib.parse import urlencode

import dns.message
import dns.query
import dns.rcode
import pytest

from fswl.app.home import Home
from fswl.verify import codes
from fswl.verify.pending import Pending, Record
from fswl.verify.verifier import verify_dir
from tests.conftest import require, run_fswl
from tests.harness.mail import free_port, mail_sink, serve
from tests.harness.web import Browser, csrf_of, link, open_code_page

ZONE = "wl.test"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """`fswl serve dns policy smtp web` on one home, challenges going to a local sink."""
    root = tmp_path_factory.mktemp("verify") / "home"
    root.mkdir()
    web_port = free_port()
    with mail_sink() as (sink, sink_port):
        (root / "fswl.toml").write_text(f"""
[dns]
listen = "127.0.0.1:0"
zone = "{ZONE}"
[policy]
listen = "127.0.0.1:0"
exempt_clients = []
[smtp]
listen = "127.0.0.1:0"
[web]
listen = "127.0.0.1:{web_port}"
base_url = "http://127.0.0.1:{web_port}"
[verify]
enabled = true
smarthost = "127.0.0.1:{sink_port}"
from = "whitelist@{ZONE}"
spf_refuse = []
""")
        with serve(root, "dns", "policy", "smtp", "web") as ports:
            yield Home(root), sink, ports


def policy_request(port: int, sender: str, client: str, **extra: str) -> str:
    attributes = {"request": "smtpd_access_policy", "protocol_state": "RCPT", "client_address": client,
                  "client_name": "mail.example", "helo_name": "mail.example", "sender": sender,
                  "recipient": "someone@receiver.example", **extra}
    payload = "".join(f"{k}={v}\n" for k, v in attributes.items()).encode() + b"\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(payload)
        data = b""
        while b"\n\n" not in data:
            chunk = conn.recv(4096)
            if not chunk:
                break
            data += chunk
    return data.decode().strip().removeprefix("action=")


def dns_answer(port: int, name: str) -> list[str]:
    response = dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1", port=port, timeout=5)
    if response.rcode() != dns.rcode.NOERROR:
        return []
    return [item.to_text() for rrset in response.answer for item in rrset]


def wait_listed_in_dns(port: int, name: str, timeout: float = 10.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = dns_answer(port, name)
        if answer:
            return answer
        time.sleep(0.1)
    return []


def wait_for_stats(home: Home, line: str, timeout: float = 20.0) -> str:
    """`fswl verify stats` once it shows ``line`` (the worker threads have handled the misses)."""
    deadline = time.monotonic() + timeout
    while True:
        stats = run_fswl(home, "verify", "stats", check=True).stdout
        if line in stats.splitlines() or time.monotonic() > deadline:
            return stats
        time.sleep(0.2)


def test_a_miss_is_challenged_and_confirmed_by_the_link(site) -> None:
    home, sink, ports = site
    action = policy_request(ports["policy"], "dave@umkc.edu", "57.129.134.63")
    assert action.startswith("451 4.7.1 sender not yet validated")
    message = sink.wait_for("dave@umkc.edu")
    assert message["Reply-To"].startswith("confirm-") and message["Reply-To"].endswith("@" + ZONE)
    browser, url, page = open_code_page(message, "confirm")
    assert "<button" in page and "57.129.134.63" in page
    assert home.whitelist.lookup("dave@umkc.edu", "57.129.134.63") is None, "a GET (a prefetch) must not confirm"
    status, page = Browser().post(url, {"csrf": "0" * 32})
    assert status == 403 and "token" in page
    status, page = browser.post(url, {"csrf": csrf_of(browser.get(url)[1])})
    assert status == 200 and "dave@umkc.edu is now listed for 57.129.134.63" in page
    assert run_fswl(home, "check", "dave@umkc.edu", "57.129.134.63").returncode == 0
    assert wait_listed_in_dns(ports["dns"], f"dave.umkc.edu.63.134.129.57.{ZONE}") == ["127.0.0.2"]
    assert policy_request(ports["policy"], "dave@umkc.edu", "57.129.134.63") == "DUNNO"
    status, page = browser.post(url, {"csrf": csrf_of(browser.get("http://" + url.split("/")[2] + "/ipv6")[1])})
    assert status == 410 and "already used" in page
    assert "confirmed via http dave@umkc.edu 57.129.134.63" in (home.root / "verify" / "events.log").read_text()


def swaks(port: int, to: str, sender: str = "carol@example.net", **extra: str) -> subprocess.CompletedProcess[str]:
    args = [require("swaks"), "--server", "127.0.0.1", "--port", str(port), "--to", to, "--from", sender,
            "--helo", "mail.example.net", "--timeout", "20"]
    for key, value in extra.items():
        args += [f"--{key.replace('_', '-')}", value]
    return subprocess.run(args, capture_output=True, text=True, timeout=60)


def test_a_reply_over_smtp_confirms(site) -> None:
    home, sink, ports = site
    assert policy_request(ports["policy"], "carol@example.net", "203.0.113.9").startswith("451")
    reply_to = sink.wait_for("carol@example.net")["Reply-To"]
    result = swaks(ports["smtp"], reply_to, body="Yes, that was me.")
    assert "250 2.0.0 confirmed: carol@example.net is listed for 203.0.113.9" in result.stdout, result.stdout
    assert home.whitelist.lookup("carol@example.net", "203.0.113.9") is not None
    assert wait_listed_in_dns(ports["dns"], f"carol.example.net.9.113.0.203.{ZONE}") == ["127.0.0.2"]
    again = swaks(ports["smtp"], reply_to)
    assert "550 5.7.1 this code was already used" in again.stdout, again.stdout


def test_a_code_that_never_worked_is_404_and_one_that_no_longer_works_is_410(site) -> None:
    """docs/verification.md's table: the status follows the kind of refusal, not words in its message.

    "not known here: it expired long ago ..." says "expired" but is a 404; an expired code is a 410.
    """
    home, _sink, ports = site
    base = f"http://127.0.0.1:{ports['web']}"
    expires = int(time.time()) + 3600
    foreign = codes.sign(os.urandom(codes.KEY_BYTES), codes.new_id(), expires, "confirm", "x@example.net", "192.0.2.1")
    status, page = Browser().get(f"{base}/confirm/{foreign}")
    assert status == 404 and "not known here" in page, (status, page)
    status, page = Browser().get(f"{base}/confirm/{'a' * codes.CODE_CHARS}")
    assert status == 404, (status, page)
    now = time.time()
    record = Record(codes.new_id(), "confirm", "late@example.net", "192.0.2.7", now - 7200, int(now) - 60)
    Pending(home.pending).put(record)
    key = codes.load_key(verify_dir(home) / "key")
    late = codes.sign(key, record.id, record.expires, record.purpose, record.sender, record.relay)
    status, page = Browser().get(f"{base}/confirm/{late}")
    assert status == 410 and "expired on" in page, (status, page)


def test_mail_to_postmaster_quoting_the_code_is_kept_and_confirms_nothing(site) -> None:
    """Only a confirm-<code>@ recipient confirms: postmaster@ takes anyone's mail, so a code quoted there counts for nothing."""
    home, sink, ports = site
    assert policy_request(ports["policy"], "erin@example.org", "198.51.100.20").startswith("451")
    message = sink.wait_for("erin@example.org")
    code = message["Reply-To"].split("@")[0].removeprefix("confirm-")
    result = swaks(ports["smtp"], f"postmaster@{ZONE}", sender="erin@example.org",
                   header=f"Subject: Re: confirm {code}", body=f"yes {code}")
    assert "250 2.0.0 OK: kept for the postmaster" in result.stdout, result.stdout
    assert home.whitelist.lookup("erin@example.org", "198.51.100.20") is None
    assert any(code in path.read_text() for path in (home.root / "verify" / "postmaster" / "new").iterdir())
    assert Browser().get(link(message, "confirm"))[0] == 200, "the code is still unused"


@pytest.mark.parametrize("to,sender,expected", [
    ("someone@" + ZONE, "x@example.net", "550 5.1.1 no such mailbox"),
    ("victim@elsewhere.example", "x@example.net", "550 5.7.1 relaying denied"),
    ("confirm-notacode@" + ZONE, "x@example.net", "550 5.7.1 not a confirmation code"),
    ("confirm-" + codes.sign(os.urandom(32), codes.new_id(), int(time.time()) + 3600, "confirm", "x@example.net",
                             "192.0.2.1") + "@" + ZONE, "x@example.net", "550 5.7.1 this code is not known here"),
], ids=["unknown-mailbox", "relay", "garbage-code", "foreign-code"])
def test_smtp_refuses_at_rcpt(site, to: str, sender: str, expected: str) -> None:
    _, _, ports = site
    result = swaks(ports["smtp"], to, sender=sender)
    assert expected in result.stdout, result.stdout


def test_a_bounce_does_not_confirm(site) -> None:
    home, sink, ports = site
    assert policy_request(ports["policy"], "frank@example.org", "198.51.100.21").startswith("451")
    reply_to = sink.wait_for("frank@example.org")["Reply-To"]
    result = swaks(ports["smtp"], reply_to, sender="<>")
    assert "550 5.7.1 a bounce does not confirm anything" in result.stdout, result.stdout
    for header in ("Auto-Submitted: auto-replied", "Precedence: bulk", "Precedence: junk", "Precedence: list",
                   "Precedence: auto_reply", "X-Autoreply: yes", "X-Autorespond: yes",
                   "X-Auto-Response-Suppress: All", "X-Vacation: yes"):
        auto = swaks(ports["smtp"], reply_to, sender="frank@example.org", add_header=header)
        assert "550 5.7.1 an auto-reply does not confirm" in auto.stdout, (header, auto.stdout)
    assert home.whitelist.lookup("frank@example.org", "198.51.100.21") is None


def test_forgery_report_blocks_further_challenges(site) -> None:
    home, sink, ports = site
    assert policy_request(ports["policy"], "gina@example.org", "198.51.100.30").startswith("451")
    message = sink.wait_for("gina@example.org")
    browser, url, page = open_code_page(message, "forged")
    assert "Report forgery" in page
    status, page = browser.post(url, {"csrf": csrf_of(page)})
    assert status == 200 and "Reported" in page
    status, page = browser.get(link(message, "confirm"))
    assert status == 410 and "already used" in page
    assert policy_request(ports["policy"], "gina@example.org", "198.51.100.31").startswith("451")
    stats = wait_for_stats(home, "refused: address reported a forgery: 1")
    assert len(sink.to("gina@example.org")) == 1
    assert "forgery_reports: 1" in stats and "refused: address reported a forgery: 1" in stats
    # the report reaches reputation: the relay's quota is zero for a while
    shown = run_fswl(home, "reputation", "show", "198.51.100.30", check=True).stdout
    assert "1 abuse report(s)" in shown and "quota: 0 message(s)/hour" in shown, shown


def test_the_list_server_page_records_the_request(site) -> None:
    home, sink, ports = site
    assert policy_request(ports["policy"], "hal@example.org", "198.51.100.40").startswith("451")
    message = sink.wait_for("hal@example.org")
    browser, url, page = open_code_page(message, "list")
    assert "VERP" in page
    token = csrf_of(page)
    status, page = browser.post(url, {"csrf": token})
    assert status == 200 and "mailing-list server" in page
    status, page = browser.post(url, {"csrf": token})
    assert status == 200 and "mailing-list server" in page, "a second press is fine, and not recorded again"
    events = (home.root / "verify" / "events.log").read_text()
    assert events.count("list server reported hal@example.org 198.51.100.40") == 1
    status, _ = browser.get(link(message, "confirm"))
    assert status == 200, "recording a list server leaves the code usable"


def test_attacker_chosen_text_stays_out_of_the_mail(site) -> None:
    _, sink, ports = site
    sender = "clickhere.freemoney.winner@spam.example"
    action = policy_request(ports["policy"], sender, "192.0.2.77", helo_name="BUY-CHEAP-PILLS.example",
                            client_name="evil-client.example", recipient="victim-rcpt@receiver.example")
    assert action.startswith("451")
    message = sink.wait_for(sender)
    whole = message.as_string()
    rest = whole.replace(sender, "").replace("192.0.2.77", "")
    for planted in ("BUY-CHEAP", "evil-client", "victim-rcpt", "clickhere", "freemoney", "winner", "spam.example"):
        assert planted.lower() not in rest.lower(), planted
    assert message["Subject"] == "Please confirm mail you sent via 192.0.2.77"
    assert message["Auto-Submitted"] == "auto-generated" and message["Precedence"] == "bulk"
    assert "Do not reply to this message if you did not send the mail: a reply confirms." in message.get_content()


def test_why_page_escapes_and_points_ipv6_senders_at_the_form(site) -> None:
    _, _, ports = site
    base = f"http://127.0.0.1:{ports['web']}"
    status, page = Browser().get(base + "/why?" + urlencode({"sender": "<script>x</script>@a.example",
                                                             "ip": "2a01:4f8:c0c:1234::25"}))
    assert status == 200 and "<script>x" not in page and "&lt;script&gt;" in page
    assert 'href="/ipv6?ip=2a01%3A4f8%3Ac0c%3A1234%3A%3A25&amp;sender=%3Cscript%3Ex%3C%2Fscript%3E%40a.example"' in page


@pytest.mark.parametrize("service", ["policy", "dns"])
def test_a_service_alone_challenges_when_verify_is_enabled(tmp_path, service: str) -> None:
    """Verification attaches to every runtime: `fswl serve policy` (or dns with challenge_on_miss) suffices."""
    root = tmp_path / "home"
    root.mkdir()
    with mail_sink() as (sink, sink_port):
        (root / "fswl.toml").write_text(f"""
[dns]
listen = "127.0.0.1:0"
zone = "{ZONE}"
challenge_on_miss = true
[policy]
listen = "127.0.0.1:0"
exempt_clients = []
[verify]
enabled = true
smarthost = "127.0.0.1:{sink_port}"
spf_refuse = []
""")
        with serve(root, service) as ports:
            if service == "policy":
                assert policy_request(ports["policy"], "quinn@example.org", "192.0.2.50").startswith("451")
            else:
                assert dns_answer(ports["dns"], f"quinn.example.org.50.2.0.192.{ZONE}") == []
            message = sink.wait_for("quinn@example.org")
            assert "192.0.2.50" in message["Subject"]


def test_smtp_limits_connections_and_a_full_postmaster_box(tmp_path) -> None:
    root = tmp_path / "home"
    root.mkdir()
    (root / "fswl.toml").write_text(f"""
[dns]
zone = "{ZONE}"
[smtp]
listen = "127.0.0.1:0"
max_connections = 1
postmaster_keep = 1
""")
    with serve(root, "smtp") as ports:
        with socket.create_connection(("127.0.0.1", ports["smtp"]), timeout=10) as first:
            assert first.recv(512).startswith(b"220")
            with socket.create_connection(("127.0.0.1", ports["smtp"]), timeout=10) as second:
                assert second.recv(512).startswith(b"421 4.3.2 too many connections")
        deadline = time.monotonic() + 10
        kept = swaks(ports["smtp"], f"postmaster@{ZONE}", body="first")
        while "421" in kept.stdout and time.monotonic() < deadline:  # until the first connection is gone
            kept = swaks(ports["smtp"], f"postmaster@{ZONE}", body="first")
        assert "250 2.0.0 OK: kept for the postmaster" in kept.stdout, kept.stdout
        full = swaks(ports["smtp"], f"postmaster@{ZONE}", body="second")
        assert "452 4.2.2 the postmaster's mailbox is full" in full.stdout, full.stdout


def test_forged_misses_through_the_policy_service_give_exactly_the_capped_number_of_mails(tmp_path) -> None:
    root = tmp_path / "home"
    root.mkdir()
    with mail_sink() as (sink, sink_port):
        (root / "fswl.toml").write_text(f"""
[dns]
zone = "{ZONE}"
[policy]
listen = "127.0.0.1:0"
exempt_clients = []
[verify]
enabled = true
smarthost = "127.0.0.1:{sink_port}"
spf_refuse = []
global_per_hour = 7
""")
        with serve(root, "policy") as ports:
            for i in range(300):
                action = policy_request(ports["policy"], f"forged{i}@d{i}.example", f"198.51.100.{i % 250 + 1}")
                assert action.startswith("451"), action
            stats = wait_for_stats(Home(root), "refused: global hourly cap: 293", timeout=60)
            assert "challenges_sent: 7" in stats.splitlines(), stats
            assert len(sink.messages) == 7


def test_verification_refuses_to_start_with_the_example_zone(tmp_path) -> None:
    root = tmp_path / "home"
    root.mkdir()
    (root / "fswl.toml").write_text('[policy]\nlisten = "127.0.0.1:0"\n[verify]\nenabled = true\n')
    done = subprocess.run([sys.executable, "-m", "fswl", "serve", "policy"], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "FSWL_HOME": str(root)})
    assert done.returncode == 2, done.stderr
    assert "[verify] enabled needs a real [dns] zone or verify.zone" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_a_store_that_cannot_be_written_gets_451_and_a_clear_page_and_the_code_survives(site) -> None:
    home, sink, ports = site
    assert policy_request(ports["policy"], "iris@example.org", "45.33.1.1").startswith("451")
    message = sink.wait_for("iris@example.org")
    blocker = home.db / "ip4" / "45"
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("not a directory: every entry under 45/ fails to be written\n")
    try:
        reply = swaks(ports["smtp"], message["Reply-To"], sender="iris@example.org")
        assert "451 4.3.0 confirmation failed on our side" in reply.stdout, reply.stdout
        browser, url, page = open_code_page(message, "confirm")
        status, page = browser.post(url, {"csrf": csrf_of(page)})
        assert status == 503 and "cannot be written just now; nothing was changed" in page, page
        assert "Traceback" not in page
    finally:
        blocker.unlink()
    browser, url, page = open_code_page(message, "confirm")
    status, page = browser.post(url, {"csrf": csrf_of(page)})
    assert status == 200 and "iris@example.org is now listed for 45.33.1.1" in page
