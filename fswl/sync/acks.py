"""Signed acknowledgements of holdings: the holding claims a node requiring signatures acts on.

A node with a ``signing_key`` puts, in every status it sends, an *ack*: the
highest batch it holds of each origin, signed with its batch key. Peers keep
the latest ack of every node whose key they have (``peers/.acks.json``) and
pass them all on, so a node learns what a node it never reaches holds from
that node's own word, relayed by anyone, forged by no one.

With ``[sync] require_signatures`` these are the only claims that change
what a node does with its spool:

- a batch drains once the acks of every configured peer cover it
  (Node.drain); a peer's unsigned ``have`` and ``known`` tables only choose
  what is sent to it, which can only hurt the peer that lies;
- a node restored from a backup numbers its batches on from the highest
  number its own ack, relayed back by a peer, says it held (Session._meet):
  a peer's mere claim never renumbers it.

Acks of a node only grow (holdings never go back), so a replayed older ack
is ignored: one replaces the stored ack only when it holds at least as much
of every origin.
"""

from __future__ import annotations

import base64
import fcntl
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from fswl.sync.batches import ORIGIN_NAME
from fswl.util import atomic

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from fswl.sync.signing import Signer

log = logging.getLogger(__name__)

ACKS = ".acks.json"
MAGIC = b"fswl-ack 1\n"
#: Acks taken from one status at most (one per node of the mesh; more is a peer flooding).
MAX_ACKS = 1000


def signed_bytes(node: str, have: dict[str, int]) -> bytes:
    return MAGIC + json.dumps({"node": node, "have": have}, sort_keys=True, separators=(",", ":")).encode()


def make_ack(node: str, have: dict[str, int], signer: Signer) -> dict[str, Any]:
    """This node's ack of ``have``."""
    signature = signer.key.sign(signed_bytes(node, have))
    return {"node": node, "have": have, "sig": base64.b64encode(signature).decode()}


def check_ack(ack: object, key_of: Callable[[str], Ed25519PublicKey | None]) -> tuple[str, dict[str, int]] | None:
    """(node, holdings) of a well-formed ack with a good signature by its node's key, else None."""
    from cryptography.exceptions import InvalidSignature

    if not isinstance(ack, dict) or set(ack) != {"node", "have", "sig"}:
        return None
    node, have, sig = ack["node"], ack["have"], ack["sig"]
    if not isinstance(node, str) or not ORIGIN_NAME.match(node) or not isinstance(have, dict) \
            or not isinstance(sig, str):
        return None
    if not all(isinstance(o, str) and ORIGIN_NAME.match(o) and type(s) is int and s >= 0 for o, s in have.items()):
        return None
    key = key_of(node)
    if key is None:
        return None
    try:
        key.verify(base64.b64decode(sig, validate=True), signed_bytes(node, have))
    except (InvalidSignature, ValueError):
        return None
    return node, have


class Acks:
    """peers/.acks.json: node -> its latest ack."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def all(self) -> list[dict[str, Any]]:
        """The stored acks, as passed on to peers (each was checked when it came)."""
        return list(self._load().values())

    def holdings(self) -> dict[str, dict[str, int]]:
        """node -> origin -> highest batch, by that node's own signed word."""
        return {node: dict(ack["have"]) for node, ack in self._load().items()}

    def learn(self, acks: object, key_of: Callable[[str], Ed25519PublicKey | None]) -> dict[str, dict[str, int]]:
        """Keep the good acks among a peer's ``acks`` that supersede the stored ones; returns them."""
        if not isinstance(acks, list):
            return {}
        news: dict[str, dict[str, Any]] = {}
        for ack in acks[:MAX_ACKS]:
            checked = check_ack(ack, key_of)
            if checked is not None:
                news[checked[0]] = ack
        if not news:
            return {}
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / ".acks.lock", os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            stored = self._load()
            taken = {}
            for node, ack in news.items():
                old = stored.get(node, {}).get("have", {})
                if ack["have"] != old and all(ack["have"].get(o, 0) >= s for o, s in old.items()):
                    stored[node] = taken[node] = ack
            if taken:
                atomic.write_atomic(self.root / ACKS, json.dumps(stored, sort_keys=True).encode())
            return {node: dict(ack["have"]) for node, ack in taken.items()}
        finally:
            os.close(fd)

    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads((self.root / ACKS).read_text())
        except (FileNotFoundError, ValueError):
            return {}
        if not isinstance(data, dict):
            return {}
        return {n: a for n, a in data.items() if isinstance(a, dict) and isinstance(a.get("have"), dict)}

