"""One sync conversation, the same code on both ends of the SSH channel.

1. Both say hello: node name, the highest batch held per origin (``have``),
   and what they know every other node holds (``known``).
2. The client sends the batches the server lacks, then the server those the
   client lacks (IHAVE-style: only what the other has not seen).  Each side
   applies what it receives and spools it for its other peers.
3. Both say what they now hold; each learns and drains its spool of what
   every one of its peers holds.
4. The client reconciles the trees by digests when asked (``--full``), in
   a first round with a peer (fswl.sync.rounds), or when either side lacks
   batches the other no longer spools (a gap only digests can fill).
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from fswl.errors import BadRecord, SyncError
from fswl.sync import digests as dg
from fswl.sync.acks import make_ack
from fswl.sync.apply import Applied, apply_records
from fswl.sync.batches import ORIGIN_NAME
from fswl.sync.records import parse_batch
from fswl.sync.node import Node
from fswl.sync.peers import clean_known
from fswl.sync.records import Record, parse_record, record_count
from fswl.sync.wire import Wire

log = logging.getLogger(__name__)

VERSION = 1
#: Directories compared per request in a reconciliation, which bounds each message.
RECONCILE_DIRS = 2000
#: Levels a reconciliation descends at most (ip6/ and eight 16-bit levels, with room to spare).
MAX_DEPTH = 12


@dataclass
class Summary:
    """What one round with one peer did."""

    peer: str
    sent: int = 0  #: batches sent
    received: int = 0  #: batches received
    applied: Applied = field(default_factory=Applied)
    drained: int = 0
    reconciled: tuple[int, int] = (0, 0)  #: records pulled, pushed
    full: bool = False  #: the trees were reconciled by digests

    def __str__(self) -> str:
        text = (f"{self.peer}: sent {self.sent} batches, received {self.received} "
                f"({self.applied.written} writes, {self.applied.refused} refused), drained {self.drained}")
        if self.reconciled != (0, 0):
            text += f", reconciled {self.reconciled[0]} in / {self.reconciled[1]} out"
        return text


class Session:
    """One side of a conversation with one peer."""

    def __init__(self, node: Node, wire: Wire, client: bool, expect: str | None = None) -> None:
        self.node = node
        self.wire = wire
        self.client = client
        self.expect = expect
        self.peer = expect or "?"
        self.summary = Summary(self.peer)
        self._digests: dg.Digests | None = None
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None
        self.rescan = False
        self.full = False
        #: A batch the other side lacks is no longer spooled here, or the reverse.
        self.gap = False
        #: What this node held when its digest walk began: a completed reconciliation
        #: gives the peer the effect of all of it (see _hold), and the reverse.
        self._held: dict[str, int] | None = None
        self._their_held: dict[str, int] = {}
        self.on_records: Callable[[int], None] = lambda _n: None  # records of each batch sent or applied

    def run(self, full: bool = False, rescan: bool = False) -> Summary:
        """The whole conversation; ``full`` reconciles by digests, ``rescan`` without the digest index."""
        self.rescan = rescan
        self.full = full
        if full:
            self._start_digests()  # walked while SSH and the batches go on
        theirs = self._swap(self._hello(), "hello")
        self._meet(theirs)
        self.node.seal()  # after _meet, which may number this node on past what a restore left it
        if self.client:
            self._send_missing(theirs["have"])
            self._receive()
        else:
            self._receive()
            self._send_missing(theirs["have"])
        final = self._swap(self._status(), "have")
        self._learn(final)
        if self.client:
            bye: dict[str, Any] = {"bye": True}
            if full or (self.gap and not self.node.settings.require_signatures):
                self._reconcile()
                self.summary.full = True
                self._hold(self._their_held)
                bye["held"] = self._held
            self.wire.send(bye)
            self.wire.flush()
        else:
            self._serve_requests()
        self.summary.drained = self.node.drain()
        return self.summary

    # -- hello and holdings ---------------------------------------------------

    def _hello(self) -> dict[str, Any]:
        return {"hello": self.node.name, "version": VERSION, "full": self._thread is not None,
                "rescan": self.rescan, **self._status()}

    def _status(self) -> dict[str, Any]:
        have = self.node.spool.holdings()
        status: dict[str, Any] = {"have": have, "known": self.node.peers.known()}
        if self.node.signs:  # what this node holds in its own signed word, and others' (fswl.sync.acks)
            acks = [a for a in self.node.acks.all() if a.get("node") != self.node.name]
            if self.node.signer is not None:
                acks.append(make_ack(self.node.name, have, self.node.signer))
            status["acks"] = acks
        return status

    def _swap(self, mine: dict[str, Any], key: str) -> dict[str, Any]:
        if self.client:
            self.wire.send(mine)
            theirs, _ = self.wire.expect(key)
        else:
            theirs, _ = self.wire.expect(key)
            self.wire.send(mine)
        theirs["have"] = _holdings(theirs.get("have"))
        return theirs

    def _meet(self, hello: dict[str, Any]) -> None:
        name = hello.get("hello")
        if not isinstance(name, str) or not ORIGIN_NAME.match(name):
            raise SyncError(f"the peer sent a bad node name {str(name)[:70]!r}")
        if hello.get("version") != VERSION:
            raise SyncError(f"{name} speaks sync version {hello.get('version')!r}, this node {VERSION}: upgrade one")
        if name == self.node.name:
            raise SyncError(f"the peer is this node itself ({name}): check the peer URL or [sync] node")
        if self.expect is not None and name != self.expect:
            raise SyncError(f"peer {self.expect} calls itself {name}: name peers after their [sync] node "
                            f"(`fswl peers rm {self.expect}` and add it as {name})")
        self.peer = self.summary.peer = self.wire.peer = name
        if not self.client and hello.get("full") is True:
            self.rescan = hello.get("rescan") is True
            self.full = True
            self._start_digests()
        if not self.node.signs:
            # Peers hold this node's batches past its own numbering (a restore from backup): number on
            # from there. Unsigned, this is the peer's word: at worst it makes this node skip numbers.
            mine = hello["have"].get(self.node.name, 0)
            if mine > self.node.spool.highest(self.node.name):
                self.node.spool.raise_to(self.node.name, mine)
        self._learn(hello)

    def _learn(self, status: dict[str, Any]) -> None:
        self.node.peers.learn({**clean_known(status.get("known")), self.peer: status["have"]})
        if self.node.signs:
            learnt = self.node.acks.learn(status.get("acks"), self.node.key_of)
            # Only this node's own signed word, relayed back, renumbers it (see _meet).
            mine = learnt.get(self.node.name, {}).get(self.node.name, 0)
            if mine > self.node.spool.highest(self.node.name):
                self.node.spool.raise_to(self.node.name, mine)

    # -- batches ---------------------------------------------------------------

    def _send_missing(self, theirs: dict[str, int]) -> None:
        spool = self.node.spool
        for origin in spool.origins():
            if origin == self.peer:
                continue  # nobody holds a node's own batches better than it does
            held = theirs.get(origin, 0)
            highest = spool.highest(origin)  # before the listing: a batch sealed meanwhile is no gap
            numbers = [n for n in spool.numbers(origin) if n > held]
            first_spooled = numbers[0] if numbers else highest + 1
            if first_spooled > held + 1:
                self._gap(f"{self.peer} lacks batches {held + 1}-{first_spooled - 1} of {origin}, no longer spooled here")
            for seq in numbers:
                try:
                    data = spool.read(origin, seq)
                except FileNotFoundError:
                    continue  # drained meanwhile by another round: every peer holds it
                self.wire.send({"batch": origin, "seq": seq}, data)
                self.summary.sent += 1
                self.on_records(record_count(data))
        self.wire.send({"end": True})
        self.wire.flush()

    def _receive(self) -> None:
        refused: set[str] = set()
        while True:
            header, payload = self.wire.recv()
            if header.get("end"):
                return
            origin, seq = header.get("batch"), header.get("seq")
            if not isinstance(origin, str) or not ORIGIN_NAME.match(origin) or not isinstance(seq, int) or seq < 1:
                raise SyncError(f"{self.peer} sent a malformed batch header: {str(header)[:120]}")
            highest = self.node.spool.highest(origin)
            if origin in refused or origin == self.node.name or seq <= highest:
                continue
            source = f"{self.peer} (batch {origin}/{seq})"
            try:
                records = parse_batch(payload, origin, seq, self.node.keyring)
            except BadRecord as exc:
                log.warning("refused batch %s/%d from %s: %s", origin, seq, self.peer, exc)
                refused.add(origin)  # later batches of it wait until this one is accepted
                continue
            if seq > highest + 1:  # only a batch taken shows a gap: a garbage header must not force a reconciliation
                self._gap(f"this node lacks batches {highest + 1}-{seq - 1} of {origin}, "
                          f"no longer spooled at {self.peer}")
            self.summary.applied += apply_records(self.node.writer, records, source)
            self.node.spool.store(origin, seq, payload)
            self.summary.received += 1
            self.on_records(len(records))

    def _gap(self, what: str) -> None:
        """Batches that can no longer be sent: the client reconciles this round; the server says so."""
        self.gap = True
        if self.full or not self.client:  # the client sees the same gap, and reconciles
            log.info("%s: this round reconciles", what)
        elif self.node.settings.require_signatures:  # a reconciliation's records are unsigned
            log.warning("%s: not reconciling by digests, as [sync] require_signatures is set; run "
                        "`fswl sync --full %s` if you trust its tree", what, self.peer)
        else:
            log.warning("%s: reconciling by digests after the batches", what)

    # -- full reconciliation -----------------------------------------------------

    def _reconcile(self) -> None:
        self.wire.send({"digests": True, "rescan": self.rescan})
        self.wire.flush()
        mine = self.digests
        todo = [""]
        pulled = pushed = depth = 0
        while todo and depth <= MAX_DEPTH:
            next_level: list[str] = []
            for start in range(0, len(todo), RECONCILE_DIRS):
                descend, got, sent = self._reconcile_dirs(mine, todo[start:start + RECONCILE_DIRS])
                next_level.extend(descend)
                pulled += got
                pushed += sent
            todo = next_level
            depth += 1
        self.summary.reconciled = (pulled, pushed)

    def _reconcile_dirs(self, mine: dg.Digests, todo: list[str]) -> tuple[list[str], int, int]:
        """Compare the listings of some directories; exchange the records of what differs.

        Returns the sub-directories to compare next, records pulled, records pushed.
        A directory one side lacks is descended into rather than sent whole,
        so that no message grows with the size of the tree.
        """
        self.wire.send({"children": todo})
        header, payload = self.wire.expect("listings")
        if "held" in header:
            self._their_held = _holdings(header["held"])
        listings = _json(payload)
        descend_into: list[str] = []
        wanted: list[list[Any]] = []
        out = []
        for rel in todo:
            theirs = listings.get(rel, {})
            if not isinstance(theirs, dict):
                raise SyncError(f"{self.peer} sent a malformed listing")
            ours = mine.children(rel)
            pull, push, descend = dg.compare(ours, theirs)
            missing = {n for n in pull if n not in ours and _is_dir(theirs[n])}
            missing |= {n for n in push if n not in theirs and _is_dir(ours[n])}
            pull = [n for n in pull if n not in missing]
            push = [n for n in push if n not in missing]
            if pull:
                wanted.append([rel, pull])
            out.extend(mine.records(rel, push))
            for name in sorted(missing) + descend:
                if "/" not in name and name not in (".", ".."):
                    descend_into.append(f"{rel}/{name}" if rel else name)
        got = 0
        if wanted:
            self.wire.send({"records": wanted})
            _, lines = self.wire.expect("records")
            records = _parse_lines(lines)
            self.summary.applied += apply_records(self.node.writer, records, f"{self.peer} (reconciliation)")
            got = len(records)
        if out:
            self.wire.send({"apply": True}, b"".join(r.line() for r in out))
        return descend_into, got, len(out)

    def _hold(self, held: dict[str, int]) -> None:
        """After a whole reconciliation, hold what the peer held as its walk began: its tree, batches
        included, is now in this one, and a batch drained there must not read as a gap again."""
        if self.node.settings.require_signatures:
            # The claim is the peer's word, unsigned: held numbers are skipped when batches come, so a
            # peer not trusted with other origins' writes must not be able to make this node skip them.
            return
        for origin, seq in held.items():
            if origin != self.node.name:  # a node's own numbering is its own (see _meet)
                self.node.spool.hold(origin, seq)

    def _start_digests(self) -> None:
        self._held = self.node.spool.holdings()  # before the walk: every write of these is in it

        def build() -> None:
            try:
                self._digests = dg.Digests(str(self.node.home.db), self.node.spool, self.rescan)
            except BaseException as exc:  # re-raised where the digests are needed
                self._failure = exc

        self._thread = threading.Thread(target=build, name="fswl-digests", daemon=True)
        self._thread.start()

    @property
    def digests(self) -> dg.Digests:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
            if self._failure is not None:
                raise self._failure
        if self._digests is None:
            self._held = self.node.spool.holdings()
            self._digests = dg.Digests(str(self.node.home.db), self.node.spool, self.rescan)
        return self._digests

    def _serve_requests(self) -> None:
        while True:
            header, payload = self.wire.recv()
            if header.get("bye"):
                if "held" in header and self._held is not None:
                    self._hold(_holdings(header["held"]))
                return
            if header.get("digests"):
                if self._thread is None and self._digests is None:  # a client that did not say so in hello
                    self.rescan = header.get("rescan") is True
                    self._start_digests()
            elif isinstance(header.get("children"), list):
                listings = {rel: self.digests.children(rel) for rel in header["children"] if isinstance(rel, str)}
                self.wire.send({"listings": True, "held": self._held}, _dumps(listings))
            elif isinstance(header.get("records"), list):
                out = []
                for item in header["records"]:
                    if isinstance(item, list) and len(item) == 2 and isinstance(item[0], str) and isinstance(item[1], list):
                        out.extend(self.digests.records(item[0], [n for n in item[1] if isinstance(n, str)]))
                self.wire.send({"records": True}, b"".join(r.line() for r in out))
            elif header.get("apply"):
                records = _parse_lines(payload)
                if self.node.settings.require_signatures:
                    # Reconciled records are unsigned: this node takes them only in a round its admin
                    # asked for (`fswl sync --full`, this node as the client).
                    log.warning("refused %d unsigned records of a reconciliation from %s: [sync] require_signatures "
                                "is set here; run `fswl sync --full %s` on this node to take them",
                                len(records), self.peer, self.peer)
                    self.summary.applied.refused += len(records)
                    continue
                self.summary.applied += apply_records(self.node.writer, records, f"{self.peer} (reconciliation)")
            else:
                raise SyncError(f"{self.peer} sent an unknown request: {str(header)[:120]}")


def _holdings(value: object) -> dict[str, int]:
    """A peer-supplied origin -> batch number table, malformed entries dropped."""
    return clean_known({"x": value}).get("x", {})


def _is_dir(child: object) -> bool:
    return isinstance(child, list) and bool(child) and child[0] == dg.DIR


def _parse_lines(data: bytes) -> list[Record | BadRecord]:
    records: list[Record | BadRecord] = []
    for line in data.splitlines(keepends=True):
        try:
            records.append(parse_record(line))
        except BadRecord as exc:
            records.append(exc)
    return records


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _json(payload: bytes) -> dict[str, Any]:
    try:
        value = json.loads(payload)
    except ValueError:
        raise SyncError("the peer sent a malformed listing") from None
    if not isinstance(value, dict):
        raise SyncError("the peer sent a malformed listing")
    return value
