"""peers/: one NAME.toml per mirror, and what this node knows every node holds.

A peer is named after its node name (``[sync] node`` in its fswl.toml), so
that what one node reports about another can be matched to this node's
peer list: that is how a batch drains once every peer holds it, even a
peer this node cannot reach.
"""

from __future__ import annotations

import fcntl
import json
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from fswl.errors import BadConfig, BadInput
from fswl.sync.batches import ORIGIN_NAME
from fswl.util import atomic

DEFAULT_PORT = 22
DEFAULT_REMOTE_COMMAND = "fswl"
KNOWN = ".known.json"
#: peers/.paired/NAME exists once a round with NAME reconciled the trees (see paired()).
PAIRED = ".paired"


@dataclass(frozen=True)
class Peer:
    """One mirror, reached over SSH."""

    name: str
    url: str
    key: str | None = None  #: private key file; default: the SSH agent and ~/.ssh keys
    known_hosts: str | None = None  #: default ~/.ssh/known_hosts
    remote_command: str = DEFAULT_REMOTE_COMMAND

    @property
    def user(self) -> str | None:
        return urlsplit(self.url).username

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or DEFAULT_PORT

    @property
    def path(self) -> str:
        return unquote(urlsplit(self.url).path) or "/var/spool/fswl"


def parse_url(url: str) -> str:
    """Check ``ssh://[user@]host[:port]/path``; returns it unchanged."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise BadInput(f"bad peer URL {url!r}: {exc}") from exc
    if parts.scheme != "ssh" or not parts.hostname or not parts.path.startswith("/") or parts.query or parts.fragment:
        raise BadInput(f"bad peer URL {url!r}: use ssh://user@host:port/path/to/fswl-home")
    if port == 0:
        raise BadInput(f"bad peer URL {url!r}: port 0")
    return url


def check_name(name: str) -> str:
    if not ORIGIN_NAME.match(name):
        raise BadInput(f"bad peer name {name!r}: use the peer's node name (letters, digits, '.', '-', '_')")
    return name


class Peers:
    """The peers/ directory of a home."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def add(self, peer: Peer) -> None:
        check_name(peer.name)
        parse_url(peer.url)
        self.root.mkdir(parents=True, exist_ok=True)
        lines = [f"url = {json.dumps(peer.url)}"]
        for key in ("key", "known_hosts"):
            value = getattr(peer, key)
            if value:
                lines.append(f"{key} = {json.dumps(str(Path(value).absolute()))}")
        lines.append(f"remote_command = {json.dumps(peer.remote_command)}")
        path = self.root / f"{peer.name}.toml"
        if not path.exists():  # a new peer (or one removed and added back) is reconciled afresh
            self.unpair(peer.name)
        atomic.write_atomic(path, ("\n".join(lines) + "\n").encode())

    def remove(self, name: str) -> None:
        path = self.root / f"{check_name(name)}.toml"
        if not path.exists():
            raise BadInput(f"no peer named {name!r} (see `fswl peers ls`)")
        path.unlink()
        self.unpair(name)

    # -- pairing -----------------------------------------------------------

    def paired(self, name: str) -> bool:
        """Whether a round with peer ``name`` has reconciled the trees since it was added.

        Until then, writes this node made before the peer existed (never
        journalled) or whose batches are drained may be missing there, so
        the next round reconciles by digests.
        """
        return (self.root / PAIRED / check_name(name)).exists()

    def pair(self, name: str) -> None:
        """Note that a round with ``name`` has reconciled the trees."""
        (self.root / PAIRED).mkdir(parents=True, exist_ok=True)
        (self.root / PAIRED / check_name(name)).touch()

    def unpair(self, name: str) -> None:
        (self.root / PAIRED / check_name(name)).unlink(missing_ok=True)

    def added(self, name: str) -> float:
        """When peer ``name`` was last added or changed (its file's mtime)."""
        return (self.root / f"{check_name(name)}.toml").stat().st_mtime

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.stem for p in self.root.glob("*.toml") if ORIGIN_NAME.match(p.stem))

    def get(self, name: str) -> Peer:
        path = self.root / f"{check_name(name)}.toml"
        try:
            table = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise BadInput(f"no peer named {name!r} (see `fswl peers ls`)") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise BadConfig(str(path), exc) from exc
        known = {"url", "key", "known_hosts", "remote_command"}
        if set(table) - known or "url" not in table or not all(isinstance(v, str) for v in table.values()):
            raise BadConfig(str(path), f"expected string settings among {sorted(known)}, url required")
        return Peer(name, parse_url(table["url"]), table.get("key"), table.get("known_hosts"),
                    table.get("remote_command", DEFAULT_REMOTE_COMMAND))

    def all(self) -> list[Peer]:
        return [self.get(n) for n in self.names()]

    # -- what every node holds --------------------------------------------

    def known(self) -> dict[str, dict[str, int]]:
        """node -> origin -> highest batch that node is known to hold."""
        try:
            data = json.loads((self.root / KNOWN).read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return clean_known(data)

    def learn(self, news: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
        """Merge ``news`` into what is known (highest wins); returns the result."""
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / ".known.lock", os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            merged = self.known()
            for node, holdings in clean_known(news).items():
                mine = merged.setdefault(node, {})
                for origin, seq in holdings.items():
                    mine[origin] = max(mine.get(origin, 0), seq)
            atomic.write_atomic(self.root / KNOWN, json.dumps(merged, sort_keys=True).encode())
            return merged
        finally:
            os.close(fd)


def clean_known(data: object) -> dict[str, dict[str, int]]:
    """Keep only well-formed node -> origin -> number entries of a (peer-supplied) table."""
    out: dict[str, dict[str, int]] = {}
    if not isinstance(data, dict):
        return out
    for node, holdings in data.items():
        if not isinstance(node, str) or not ORIGIN_NAME.match(node) or not isinstance(holdings, dict):
            continue
        out[node] = {o: s for o, s in holdings.items()
                     if isinstance(o, str) and ORIGIN_NAME.match(o) and isinstance(s, int) and s >= 0}
    return out
