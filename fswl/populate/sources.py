"""Import sources: which entries each import created, so a re-import replaces exactly those.

A source is a name (``--source spamhaus-dwl``, or ``spf:example.org`` for an
SPF import).  Its ledger, ``$FSWL_HOME/state/imports/NAME.list``, holds one
``sender<TAB>network`` line per tree-boundary entry the source lists and
created.  An entry that was already in the tree before a source listed it
(added by hand, or by a plain `fswl import`) is not claimed, so a later
re-import never removes it.  Two sources may claim the same entry; it goes
only when neither lists it any more.
"""

from __future__ import annotations

import fcntl
import os
import re
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

from fswl.errors import BadSource
from fswl.names import IPNetwork, boundary_networks, parse_relay, parse_sender, sender_to_name
from fswl.store import Whitelist
from fswl.util import atomic

#: Where ledgers live, under the home.
LEDGER_DIR = ("state", "imports")
LEDGER_SUFFIX = ".list"
#: Names an operator may give with --source (SPF imports use ``spf:DOMAIN``).
_SOURCE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,63}\Z")

Claim = tuple[str, IPNetwork]  #: (canonical sender, tree-boundary network)


def parse_source(name: str) -> str:
    """Validate an operator-given source name."""
    if not _SOURCE_NAME.match(name):
        raise BadSource(name[:80])
    return name


@dataclass
class ReplaceReport:
    """What one import of a source changed."""

    listed: int = 0  #: tree entries the source lists now
    added: int = 0  #: entries written (new or refreshed)
    removed: list[Claim] = field(default_factory=list)  #: entries that left the source and were removed
    not_claimed: int = 0  #: entries that were there before the source listed them (left alone later)


class Ledger:
    """The ledgers of every import source of one home."""

    def __init__(self, home_root: str | os.PathLike[str]) -> None:
        self.dir = Path(home_root).joinpath(*LEDGER_DIR)
        # Every source's claims, read once per Ledger (one CLI run) and kept
        # current by save(): an SPF import of a thousand domains must not
        # read a thousand ledgers a thousand times.
        self._cache: dict[str, set[Claim]] | None = None
        self._counts: Counter[Claim] = Counter()

    def path(self, source: str) -> Path:
        return self.dir / (source + LEDGER_SUFFIX)

    def sources(self) -> list[str]:
        """Every source with a ledger."""
        try:
            return sorted(p.name[: -len(LEDGER_SUFFIX)] for p in self.dir.iterdir() if p.name.endswith(LEDGER_SUFFIX))
        except FileNotFoundError:
            return []

    def claims(self, source: str) -> set[Claim]:
        """What ``source`` created and still lists; empty for a new source."""
        if self._cache is not None:
            return set(self._cache.get(source, ()))
        return self._read(source)

    def _read(self, source: str) -> set[Claim]:
        try:
            text = self.path(source).read_text(encoding="utf-8", errors="surrogateescape")
        except FileNotFoundError:
            return set()
        claims = set()
        for line in text.splitlines():
            sender, _, network = line.partition("\t")
            if sender and network:
                claims.add((sender, parse_relay(network)))
        return claims

    def claimed_elsewhere(self, source: str, claim: Claim) -> bool:
        """Whether a source other than ``source`` claims ``claim``."""
        if self._cache is None:
            self._cache = {name: self._read(name) for name in self.sources()}
            self._counts = Counter(c for claims in self._cache.values() for c in claims)
        return self._counts[claim] - (claim in self._cache.get(source, ())) > 0

    def save(self, source: str, claims: Iterable[Claim]) -> None:
        """Replace the ledger of ``source`` atomically."""
        claims = set(claims)
        lines = sorted(f"{sender}\t{network}\n" for sender, network in claims)
        write_atomic(self.path(source), "".join(lines))
        if self._cache is not None:
            self._counts.subtract(self._cache.get(source, ()))
            self._counts.update(claims)
            self._cache[source] = claims

    @contextmanager
    def locked(self, source: str) -> Iterator[None]:
        """Hold the source's lock: two imports of one source never interleave."""
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.dir / f".{source}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


def replace_source(wl: Whitelist, ledger: Ledger, source: str, wanted: Iterable[tuple[str, IPNetwork]],
                   keep: Callable[[Claim], bool] = lambda claim: False,
                   write: Callable[..., int] | None = None,
                   refused: Callable[[IPNetwork, str], None] | None = None) -> ReplaceReport:
    """Make the tree hold what ``source`` lists now, and drop what it listed before and no longer does.

    ``wanted`` is (sender, network) pairs; networks are split on tree
    boundaries here.  Previous claims for which ``keep`` is true stay as
    they are (an SPF family whose lookup failed this time).  ``write`` lists
    one sender for many networks (default Whitelist.add_many).  With
    ``refused``, ``write`` is also passed ``refused=``, the callback for
    networks the tree refuses (Whitelist.add_many's ``refused``): those are
    reported there and not claimed, and the rest go on.
    """
    report = ReplaceReport()
    by_sender: dict[str, list[IPNetwork]] = {}
    pieces: set[Claim] = set()
    for sender, network in wanted:
        sender = parse_sender(sender)
        for piece in boundary_networks(network):
            if (sender, piece) not in pieces:
                pieces.add((sender, piece))
                by_sender.setdefault(sender, []).append(piece)
    with ledger.locked(source):
        old = ledger.claims(source)
        claims = {c for c in old if keep(c)}
        for claim in pieces:
            if claim in old or ledger.claimed_elsewhere(source, claim) or not _exists(wl, claim):
                claims.add(claim)
            else:
                report.not_claimed += 1
        # The ledger is saved before writing: a crash in between leaves claims
        # for entries not yet made, which the next run makes or removes; the
        # other order could leave made entries that no ledger knows.
        ledger.save(source, claims | old)
        write = write or wl.add_many
        skipped: set[Claim] = set()
        for sender, networks in by_sender.items():
            if refused is None:
                report.added += write(sender, networks)
                continue

            def note(network: IPNetwork, reason: str, sender: str = sender) -> None:
                skipped.add((sender, network))
                refused(network, reason)

            report.added += write(sender, networks, refused=note)
        claims -= skipped
        report.listed = len(pieces)
        for claim in sorted(old - claims, key=_order):
            if claim in pieces or ledger.claimed_elsewhere(source, claim):
                continue
            wl.remove(*claim)
            report.removed.append(claim)
        ledger.save(source, claims)
    return report


def _exists(wl: Whitelist, claim: Claim) -> bool:
    sender, network = claim
    return os.path.lexists(os.path.join(wl.tree.relay_dir(network), sender_to_name(sender)))


def _order(claim: Claim) -> tuple[int, int, int, str]:
    sender, network = claim
    return (network.version, int(network.network_address), network.prefixlen, sender)


def write_atomic(path: Path, text: str) -> None:
    """Write a small state file whole or not at all (fswl.util.atomic), making its directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_atomic(path, text)
