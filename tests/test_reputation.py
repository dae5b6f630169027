"""Reputation quotas, driven through `fswl serve policy` over a socket and `fswl reputation` as a user would."""

from __future__ import annotations

import time

import pytest

from fswl.errors import BadInput
from fswl.store.events import Event, EventLog, HistorySettings, Tail, make_event
from fswl.names import parse_address
from fswl.reputation.model import Reputation, ReputationSettings
from tests.harness.dnsd import fswl_serve
from tests.test_policy import converse, request

CONFIG = """
[reputation]
enabled = true
base_quota = 1
per_confirmed = 2
per_spf_pass = 1
per_day = 0
poll_seconds = 0.1
"""


def answers(port: int, client: str, senders: list[str]) -> list[str]:
    return [converse(port, request(client=client, sender=s))[0].split(" ")[0] for s in senders]


def wait_for(predicate, what: str, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_quota_grows_with_confirmations_and_drops_to_zero_on_abuse(home, fswl) -> None:
    home.config_path.write_text(CONFIG)
    relay = "2001:db8:5::10"
    with fswl_serve(home.root, "policy") as port:
        # no record: the base quota of one message an hour, then the usual 451
        assert answers(port, relay, ["a@new.example", "b@new.example"]) == ["DUNNO", "451"]
        # another address in the same /64 shares the quota; another /64 has its own
        assert answers(port, "2001:db8:5::11", ["c@new.example"]) == ["451"]
        assert answers(port, "2001:db8:6::10", ["c@new.example"]) == ["DUNNO"]
        # two senders confirmed from the /64 (by another process): 1 + 2 x 2 = 5 an hour, 1 used
        fswl("reputation", "record", "confirm", "2001:db8:5::99", "dave@umkc.edu", check=True)
        fswl("reputation", "record", "confirm", "2001:db8:5::98", "erin@umkc.edu", check=True)
        time.sleep(10 * 0.1)  # ten polls
        assert answers(port, relay, ["e@new.example"] * 5) == ["DUNNO", "DUNNO", "DUNNO", "DUNNO", "451"]
        shown = fswl("reputation", "show", relay, check=True).stdout
        wait_for(lambda: "5 used in the last hour" in fswl("reputation", "show", relay).stdout,
                 "the policy service did not log its admissions")
        assert "quota: 5 message(s)/hour" in shown and "2 confirmed or listed sender(s) x 2" in shown
        # an abuse report: zero, whatever the record
        fswl("reputation", "record", "abuse", "2001:db8:5::77", check=True)
        wait_for(lambda: answers(port, "2001:db8:5::12", ["f@new.example"]) == ["451"], "abuse did not zero the quota")
        shown = fswl("reputation", "show", relay, check=True).stdout
        assert "quota: 0 message(s)/hour" in shown and "blocked: 1 abuse report(s)" in shown
    # a restart replays the log: still zero
    with fswl_serve(home.root, "policy") as port:
        assert answers(port, relay, ["g@new.example"]) == ["451"]
        assert answers(port, "2001:db8:6::10", ["c@new.example"]) == ["451"]  # its one message was used


def test_two_policy_processes_share_one_quota(home, fswl) -> None:
    home.config_path.write_text(CONFIG.replace("base_quota = 1", "base_quota = 3"))
    relay = "198.51.100.44"
    with fswl_serve(home.root, "policy") as first, fswl_serve(home.root, "policy") as second:
        assert answers(first, relay, ["a@x.example"] * 3) == ["DUNNO"] * 3
        wait_for(lambda: answers(second, relay, ["b@x.example"]) == ["451"], "the second process did not see the first's")


def test_disabled_by_default_changes_nothing(home) -> None:
    with fswl_serve(home.root, "policy") as port:
        assert answers(port, "2001:db8:9::1", ["a@x.example"]) == ["451"]


def test_listed_senders_at_the_relay_count_as_evidence() -> None:
    table = Reputation(ReputationSettings(base_quota=0, per_confirmed=5, per_day=0))
    address = parse_address("192.0.2.1")
    assert table.score(address).quota == 0
    assert table.score(address, ["a@x.example", "*@lists.example", "*", "b@y.example"]).quota == 10


def test_quota_window_and_age(monkeypatch) -> None:
    now = [1_000_000.0]
    table = Reputation(ReputationSettings(base_quota=2, per_day=1.0), clock=lambda: now[0])
    address = parse_address("192.0.2.1")
    assert [table.admit(address) for _ in range(3)] == [True, True, False]
    now[0] += 3601  # an hour later the window is free again, and age adds nothing yet (0.04 days)
    assert table.admit(address)
    now[0] += 5 * 86400
    assert table.score(address).quota == 2 + 5


def test_event_log_rotates_and_the_tail_follows(tmp_path) -> None:
    log = EventLog(tmp_path, HistorySettings(file_bytes=400, files=2))
    tail = Tail(log)
    seen: list[Event] = []
    for n in range(40):
        log.append([make_event("confirm", f"192.0.2.{n}", f"u{n}@example.org")])
        if n % 3 == 0:  # more often than a file fills: nothing is deleted unread
            seen += tail.poll()
    seen += tail.poll()
    assert [e.ip for e in seen] == [f"192.0.2.{n}" for n in range(40)]
    kept = list(log.read())
    assert len(log.files()) == 3 and kept[-1].ip == "192.0.2.39" and len(kept) < 40
    assert sum(p.stat().st_size for p in log.files()) <= 3 * 400


@pytest.mark.parametrize("line", [b"", b"{", b'{"t":1,"k":"nope","ip":"1.2.3.4"}', b'{"k":"abuse"}', b"[1]"])
def test_bad_lines_are_skipped(line: bytes) -> None:
    assert Event.from_line(line) is None


def test_events_take_addresses_networks_and_names(home) -> None:
    from fswl.store import events as history

    history.record_confirmation(home, "Dave@UMKC.edu", "2001:db8:7::/64", name="MX1.Example.ORG")
    history.record_abuse(home, "::ffff:192.0.2.9")
    history.record_spf_pass(home, "erin@umkc.edu", "192.0.2.10")
    history.record_seen(home, "fred@umkc.edu", "192.0.2.11", name="unknown")
    events = list(EventLog.of(home).read())
    assert [(e.kind, e.ip, e.sender, e.name) for e in events] == [
        ("confirm", "2001:db8:7::", "dave@umkc.edu", "mx1.example.org"), ("abuse", "192.0.2.9", "", ""),
        ("spf_pass", "192.0.2.10", "erin@umkc.edu", ""), ("seen", "192.0.2.11", "fred@umkc.edu", "")]
    with pytest.raises(BadInput):
        history.record_confirmation(home, "dave@umkc.edu", "not an ip")


def _append_many(root: str, writer: int) -> None:
    log = EventLog(root, HistorySettings(file_bytes=4000, files=200))
    for n in range(300):
        log.append([make_event("seen", f"10.{writer}.{n // 256}.{n % 256}", f"w{writer}n{n}@example.org")])


def test_processes_appending_while_the_log_rotates_lose_and_break_nothing(tmp_path) -> None:
    import multiprocessing

    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_append_many, args=(str(tmp_path), w)) for w in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    log = EventLog(tmp_path, HistorySettings(file_bytes=4000, files=200))
    lines = [line for path in log.files() if path.exists() for line in path.read_bytes().splitlines()]
    assert all(Event.from_line(line) is not None for line in lines)
    assert sorted(e.sender for e in log.read()) == sorted(f"w{w}n{n}@example.org" for w in range(4) for n in range(300))
    assert len(log.files()) > 20  # it did rotate, many times
