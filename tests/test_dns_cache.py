"""ReplyCache: remembered replies go when the index changes, when they are old, and misses stay out when asked;
and what it answers is what the resolver answers."""

from __future__ import annotations

import random

import dns.message
import dns.query

from fswl.dns.cache import CACHE_SECONDS, ReplyCache
from fswl.app.home import Home
from tests.harness.dnsd import fswl_serve
from tests.test_dns import ROWS, ZONE, add_names_table_entries

HIT = b"\x84\x00\x00\x01\x00\x01\x00\x00\x00\x00answer"
MISS = b"\x84\x03\x00\x01\x00\x00\x00\x01\x00\x00soa"


class FakeIndex:
    generation = 7


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_reply_is_kept_until_the_index_changes() -> None:
    index = FakeIndex()
    cache = ReplyCache(index, clock=Clock())
    assert cache.current().get(b"q") is None
    cache.put(b"q", HIT, index.generation)
    assert cache.current().get(b"q") == HIT
    index.generation += 1
    assert cache.current().get(b"q") is None


def test_a_reply_made_before_a_change_is_not_kept() -> None:
    index = FakeIndex()
    cache = ReplyCache(index, clock=Clock())
    cache.current().get(b"q")
    cache.put(b"q", HIT, index.generation - 1)
    assert cache.current().get(b"q") is None


def test_replies_expire_so_hits_are_still_recorded() -> None:
    index, clock = FakeIndex(), Clock()
    cache = ReplyCache(index, clock=clock)
    cache.current().get(b"q")
    cache.put(b"q", HIT, index.generation)
    clock.now += CACHE_SECONDS
    assert cache.current().get(b"q") is None


def test_with_challenges_on_a_miss_only_answers_are_kept() -> None:
    index = FakeIndex()
    cache = ReplyCache(index, answers_only=True, clock=Clock())
    cache.current().get(b"q")
    cache.put(b"hit", HIT, index.generation)
    cache.put(b"miss", MISS, index.generation)
    assert cache.current().get(b"hit") == HIT and cache.current().get(b"miss") is None


def test_a_full_cache_starts_again_rather_than_grow() -> None:
    index = FakeIndex()
    cache = ReplyCache(index, size=3, clock=Clock())
    cache.current().get(b"q")
    for n in range(3):
        cache.put(b"q%d" % n, HIT, index.generation)
    assert len(cache.replies) == 3
    cache.put(b"q3", HIT, index.generation)
    assert list(cache.replies) == [b"q3"]


def test_cached_replies_are_the_replies_without_the_cache(tmp_path) -> None:
    """Over real sockets, `[dns] reply_cache = 0` and the default give the same replies, ID and case included."""
    replies = {}
    for size in (0, 250_000):
        root = tmp_path / f"cache-{size}"
        add_names_table_entries(Home(root).whitelist)
        (root / "fswl.toml").write_text(f'[dns]\nzone = "{ZONE}"\nreply_cache = {size}\n')
        rng = random.Random(5)  # the same questions, IDs and letter case for both servers
        questions = [("".join(c.upper() if rng.random() < 0.5 else c for c in f"{name}.{ZONE}"), rdtype,
                      rng.random() < 0.5) for name, _rcode, _values in ROWS for rdtype in ("A", "TXT")]
        with fswl_serve(root, "dns") as port:
            got = []
            for _round in range(3):  # the second and third rounds come from the cache, where there is one
                for asked, rdtype, edns in questions:
                    query = dns.message.make_query(asked, rdtype, use_edns=edns)
                    query.id = rng.randrange(65536)
                    reply = dns.query.udp(query, "127.0.0.1", port=port, timeout=5)
                    assert reply.id == query.id and reply.question[0].name.to_text() == asked + "."
                    got.append(reply.to_wire())
            replies[size] = got
    assert [_without_serial(w) for w in replies[0]] == [_without_serial(w) for w in replies[250_000]]


def _without_serial(wire: bytes) -> tuple:
    """A reply's contents but the SOA serial, which follows each server's clock."""
    message = dns.message.from_wire(wire)
    return (message.id, message.flags, message.rcode(), message.question[0].name.to_text(),
            [rrset.to_text() for rrset in message.answer],
            [(rrset.name.to_text(), rrset.ttl, rrset[0].rname.to_text()) for rrset in message.authority])
