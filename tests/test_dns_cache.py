"""ReplyCache: remembered replies go when the index changes, when they are old, and misses stay out when asked."""

from __future__ import annotations

from fswl.dns.cache import CACHE_SECONDS, ReplyCache

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
    assert cache.get(b"q") is None
    cache.put(b"q", HIT, index.generation)
    assert cache.get(b"q") == HIT
    index.generation += 1
    assert cache.get(b"q") is None


def test_a_reply_made_before_a_change_is_not_kept() -> None:
    index = FakeIndex()
    cache = ReplyCache(index, clock=Clock())
    cache.get(b"q")
    cache.put(b"q", HIT, index.generation - 1)
    assert cache.get(b"q") is None


def test_replies_expire_so_hits_are_still_recorded() -> None:
    index, clock = FakeIndex(), Clock()
    cache = ReplyCache(index, clock=clock)
    cache.get(b"q")
    cache.put(b"q", HIT, index.generation)
    clock.now += CACHE_SECONDS
    assert cache.get(b"q") is None


def test_with_challenges_on_a_miss_only_answers_are_kept() -> None:
    index = FakeIndex()
    cache = ReplyCache(index, answers_only=True, clock=Clock())
    cache.get(b"q")
    cache.put(b"hit", HIT, index.generation)
    cache.put(b"miss", MISS, index.generation)
    assert cache.get(b"hit") == HIT and cache.get(b"miss") is None


def test_a_full_cache_starts_again_rather_than_grow() -> None:
    index = FakeIndex()
    cache = ReplyCache(index, size=3, clock=Clock())
    cache.get(b"q")
    for n in range(3):
        cache.put(b"q%d" % n, HIT, index.generation)
    assert len(cache.replies) == 3
    cache.put(b"q3", HIT, index.generation)
    assert list(cache.replies) == [b"q3"]
