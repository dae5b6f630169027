"""SSH to a peer with paramiko: host keys checked against known_hosts, never added on trust.

The peer runs ``REMOTE_COMMAND --home PATH sync --serve``; the conversation
is the channel's stdin and stdout, and its stderr is passed to our log.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import logging
import os
import shlex
import socket
import time
from contextlib import contextmanager
from typing import Iterator

import paramiko

from fswl.errors import HostKeyError, SyncError
from fswl.sync.peers import Peer
from fswl.sync.wire import IDLE_TIMEOUTS, ChannelStream, Wire

log = logging.getLogger(__name__)

DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"


def fingerprint(key: paramiko.PKey) -> str:
    """The key's fingerprint as OpenSSH prints it: ``SHA256:base64``."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def host_label(peer: Peer) -> str:
    """The host as known_hosts names it: ``host`` or ``[host]:port``."""
    return peer.host if peer.port == 22 else f"[{peer.host}]:{peer.port}"


class _Refuse(paramiko.MissingHostKeyPolicy):
    """Refuse an unknown host key, saying how to check and accept it."""

    def __init__(self, peer: Peer, known_hosts: str) -> None:
        self.peer = peer
        self.known_hosts = known_hosts

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        port = f"-p {self.peer.port} " if self.peer.port != 22 else ""
        raise HostKeyError(
            f"unknown host key for {host_label(self.peer)} ({key.get_name()} {fingerprint(key)}); "
            f"refusing to sync with {self.peer.name}. If that fingerprint is the peer's, accept it with: "
            f"ssh-keyscan {port}{self.peer.host} >> {self.known_hosts}"
        )


@contextmanager
def connect(peer: Peer, remote_args: list[str], timeout: float, keepalive: float) -> Iterator[Wire]:
    """Open an SSH session to ``peer`` running the remote fswl with ``remote_args``; yield its Wire."""
    known_hosts = os.path.expanduser(peer.known_hosts or DEFAULT_KNOWN_HOSTS)
    client = paramiko.SSHClient()
    try:
        try:
            client.load_host_keys(known_hosts)
        except FileNotFoundError:
            pass  # every host is then unknown, and refused below
        client.set_missing_host_key_policy(_Refuse(peer, known_hosts))
        try:
            client.connect(
                peer.host, port=peer.port, username=peer.user, key_filename=peer.key, timeout=timeout,
                banner_timeout=timeout, auth_timeout=timeout, allow_agent=peer.key is None,
                look_for_keys=peer.key is None,
            )
        except paramiko.BadHostKeyException as exc:
            raise HostKeyError(
                f"the host key of {host_label(peer)} CHANGED: it is now {exc.key.get_name()} {fingerprint(exc.key)}, "
                f"known_hosts has {fingerprint(exc.expected_key)}; refusing. If the peer was really re-keyed, "
                f"remove the old key with `ssh-keygen -f {known_hosts} -R '{host_label(peer)}'` and accept the new one"
            ) from None
        except paramiko.AuthenticationException:
            who = f"{peer.user}@" if peer.user else ""
            raise SyncError(f"SSH authentication failed: {who}{host_label(peer)} refused "
                            f"{f'the key {peer.key}' if peer.key else 'the agent and ~/.ssh keys'}; check the peer's "
                            f"key (`fswl peers set {peer.name} --key FILE`) and its authorized_keys") from None
        except (paramiko.SSHException, OSError) as exc:
            if isinstance(exc, HostKeyError):
                raise
            cause = _transport_failure(client, timeout)
            raise SyncError(connect_failure(peer, cause or exc, timeout)) from None
        transport = client.get_transport()
        assert transport is not None
        transport.set_keepalive(int(keepalive))
        command = " ".join([peer.remote_command, "--home", shlex.quote(peer.path), *map(shlex.quote, remote_args)])
        channel = transport.open_session(timeout=timeout)
        channel.exec_command(command)
        wire = Wire(ChannelStream(channel), peer.name, idle=timeout * IDLE_TIMEOUTS)  # a peer silent this long is gone
        try:
            yield wire
        except SyncError:
            _log_stderr(channel, peer)
            raise
        channel.shutdown_write()
        if not channel.status_event.wait(timeout):  # a hostile peer may never exit
            raise SyncError(f"{peer.name}: timed out after {timeout:g} s waiting for the remote `{command}` to exit")
        status = channel.recv_exit_status()
        _log_stderr(channel, peer)
        if status != 0:
            raise SyncError(f"{peer.name}: the remote `{command}` exited {status}")
    finally:
        client.close()


#: What of the peer's stderr is logged at most, and how long it is waited for.
STDERR_BYTES = 64 * 1024
STDERR_SECONDS = 2.0


def connect_failure(peer: Peer, exc: BaseException, timeout: float) -> str:
    """What failed while connecting, in words (paramiko's own texts say ``[Errno None]``)."""
    where = host_label(peer)
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError):
        # Raised when every address refused or was unreachable; errno is None, the causes are inside.
        causes = {e.errno for e in exc.errors.values()}
        if causes == {errno.ECONNREFUSED}:
            return f"cannot reach {where}: connection refused (nothing listens on port {peer.port}: is sshd running there?)"
        return f"cannot reach {where}: " + "; ".join(sorted({_strerror(e) for e in exc.errors.values()}))
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return f"cannot reach {where}: connecting timed out after {timeout:g} s (host down or a firewall dropping SSH?)"
    if isinstance(exc, socket.gaierror):
        return f"cannot reach {where}: the name {peer.host} does not resolve ({exc.strerror})"
    if isinstance(exc, OSError):
        return f"cannot reach {where}: {_strerror(exc)}"
    text = str(exc)
    if "banner" in text:  # what answers is no SSH server, or is stuck
        if isinstance(exc.__context__, EOFError):
            return f"cannot reach {where}: connected, but it hung up before a word of SSH"
        return f"cannot reach {where}: connected, but no SSH server answered: timed out after {timeout:g} s"
    if text == "No existing session":  # the handshake died, its cause lost
        return f"cannot reach {where}: connected, but the SSH handshake failed"
    return f"SSH with {where} failed: {text or type(exc).__name__}"


def _transport_failure(client: paramiko.SSHClient, timeout: float) -> BaseException | None:
    """What paramiko's transport thread met, which it may still be meeting (a banner that never comes)."""
    transport = client.get_transport()
    if transport is None:
        return None
    if transport.is_alive():
        transport.join(timeout)
    return transport.get_exception()


def _strerror(exc: OSError) -> str:
    return (exc.strerror or os.strerror(exc.errno) if exc.errno else str(exc) or type(exc).__name__).lower()


def _log_stderr(channel: paramiko.Channel, peer: Peer) -> None:
    chunks: list[bytes] = []
    ends = time.monotonic() + STDERR_SECONDS  # a peer trickling stderr must not hold the round
    try:
        while sum(map(len, chunks)) < STDERR_BYTES and (left := ends - time.monotonic()) > 0:
            channel.settimeout(left)
            chunk = channel.recv_stderr(STDERR_BYTES)
            if not chunk:
                break
            chunks.append(chunk)
    except (OSError, socket.timeout):
        pass
    text = b"".join(chunks)[:STDERR_BYTES].decode("utf-8", "replace")
    for line in text.splitlines():
        if line.strip():
            log.warning("%s says: %s", peer.name, line.strip())
