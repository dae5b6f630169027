"""`fswl serve policy` spoken to over a socket, as Postfix speaks to it."""

from __future__ import annotations

import socket
import time

import pytest

from fswl.app.home import Home
from fswl.policy.protocol import BadRequest, format_action, parse_request
from tests.harness.dnsd import fswl_serve

DEFER = "451 4.7.1 sender not yet validated in global whitelist; see http://127.0.0.1:8025/why?"


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    root = tmp_path_factory.mktemp("policy") / "home"
    home = Home(root)
    root.mkdir(parents=True, exist_ok=True)
    home.config_path.write_text(
        '[policy]\nexempt_clients = ["198.18.0.0/15"]\nexempt_recipient_domains = ["abuse.example"]\n'
        'exempt_sender_domains = ["partner.example"]\n'
    )
    wl = home.whitelist
    wl.add("dave@umkc.edu", "57.129.134.63")
    wl.add("*@lists.umkc.edu", "57.129.134.63")
    wl.add("*@lists.example.org", "203.0.113.5")
    wl.add("*", "192.0.2.0/24")
    wl.add("alice@example.com", "10.20.0.0/16")
    wl.add("*@aol.com", "64.12.88.0/24")
    wl.link("64.12.88.0/24", "aol-out")
    wl.add("bob@example.net", "2001:db8::/64")
    with fswl_serve(root, "policy") as port:
        yield home, port


def request(client: str = "57.129.134.63", sender: str = "dave@umkc.edu", **extra: str) -> bytes:
    attributes = {"request": "smtpd_access_policy", "protocol_state": "RCPT", "protocol_name": "ESMTP",
                  "client_address": client, "client_name": "mail.example", "sender": sender,
                  "recipient": "someone@receiver.example", **extra}
    return "".join(f"{k}={v}\n" for k, v in attributes.items()).encode() + b"\n"


def converse(port: int, payload: bytes, replies: int = 1, shutdown: bool = False) -> list[str]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(payload)
        if shutdown:
            conn.shutdown(socket.SHUT_WR)
        data = b""
        while data.count(b"\n\n") < replies:
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
    return [block.decode().removeprefix("action=") for block in data.split(b"\n\n") if block]


CASES = [
    ("listed", request(), "DUNNO"),
    ("case", request(sender="DAVE@UMKC.EDU"), "DUNNO"),
    ("not-listed", request(sender="bob@example.org"), DEFER),
    ("domain", request(sender="anyone@lists.umkc.edu"), "DUNNO"),
    ("relay-wide", request(client="192.0.2.9", sender="x@y.example"), "DUNNO"),
    ("prefix", request(client="10.20.30.40", sender="alice@example.com"), "DUNNO"),
    ("group", request(client="64.12.88.200", sender="joe@aol.com"), "DUNNO"),
    ("v6-prefix", request(client="2001:db8::99", sender="bob@example.net"), "DUNNO"),
    ("v6-miss", request(client="2001:db8:1::99", sender="bob@example.net"), DEFER),
    ("verp-listed", request(client="203.0.113.5", sender="list-bounces+joe=receiver.example@lists.example.org"), "DUNNO"),
    ("verp-unlisted", request(client="203.0.113.6", sender="list-bounces+joe=receiver.example@lists.example.org"), DEFER),
    ("bounce", request(sender=""), "DUNNO"),
    ("postmaster", request(sender="postmaster@example.org"), "DUNNO"),
    ("exempt-client", request(client="198.18.3.4", sender="bob@example.org"), "DUNNO"),
    ("exempt-recipient", request(sender="bob@example.org", recipient="abuse@abuse.example"), "DUNNO"),
    ("exempt-sender", request(sender="x@partner.example"), "DUNNO"),
    ("unknown-client", request(client="unknown", sender="bob@example.org"), "DUNNO"),
    ("scoped-client", request(client="fe80::1%eth0", sender="bob@example.org"), "DUNNO"),  # link-local: no relay
    ("scoped-v4-mapped", request(client="::ffff:57.129.134.99%2", sender="bob@example.org"), "DUNNO"),
    ("bad-sender", request(sender="not an address"), "DUNNO"),
    ("no-equals", b"request=smtpd_access_policy\nthis line is wrong\n\n", "DUNNO"),
    ("repeated", b"sender=a@b.org\nsender=c@d.org\n\n", "DUNNO"),
]


@pytest.mark.parametrize("payload,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_answers(policy, payload: bytes, expected: str) -> None:
    _, port = policy
    [answer] = converse(port, payload)
    assert answer.startswith(expected) if expected == DEFER else answer == expected


def test_the_reject_text_names_the_page_and_stays_one_line(policy) -> None:
    _, port = policy
    [answer] = converse(port, request(sender="eve\r\nX-Injected: yes@example.org".replace("\r\n", "%0d%0a")))
    [answer2] = converse(port, request(sender="bob@example.org"))
    assert answer2 == DEFER + "sender=bob%40example.org&ip=57.129.134.63"
    assert "\n" not in answer and "\r" not in answer


def test_requests_are_pipelined_on_one_connection(policy) -> None:
    _, port = policy
    answers = converse(port, request() + request(sender="bob@example.org") + request(sender=""), replies=3)
    assert [a.split(" ")[0] for a in answers] == ["DUNNO", "451", "DUNNO"]


def test_a_100kB_request_fails_open_and_the_server_lives_on(policy) -> None:
    _, port = policy
    answers = converse(port, request(ccert_subject="x" * 100_000))
    assert answers == ["DUNNO"]
    huge_line = b"sender=" + b"a" * 200_000 + b"\n\n"
    assert converse(port, huge_line) == ["DUNNO"]
    assert converse(port, request()) == ["DUNNO"]


@pytest.mark.parametrize("ending", [b"\r\n", b"\n"], ids=["crlf", "lf"])
def test_either_line_ending_is_answered_at_once(policy, ending: bytes) -> None:
    """A client ending lines with CR LF is answered at once, not after the idle timeout."""
    _, port = policy
    started = time.monotonic()
    crlf = [request(), request(sender="bob@example.org"), b"request=smtpd_access_policy\n\n", b"\n"]
    payloads = [p.replace(b"\n", ending) for p in crlf]
    for payload, expected in zip(payloads, ["DUNNO", "451", "DUNNO", "DUNNO"]):
        assert [a.split(" ")[0] for a in converse(port, payload)] == [expected]
    pipelined = converse(port, b"".join(payloads), replies=4)
    assert [a.split(" ")[0] for a in pipelined] == ["DUNNO", "451", "DUNNO", "DUNNO"]
    assert time.monotonic() - started < 60  # converse's socket timeout is 10 s; the idle timeout 300 s


def test_a_scoped_client_address_is_no_relay() -> None:
    from fswl.policy.rules import Rules
    from fswl.policy.settings import PolicySettings

    rules = Rules(PolicySettings(), "http://127.0.0.1:8025")
    for client in ("fe80::1%eth0", "fe80::1%25", "2001:db8::1%0"):
        decision = rules.screen({"client_address": client, "sender": "bob@example.org"})
        assert decision.action == "DUNNO" and not decision.challenge and "scope" in decision.reason


def test_half_closed_and_abandoned_connections(policy) -> None:
    _, port = policy
    assert converse(port, request(), shutdown=True) == ["DUNNO"]
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(b"request=smtpd_access_policy\nclient_add")  # and hang up mid-request
    assert converse(port, request()) == ["DUNNO"]


def test_listing_takes_effect_on_the_retry(policy) -> None:
    home, port = policy
    assert converse(port, request(sender="newcomer@example.org"))[0].startswith("451 ")
    home.whitelist.add("newcomer@example.org", "57.129.134.63")
    deadline = time.monotonic() + 2
    while converse(port, request(sender="newcomer@example.org")) != ["DUNNO"]:
        assert time.monotonic() < deadline, "the new listing was not seen within 2 s"
        time.sleep(0.05)


@pytest.mark.parametrize("lines,message", [
    ([b"x"], "not a name=value line"),
    ([b"=value"], "not a name=value line"),
    ([b"a b=c"], "not a name=value line"),
    ([b"a=1"] * 2, "a given twice"),
    ([b"a%d=1" % i for i in range(65)], "more than 64 attributes"),
    ([b"a=" + b"x" * 5000], "longer than 4096 bytes"),
])
def test_parse_request_refuses(lines, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        parse_request(lines)


def test_format_action_is_one_line() -> None:
    assert format_action("DUNNO") == b"action=DUNNO\n\n"
    with pytest.raises(ValueError):
        format_action("451 x\naction=OK")
