"""Reputation quotas: how many messages an unlisted relay (or IPv6 /64) may pass per hour, and why.

A pure fold over the event log (fswl.store.events) plus the senders the tree
lists at the relay: no I/O here, so the policy service can ask on its event
loop and `fswl reputation show` can explain the same numbers.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Callable, Iterable

from fswl.errors import BadRelay
from fswl.store.events import Event
from fswl.names import IPAddress, IPNetwork, parse_address

Key = tuple[int, int]  #: (IP version, address or /64 as an int)

#: The window a quota counts over.
HOUR = 3600.0
DAY = 86400.0
#: Distinct senders (or domains) remembered per relay; a record needs no more to reach any quota.
MAX_SENDERS = 64
#: Abuse report times remembered per relay.
MAX_ABUSE = 8
#: Events folded per hold of the lock.
APPLY_CHUNK = 1000


@dataclass(frozen=True)
class ReputationSettings:
    """[reputation] in fswl.toml."""

    #: Admit unlisted senders under a quota (policy service). Off: every unlisted pair gets the 451.
    enabled: bool = False
    #: Messages per hour for a relay with no record at all.
    base_quota: int = 0
    #: Added per distinct sender confirmed from (or listed at) the relay.
    per_confirmed: int = 5
    #: Added per distinct sender domain for which the relay passed SPF.
    per_spf_pass: int = 2
    #: Added per day since the relay was first recorded.
    per_day: float = 1.0
    #: No relay gets more than this per hour.
    max_quota: int = 100
    #: Days an abuse report keeps the relay's quota at zero.
    abuse_days: float = 30.0
    #: IPv6 relays are judged by this prefix (a host picks any address in its /64).
    ipv6_prefix: int = 64
    #: Seconds between reading other processes' events and writing this one's.
    poll_seconds: float = 1.0
    #: Relays remembered; the least recently active are forgotten beyond this.
    max_relays: int = 100_000


@dataclass
class Record:
    """What the log says about one relay key."""

    first: float
    last: float
    confirmed: set[str] = field(default_factory=set)
    spf_domains: set[str] = field(default_factory=set)
    abuse: list[float] = field(default_factory=list)
    admitted: deque[float] = field(default_factory=deque)


@dataclass(frozen=True)
class Score:
    """A relay's quota, with the parts that make it up."""

    key: IPNetwork
    quota: int
    used: int  #: messages admitted in the last hour
    parts: list[tuple[str, float]]  #: (explanation, contribution) before the cap
    blocked: str = ""  #: why the quota is zero regardless of the parts
    first_seen: float | None = None


@dataclass
class _Facts:
    """What a quota is computed from, read under the lock."""

    confirmed: int = 0
    spf_domains: int = 0
    age_days: float = 0.0
    abuse: int = 0
    last_abuse: float = 0.0
    used: int = 0
    first: float | None = None


class Reputation:
    """The quota table: fed events, asked per unlisted message. Thread-safe."""

    def __init__(self, settings: ReputationSettings, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.clock = clock
        self.records: OrderedDict[Key, Record] = OrderedDict()
        self.lock = threading.Lock()

    def key(self, address: IPAddress) -> IPNetwork:
        """The relay a quota belongs to: the IPv4 address, or the IPv6 /64 (ipv6_prefix)."""
        plen = 32 if address.version == 4 else self.settings.ipv6_prefix
        return ipaddress.ip_network((address, plen), strict=False)

    def _key(self, address: IPAddress) -> Key:
        # a tuple of ints: building an ipaddress network per request costs more than the rest
        if address.version == 4:
            return (4, int(address))
        return (6, int(address) >> (128 - self.settings.ipv6_prefix))

    def apply(self, events: Iterable[Event]) -> int:
        """Fold events into the table; returns how many were used.

        The lock is taken per chunk, so a large batch (a replay, another
        process's burst) never holds up the policy service's event loop for long.
        """
        used = 0
        batch = list(events)
        for start in range(0, len(batch), APPLY_CHUNK):
            with self.lock:
                for event in batch[start : start + APPLY_CHUNK]:
                    used += self._apply_one(event)
        return used

    def _apply_one(self, event: Event) -> int:
        try:
            address = parse_address(event.ip)
        except BadRelay:
            return 0
        record = self._record(self._key(address), event.time)
        record.first = min(record.first, event.time)
        record.last = max(record.last, event.time)
        if event.kind == "confirm" and event.sender:
            _add_capped(record.confirmed, event.sender)
        elif event.kind == "spf_pass" and event.sender:
            _add_capped(record.spf_domains, event.sender.rpartition("@")[2])
        elif event.kind == "abuse":
            record.abuse = sorted(record.abuse + [event.time])[-MAX_ABUSE:]
        elif event.kind == "seen":
            self._note_admitted(record, event.time)
        return 1

    def score(self, address: IPAddress, listed: Iterable[str] = ()) -> Score:
        """The quota for ``address`` now, explained; ``listed`` are senders the tree lists there (evidence too)."""
        settings = self.settings
        facts = self._facts(self._key(address), listed)
        parts = [
            ("base quota", float(settings.base_quota)),
            (f"{facts.confirmed} confirmed or listed sender(s) x {settings.per_confirmed}",
             float(facts.confirmed * settings.per_confirmed)),
            (f"{facts.spf_domains} domain(s) with an SPF pass x {settings.per_spf_pass}",
             float(facts.spf_domains * settings.per_spf_pass)),
            (f"{facts.age_days:.1f} day(s) since first recorded x {settings.per_day:g}",
             facts.age_days * settings.per_day),
        ]
        blocked = ""
        if facts.abuse:
            until = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(facts.last_abuse + settings.abuse_days * DAY))
            blocked = f"{facts.abuse} abuse report(s) in the last {settings.abuse_days:g} days: zero until {until}"
        return Score(self.key(address), self._quota(facts), facts.used, parts, blocked, facts.first)

    def admit(self, address: IPAddress, listed: Iterable[str] = ()) -> bool:
        """Whether one more message from this unlisted relay fits its quota; counts it if so."""
        key = self._key(address)
        facts = self._facts(key, listed)
        if facts.used >= self._quota(facts):
            return False
        now = self.clock()
        with self.lock:
            record = self._record(key, now)
            record.last = now
            self._note_admitted(record, now)
        return True

    def _facts(self, key: Key, listed: Iterable[str]) -> _Facts:
        now = self.clock()
        with self.lock:
            record = self.records.get(key)
            if record is None:
                facts = _Facts()
            else:
                recent = [t for t in record.abuse if now - t < self.settings.abuse_days * DAY]
                facts = _Facts(len(record.confirmed), len(record.spf_domains), (now - record.first) / DAY,
                               len(recent), max(recent, default=0.0),
                               sum(1 for t in record.admitted if now - t < HOUR), record.first)
            extra = [s for s in listed if "@" in s and not s.startswith("*@")]
            if extra:
                known = record.confirmed if record is not None else set()
                facts.confirmed = min(MAX_SENDERS, facts.confirmed + len(set(extra) - known))
        return facts

    def _quota(self, facts: _Facts) -> int:
        if facts.abuse:
            return 0
        s = self.settings
        total = (s.base_quota + facts.confirmed * s.per_confirmed + facts.spf_domains * s.per_spf_pass
                 + facts.age_days * s.per_day)
        return max(0, min(s.max_quota, int(total)))

    def _record(self, key: Key, when: float) -> Record:
        record = self.records.get(key)
        if record is None:
            record = self.records[key] = Record(when, when)
            while len(self.records) > self.settings.max_relays:
                self.records.popitem(last=False)
        else:
            self.records.move_to_end(key)
        return record

    def _note_admitted(self, record: Record, when: float) -> None:
        record.admitted.append(when)
        # only the last hour counts, and never more than a full quota of it
        while record.admitted and (when - record.admitted[0] >= HOUR or len(record.admitted) > self.settings.max_quota):
            record.admitted.popleft()


def _add_capped(items: set[str], value: str) -> None:
    if len(items) < MAX_SENDERS:
        items.add(value)

