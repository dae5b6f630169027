"""`fswl correlate` on synthetic histories: two ISPs of 20 relays each, a forwarder, and noise."""

from __future__ import annotations

import ipaddress
import os
import random

import pytest

from fswl.populate.correlate import org_domain, propose, sender_sets
from fswl.store.events import EventLog, make_event
from fswl.store.walk import walk
from tests.harness.authdns import ZoneResolver, authoritative_dns

ISP_A = [f"203.0.113.{n}" for n in range(1, 21)]  # one /16
ISP_B = [f"198.51.100.{n}" for n in range(1, 11)] + [f"198.18.7.{n}" for n in range(1, 11)]  # two /16s
FORWARDER = "100.64.5.5"
NOISE = [f"192.0.2.{n}" for n in range(1, 31)] + [f"2001:db8:{n:x}::25" for n in range(1, 6)]


def build_history(home) -> None:
    """Half of what is known comes from the tree, half from the event log."""
    rng = random.Random(8)
    wl = home.whitelist
    events = []
    customers_a = [f"user{n}@a-customer{n % 7}.example" for n in range(50)]
    customers_b = [f"client{n}@b-customer{n % 5}.example" for n in range(50)]
    strangers = [f"s{n}@elsewhere{n % 40}.example" for n in range(1000)]
    plan = [(relay, rng.sample(customers_a, 35)) for relay in ISP_A]
    plan += [(relay, rng.sample(customers_b, 35)) for relay in ISP_B]
    plan += [(FORWARDER, rng.sample(customers_a, 30))]
    plan += [(relay, rng.sample(strangers, 5) + rng.sample(customers_a, 1)) for relay in NOISE]
    for relay, senders in plan:
        for n, sender in enumerate(senders):
            if n % 2:
                events.append(make_event(rng.choice(["confirm", "seen"]), relay, sender))
            else:
                wl.add(sender, relay)
    wl.add("solo@a-only.example", ISP_A[0])
    EventLog.of(home).append(events)


def ptr_zone() -> str:
    lines = ["$TTL 300"]
    for relay, name in [(r, f"out-{i}.mail.ispa.example") for i, r in enumerate(ISP_A)] + \
                       [(r, f"smtp{i}.ispb.example") for i, r in enumerate(ISP_B)] + [(FORWARDER, "relay.forwarder.example")]:
        lines.append(f"{ipaddress.ip_address(relay).reverse_pointer}. PTR {name}.")
    return "\n".join(lines) + "\n"


def groups_of(proposals) -> list[list[str]]:
    return sorted(sorted(str(r) for r in p.relays) for p in proposals)


@pytest.fixture
def history(home):
    build_history(home)
    return home


def test_proposes_each_isp_per_network_and_holds_the_forwarder_apart(history) -> None:
    sets = sender_sets(walk(history.whitelist.tree), EventLog.of(history).read())
    proposals, held = propose(sets, threshold=0.3, min_senders=3)
    assert groups_of(proposals) == sorted([sorted(ISP_A), sorted(ISP_B[:10]), sorted(ISP_B[10:])])
    held_relays = {str(r) for p in held for r in (p.a, p.b)}
    assert FORWARDER in held_relays and not held_relays & {str(r) for r in NOISE}
    assert all(p.related == "same /16" for proposal in proposals for p in proposal.pairs)


def test_forced_the_forwarder_joins_isp_a(history) -> None:
    sets = sender_sets(walk(history.whitelist.tree), EventLog.of(history).read())
    proposals, held = propose(sets, threshold=0.3, min_senders=3, force=True)
    assert groups_of(proposals) == sorted([sorted(ISP_A + [FORWARDER]), sorted(ISP_B)])
    assert held == []


def test_names_recorded_with_events_join_networks_without_lookups(history) -> None:
    EventLog.of(history).append(make_event("confirm", relay, "client0@b-customer0.example", name=f"smtp{i}.ispb.example")
                                for i, relay in enumerate(ISP_B))
    names: dict = {}
    sets = sender_sets(walk(history.whitelist.tree), EventLog.of(history).read(), names)
    proposals, _held = propose(sets, threshold=0.3, min_senders=3, recorded=names)
    assert groups_of(proposals) == sorted([sorted(ISP_A), sorted(ISP_B)])
    assert [p.name for p in proposals if len(p.relays) == 20 and str(p.relays[0]).startswith("198.")] == ["ispb.example"]


def test_a_high_threshold_proposes_nothing(history) -> None:
    sets = sender_sets(walk(history.whitelist.tree), EventLog.of(history).read())
    assert propose(sets, threshold=0.9, min_senders=3) == ([], [])


def test_apply_with_ptr_names_links_and_check_matches_through_the_group(history, fswl) -> None:
    with authoritative_dns(ZoneResolver(ptr_zone())) as port:
        result = fswl("correlate", "--ptr", "--nameserver", f"127.0.0.1:{port}", "--apply", check=True)
    out = result.stdout
    assert "proposed group ispa.example: 20 relays" in out
    assert "proposed group ispb.example: 20 relays" in out  # one naming domain joins its two /16s
    assert "held apart: 100.64.0.0/16 ~ 203.0.0.0/16: 20 similar pair(s)" in out
    for relay in ISP_A:
        link = history.db / "ip4" / relay.replace(".", "/")
        assert link.is_symlink() and os.readlink(link).endswith("groups/ispa.example")
    assert (history.db / "ip4/198/18/7/3").is_symlink() and (history.db / "ip4/198/51/100/3").is_symlink()
    assert not (history.db / "ip4/100/64/5/5").is_symlink()
    check = fswl("check", "solo@a-only.example", ISP_A[-1])
    assert check.returncode == 0 and "via groups/ispa.example" in check.stdout
    assert fswl("check", "solo@a-only.example", FORWARDER).returncode == 1
    again = fswl("correlate", check=True).stdout  # linked relays are grouped: nothing new to propose
    assert "proposed group" not in again


@pytest.mark.parametrize("name,org", [("out12.mail.isp.example", "isp.example"), ("mx1.isp.co.uk", "isp.co.uk"),
                                      ("mail.example.com.", "example.com"), ("localhost", "localhost")])
def test_org_domain(name: str, org: str) -> None:
    assert org_domain(name) == org
