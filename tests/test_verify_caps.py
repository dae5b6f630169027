"""Never a backscatter cannon: forged misses produce exactly as many challenges as the caps allow."""

from __future__ import annotations

import ipaddress
import multiprocessing
import random
import string
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from fswl.errors import BadCode, VerifyRefused
from fswl.store.events import EventLog
from fswl.app.home import Home
from fswl.verify import codes, screen
from fswl.verify.caps import Caps, Limits, registrable_domain
from fswl.verify.settings import VerifySettings
from fswl.verify import verifier as verifier_module
from fswl.verify.verifier import Verifier
from fswl.verify.worker import ChallengeWorker
from fswl.web.captchas import Captchas
from tests.conftest import run_fswl
from tests.harness.mail import mail_sink

ZONE = "wl.test"


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def make(home: Home, sink_port: int, clock=time.time, **changes) -> Verifier:
    settings = VerifySettings(**{"enabled": True, "smarthost": f"127.0.0.1:{sink_port}", "spf_refuse": (), **changes})
    return Verifier(home, home.whitelist, settings, ZONE, "http://127.0.0.1:8025", clock=clock)


def random_local(rng: random.Random) -> str:
    return "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(3, 12)))


def random_ip(rng: random.Random) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(rng.randrange(0x01000000, 0xDF000000))


def test_10000_forged_misses_yield_exactly_the_capped_number(home: Home) -> None:
    rng = random.Random(5782)
    domains = [f"d{i}.example" for i in range(20)]
    with mail_sink() as (sink, port):
        verifier = make(home, port, per_address_per_hour=2, per_domain_per_hour=3, global_per_hour=100)
        try:
            # Phase 1: 5,000 random senders at 20 domains: the per-domain cap binds (20 x 3).
            sent = sum(verifier.challenge(f"{random_local(rng)}@{rng.choice(domains)}", random_ip(rng)) is None
                       for _ in range(5000))
            assert sent == 60
            # Phase 2: 5,000 random senders at random domains: the global cap binds (100 in all).
            sent += sum(verifier.challenge(f"{random_local(rng)}@{random_local(rng)}.example", random_ip(rng)) is None
                        for _ in range(5000))
            assert sent == 100
            assert len(sink.messages) == 100
            counts = verifier.caps.counters()
            assert counts["challenges_sent"] == 100
            assert counts["refused: per-domain hourly cap"] + counts["refused: global hourly cap"] == 9900
            assert verifier.stats()["pending"] == 100
        finally:
            verifier.close()


def test_one_challenge_per_pair_per_period_and_per_address_cap(home: Home) -> None:
    clock = Clock()
    with mail_sink() as (sink, port):
        verifier = make(home, port, clock=clock, per_address_per_hour=3, pair_period_seconds=86400)
        try:
            relay = ipaddress.ip_address("192.0.2.1")
            assert [verifier.challenge("ann@example.org", relay) for _ in range(5)] == [
                None] + ["already challenged for this relay"] * 4
            results = [verifier.challenge("ann@example.org", ipaddress.ip_address(f"192.0.2.{i}")) for i in range(2, 6)]
            assert results == [None, None, "per-address hourly cap", "per-address hourly cap"]
            clock.now += 3601  # a new hour: the address cap is free again, the pair still waits a day
            assert verifier.challenge("ann@example.org", ipaddress.ip_address("192.0.2.4")) is None
            assert verifier.challenge("ann@example.org", relay) == "already challenged for this relay"
            clock.now += 86400
            assert verifier.challenge("ann@example.org", relay) is None
            assert len(sink.to("ann@example.org")) == 5
        finally:
            verifier.close()


@pytest.mark.parametrize("sender,reason", [
    ("list-bounces+bob=example.com@lists.example.org", "VERP or tagged address"),
    ("a" * 45 + "@example.org", "VERP or tagged address"),
    ("postmaster@example.org", "role or bounce address"),
    ("mailer-daemon@example.org", "role or bounce address"),
    ("<>", "unparsable sender"),
    ("*@example.org", "null or wildcard sender"),
    ('"buy now"@example.org', "unusual local part"),
    ("x\r\nBcc: victim@example.org@example.org", "unusual local part"),
    ("bob@" + ZONE, "our own zone"),
], ids=["verp", "long", "postmaster", "mailer-daemon", "null", "wildcard", "quoted", "header-injection", "own-zone"])
def test_no_challenge_to(home: Home, sender: str, reason: str) -> None:
    with mail_sink() as (sink, port):
        verifier = make(home, port)
        try:
            assert verifier.challenge(sender, ipaddress.ip_address("192.0.2.1")) == reason
            assert sink.messages == []
        finally:
            verifier.close()


def code_of(message) -> str:
    return message["Reply-To"].split("@")[0].removeprefix("confirm-")


def test_forged_expired_replayed_and_foreign_codes_are_refused(home: Home) -> None:
    clock = Clock()
    with mail_sink() as (sink, port):
        verifier = make(home, port, clock=clock, code_ttl_seconds=3600)
        try:
            relay = ipaddress.ip_address("192.0.2.9")
            assert verifier.challenge("kim@example.org", relay) is None
            code = code_of(sink.wait_for("kim@example.org"))
            tampered = code[:-3] + ("aaa" if code[-3:] != "aaa" else "bbb")
            with pytest.raises(BadCode, match="not valid here"):
                verifier.confirm(tampered, "test")
            foreign = codes.sign(b"k" * 32, codes.decode(code).id, codes.decode(code).expires, "confirm",
                                 "kim@example.org", "192.0.2.9")
            with pytest.raises(BadCode, match="not valid here"):
                verifier.confirm(foreign, "test")
            with pytest.raises(BadCode, match="not a confirmation code"):
                verifier.confirm("../../db/x", "test")
            clock.now += 3601
            with pytest.raises(BadCode, match="expired"):
                verifier.confirm(code, "test")
            clock.now -= 3601
            assert verifier.confirm(code.upper(), "test").sender == "kim@example.org"
            with pytest.raises(BadCode, match="already used"):
                verifier.confirm(code, "test")
            assert home.whitelist.lookup("kim@example.org", "192.0.2.9") is not None
            confirmations = [(e.ip, e.sender) for e in EventLog.of(home).read() if e.kind == "confirm"]
            assert confirmations == [("192.0.2.9", "kim@example.org")]  # evidence for reputation, correlation
        finally:
            verifier.close()


def test_the_key_is_private_and_made_once(home: Home) -> None:
    path = home.root / "verify" / "key"
    first = codes.load_key(path)
    assert codes.load_key(path) == first
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_smarthost_that_refuses_leaves_no_pending_code(home: Home) -> None:
    verifier = make(home, 1)  # nothing listens on port 1
    try:
        assert verifier.challenge("lee@example.org", ipaddress.ip_address("192.0.2.1")) == "sending failed"
        assert verifier.stats()["pending"] == 0
        assert verifier.caps.counters()["send_failed"] == 1
    finally:
        verifier.close()


def test_spf_runs_after_the_cheap_checks_and_is_cached(home: Home, monkeypatch) -> None:
    """An already-challenged pair costs no SPF evaluation; other senders at the same domain and relay reuse one."""
    calls = []
    monkeypatch.setattr(screen, "spf_result", lambda settings, sender, address: calls.append((sender, str(address))) or "none")
    with mail_sink() as (sink, port):
        verifier = make(home, port, spf_refuse=("fail",))
        try:
            relay = ipaddress.ip_address("192.0.2.60")
            assert verifier.challenge("nia@example.org", relay) is None
            assert verifier.challenge("nia@example.org", relay) == "already challenged for this relay"
            assert verifier.challenge("oli@example.org", relay) is None
            assert calls == [("nia@example.org", "192.0.2.60")]
            assert verifier.caps.counters()["spf_checks"] == 1
        finally:
            verifier.close()


def test_a_code_survives_a_store_that_cannot_be_written(home: Home, monkeypatch) -> None:
    with mail_sink() as (sink, port):
        verifier = make(home, port)
        try:
            assert verifier.challenge("pia@example.org", ipaddress.ip_address("192.0.2.61")) is None
            code = code_of(sink.wait_for("pia@example.org"))
            broken = home.whitelist

            def refuse(sender: str, relay: str) -> None:
                raise PermissionError(13, "Permission denied", str(home.root / "db"))

            monkeypatch.setattr(type(broken), "add", lambda self, sender, relay: refuse(sender, relay))
            with pytest.raises(VerifyRefused, match="cannot be written just now; nothing was changed"):
                verifier.confirm(code, "test")
            monkeypatch.undo()
            assert verifier.confirm(code, "test").sender == "pia@example.org", "the code still works"
            assert home.whitelist.lookup("pia@example.org", "192.0.2.61") is not None
        finally:
            verifier.close()


def test_the_per_domain_cap_counts_the_registrable_domain(home: Home) -> None:
    rng = random.Random(11)
    with mail_sink() as (sink, port):
        verifier = make(home, port, per_domain_per_hour=3, per_address_per_hour=100)
        try:
            sent = sum(verifier.challenge(f"{random_local(rng)}@{random_local(rng)}.{random_local(rng)}.example.co.uk",
                                          random_ip(rng)) is None for _ in range(50))
            assert sent == 3
            assert verifier.challenge("ann@other.co.uk", random_ip(rng)) is None, "another registrant has its own cap"
        finally:
            verifier.close()


def test_the_public_suffix_list_needs_no_network() -> None:
    script = ("import socket\n"
              "def refuse(*a, **k): raise OSError('no network in this test')\n"
              "socket.socket.connect = refuse; socket.getaddrinfo = refuse\n"
              "from fswl.verify.caps import registrable_domain\n"
              "print(registrable_domain('a.b.example.co.uk'), registrable_domain('x.github.io'))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.split() == ["example.co.uk", "x.github.io"]


def test_a_solved_captcha_stays_used_in_another_process(home: Home) -> None:
    key = codes.load_key(home.root / "verify" / "key")
    limits = Limits(86400, 3, 20, 200)
    first = Caps(home.root / "verify" / "state.sqlite", limits)
    second = Caps(home.root / "verify" / "state.sqlite", limits)  # another process, or the same after a restart
    try:
        one, two = Captchas(key, first, 5, 600, "ABCDE"), Captchas(key, second, 5, 600, "ABCDE")
        token = one.issue()
        assert one.solve(token, "abcde")
        assert not two.solve(token, "abcde")
        assert not one.solve(token, "abcde")
        assert two.answer("a-\u00b2-b") is None and two.answer("a-9999999999-\u00e9") is None
    finally:
        first.close()
        second.close()


def test_stats_read_and_create_nothing(home: Home) -> None:
    shown = run_fswl(home, "verify", "stats", check=True).stdout
    assert "pending: 0" in shown and "sent last hour: 0 of 200" in shown
    assert not (home.root / "verify").exists(), "no key, no database made by a read"
    with mail_sink() as (sink, port):
        verifier = make(home, port)
        try:
            assert verifier.challenge("ria@example.org", ipaddress.ip_address("192.0.2.62")) is None
        finally:
            verifier.close()
    (home.root / "verify").chmod(0o500)
    try:
        shown = run_fswl(home, "verify", "stats", check=True).stdout
    finally:
        (home.root / "verify").chmod(0o700)
    assert "pending: 1" in shown and "sent last hour: 1 of 200" in shown and "challenges_sent: 1" in shown


def test_the_event_log_is_rotated(home: Home, monkeypatch) -> None:
    monkeypatch.setattr(verifier_module, "EVENTS_LOG_BYTES", 200)
    with mail_sink() as (sink, port):
        verifier = make(home, port, per_address_per_hour=100, per_domain_per_hour=100)
        try:
            for i in range(20):
                assert verifier.challenge(f"sam{i}@example.org", ipaddress.ip_address("192.0.2.63")) is None
        finally:
            verifier.close()
    log = home.root / "verify" / "events.log"
    assert log.stat().st_size <= 200 + 100 and log.with_name("events.log.1").stat().st_size <= 200 + 100
    assert "sam19@example.org" in log.read_text()


def test_the_worker_queues_a_pair_once_while_it_waits(home: Home) -> None:
    class SlowVerifier:
        def __init__(self) -> None:
            self.release = threading.Event()
            self.calls: list[tuple[str, str]] = []
            self.caps = Caps(home.root / "verify" / "state.sqlite", Limits(86400, 3, 20, 200))

        def challenge(self, sender: str, address) -> None:
            self.calls.append((sender, str(address)))
            self.release.wait(10)

        def prune(self) -> int:
            return 0

    verifier = SlowVerifier()
    worker = ChallengeWorker(verifier, size=100, workers=1)  # type: ignore[arg-type]
    try:
        relay = ipaddress.ip_address("192.0.2.64")
        worker.submit("busy@example.org", ipaddress.ip_address("192.0.2.65"))  # occupies the one thread
        for _ in range(5):
            worker.submit("tom@example.org", relay)
        worker.submit("Tom@example.org", relay)
        verifier.release.set()
        deadline = time.monotonic() + 10
        while len(verifier.calls) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        worker.stop()
        verifier.caps.close()
    assert verifier.calls == [("busy@example.org", "192.0.2.65"), ("tom@example.org", "192.0.2.64")]
    counts = Caps(home.root / "verify" / "state.sqlite", Limits(86400, 3, 20, 200)).counters()
    assert counts["skipped: already queued"] == 5


def _open_caps(path: str, barrier, results) -> None:
    barrier.wait()  # all at once, on a database none has made yet
    try:
        caps = Caps(Path(path), Limits(pair_period=3600, per_address=5, per_domain=50, global_=100))
        results.put(caps.take("a@example.org", "192.0.2.1") or "taken")
    except Exception as exc:  # what the test counts: any refusal to open
        results.put(repr(exc))


def test_processes_opening_a_new_database_at_once_all_get_it(tmp_path) -> None:
    """`fswl serve` processes starting together: before the fix, about one round in three said "database is locked"."""
    context = multiprocessing.get_context("fork")
    registrable_domain("example.org")  # the suffix list parsed once, before the forks
    for round_ in range(10):
        path = tmp_path / f"round{round_}" / "state.sqlite"
        barrier, results = context.Barrier(4), context.Queue()
        openers = [context.Process(target=_open_caps, args=(str(path), barrier, results)) for _ in range(4)]
        for opener in openers:
            opener.start()
        for opener in openers:
            opener.join(30)
        outcomes = sorted(results.get(timeout=5) for _ in openers)
        assert outcomes == ["already challenged for this relay"] * 3 + ["taken"], outcomes  # and exactly one mail
