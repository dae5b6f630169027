"""Reputation quotas: how many messages an unlisted relay (or IPv6 /64) may pass per hour, and why.

A pure fold over the event log (fswl.history) plus the senders the tree
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
from fswl.history import Event
from fswl.names import IPAddress, IPNetwork, parse_address

#: The window a quota counts over.
HOUR = 3600.0
DAY = 86400.0
#: Distinct senders (or domains) remembered per relay; a record needs no more to reach any quota.
MAX_SENDERS = 64
#: Abuse report times remembered per relay.
MAX_ABUSE = 8


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


class Reputation:
    """The quota table: fed events, asked per unlisted message. Thread-safe."""

    def __init__(self, settings: ReputationSettings, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.clock = clock
        self.records: OrderedDict[IPNetwork, Record] = OrderedDict()
        self.lock = threading.Lock()

    def key(self, address: IPAddress) -> IPNetwork:
        """The relay a quota belongs to: the IPv4 address, or the IPv6 /64 (ipv6_prefix)."""
        plen = 32 if address.version == 4 else self.settings.ipv6_prefix
        return ipaddress.ip_network((address, plen), strict=False)

    def apply(self, events: Iterable[Event]) -> int:
        """Fold events into the table; returns how many were used."""
        used = 0
        with self.lock:
            for event in events:
                try:
                    address = parse_address(event.ip)
                except BadRelay:
                    continue
                record = self._record(self.key(address), event.time)
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
                used += 1
        return used

    def score(self, address: IPAddress, listed: Iterable[str] = ()) -> Score:
        """The quota for ``address`` now; ``listed`` are senders the tree lists there (evidence too)."""
        key = self.key(address)
        now = self.clock()
        settings = self.settings
        with self.lock:
            record = self.records.get(key)
            confirmed = set(record.confirmed) if record else set()
            spf_domains = len(record.spf_domains) if record else 0
            abuse = list(record.abuse) if record else []
            used = sum(1 for t in record.admitted if now - t < HOUR) if record else 0
            first = record.first if record else None
        for sender in listed:
            if "@" in sender and not sender.startswith("*@") and len(confirmed) < MAX_SENDERS:
                confirmed.add(sender)
        age_days = (now - first) / DAY if first is not None else 0.0
        parts = [
            ("base quota", float(settings.base_quota)),
            (f"{len(confirmed)} confirmed or listed sender(s) x {settings.per_confirmed}",
             float(len(confirmed) * settings.per_confirmed)),
            (f"{spf_domains} domain(s) with an SPF pass x {settings.per_spf_pass}",
             float(spf_domains * settings.per_spf_pass)),
            (f"{age_days:.1f} day(s) since first recorded x {settings.per_day:g}", age_days * settings.per_day),
        ]
        quota = min(settings.max_quota, int(sum(value for _, value in parts)))
        blocked = ""
        recent = [t for t in abuse if now - t < settings.abuse_days * DAY]
        if recent:
            until = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(max(recent) + settings.abuse_days * DAY))
            blocked = f"{len(recent)} abuse report(s) in the last {settings.abuse_days:g} days: zero until {until}"
            quota = 0
        return Score(key, max(quota, 0), used, parts, blocked, first)

    def admit(self, address: IPAddress, listed: Iterable[str] = ()) -> bool:
        """Whether one more message from this unlisted relay fits its quota; counts it if so."""
        score = self.score(address, listed)
        if score.used >= score.quota:
            return False
        now = self.clock()
        with self.lock:
            record = self._record(score.key, now)
            record.last = now
            self._note_admitted(record, now)
        return True

    def _record(self, key: IPNetwork, when: float) -> Record:
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

