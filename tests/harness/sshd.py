"""Private OpenSSH sshd instances on loopback ports, and fswl homes that mirror each other through them."""

from __future__ import annotations

import shlex
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

SSHD = "/usr/sbin/sshd"
#: How long sshd may take to accept connections.
START_SECONDS = 10
#: What the peer runs: THIS checkout's fswl, by absolute path, whatever PATH the session has.
REMOTE_COMMAND = f"{shlex.quote(sys.executable)} -m fswl"


def keygen(path: Path) -> Path:
    """An unencrypted ed25519 key pair at ``path`` and ``path``.pub."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)],
                   check=True, capture_output=True)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Sshd:
    """One sshd on 127.0.0.1:port, trusting ``client_key``.pub, with its own host key."""

    def __init__(self, directory: Path, client_key: Path) -> None:
        self.dir = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.host_key = keygen(directory / "host_key")
        (directory / "authorized_keys").write_text(Path(f"{client_key}.pub").read_text())
        self.port = free_port()
        self.config = directory / "sshd_config"
        self.config.write_text("\n".join([
            f"Port {self.port}", "ListenAddress 127.0.0.1", f"HostKey {self.host_key}",
            f"AuthorizedKeysFile {directory / 'authorized_keys'}", f"PidFile {directory / 'sshd.pid'}",
            "PermitRootLogin prohibit-password", "PasswordAuthentication no",
            "KbdInteractiveAuthentication no", "UsePAM no", "StrictModes no", "LogLevel ERROR",
            "MaxStartups 50", "MaxSessions 50", "",
        ]))
        Path("/run/sshd").mkdir(exist_ok=True)
        self.log = open(directory / "sshd.log", "wb")
        self.process = subprocess.Popen([SSHD, "-f", str(self.config), "-D", "-e"],
                                        stdout=self.log, stderr=subprocess.STDOUT)
        self._wait()

    def _wait(self) -> None:
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"sshd exited: {(self.dir / 'sshd.log').read_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("sshd did not start listening")

    def restart(self) -> None:
        """Start again after stop(), on the same port with the same keys: a peer coming back."""
        self.log = open(self.dir / "sshd.log", "ab")
        self.process = subprocess.Popen([SSHD, "-f", str(self.config), "-D", "-e"],
                                        stdout=self.log, stderr=subprocess.STDOUT)
        self._wait()

    def known_hosts_line(self) -> str:
        kind, key = Path(f"{self.host_key}.pub").read_text().split()[:2]
        return f"[127.0.0.1]:{self.port} {kind} {key}\n"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


@dataclass
class Mirror:
    """An fswl home named ``name``, reachable through its own sshd."""

    name: str
    home: Path
    sshd: Sshd

    @property
    def url(self) -> str:
        return f"ssh://root@127.0.0.1:{self.sshd.port}{self.home}"


class Mesh:
    """Several mirrors sharing one client key and one known_hosts file."""

    def __init__(self, root: Path, names: list[str], one_sshd: bool = False) -> None:
        """``one_sshd``: every mirror is reached through the first one's sshd (homes differ by path)."""
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.key = keygen(root / "client_key")
        self.known_hosts = root / "known_hosts"
        self.mirrors: dict[str, Mirror] = {}
        try:
            for name in names:
                home = root / name
                home.mkdir()
                (home / "fswl.toml").write_text(f'[sync]\nnode = "{name}"\ninterval = 1\nmax_backoff = 2\n')
                shared = next(iter(self.mirrors.values())).sshd if one_sshd and self.mirrors else None
                self.mirrors[name] = Mirror(name, home, shared or Sshd(root / f"sshd-{name}", self.key))
        except Exception:
            self.stop()
            raise
        self.known_hosts.write_text("".join({m.sshd.known_hosts_line() for m in self.mirrors.values()}))

    def __getitem__(self, name: str) -> Mirror:
        return self.mirrors[name]

    def peer_args(self, to: str, url: str | None = None) -> list[str]:
        """`fswl peers add` arguments that make a node sync with mirror ``to``."""
        return ["peers", "add", to, url or self[to].url, "--key", str(self.key),
                "--known-hosts", str(self.known_hosts), "--remote-command", REMOTE_COMMAND]

    def stop(self) -> None:
        for sshd in {id(m.sshd): m.sshd for m in self.mirrors.values()}.values():
            sshd.stop()


def closed_url(mirror: Mirror) -> str:
    """A URL for ``mirror`` at a port where nothing listens: the link is down."""
    return f"ssh://root@127.0.0.1:{free_port()}{mirror.home}"


__all__ = ["Mesh", "Mirror", "Sshd", "closed_url", "keygen", "REMOTE_COMMAND"]
