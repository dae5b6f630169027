"""Many TCP connections held open from many loopback addresses, and which of them the server closed."""

from __future__ import annotations

import errno
import resource
import select
import socket
import time

#: Descriptors kept free for everything else a test process opens.
SPARE_DESCRIPTORS = 200


def raise_descriptor_limit() -> int:
    """Soft RLIMIT_NOFILE raised to the hard limit (a child started afterwards inherits it); returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def affordable(wanted: int) -> int:
    """How many of ``wanted`` connections this process, and a server it starts, can each hold."""
    return max(0, min(wanted, raise_descriptor_limit() - 2 * SPARE_DESCRIPTORS))


def source(n: int) -> str:
    """The n-th loopback source address, from 127.0.1.1 on (all of 127/8 is loopback on Linux)."""
    n += 1 + 256  # skip 127.0.0.x: the good clients
    return f"127.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


#: The pause after each address's connections (100 addresses: 5 s).
PACE_SECONDS = 0.05


def hold(port: int, per_source: int, sources: int, first_source: int = 0, timeout: float = 60.0) -> list[socket.socket]:
    """Open ``per_source`` connections from each of ``sources`` addresses to 127.0.0.1:port; all connected.

    Non-blocking connects, then one wait for them all: a bounded loop, no
    thread per socket.
    """
    pending: dict[int, socket.socket] = {}
    held: list[socket.socket] = []
    try:
        for s in range(first_source, first_source + sources):
            address = source(s)
            for _ in range(per_source):
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                held.append(sock)
                sock.bind((address, 0))
                sock.setblocking(False)
                code = sock.connect_ex(("127.0.0.1", port))
                if code not in (0, errno.EINPROGRESS):
                    raise OSError(code, f"connect from {address}: {errno.errorcode.get(code, code)}")
                pending[sock.fileno()] = sock
            # One address's connections at a time, then a breath for the server to accept them: thousands
            # of connects at once overflow the listen backlog, and a connection whose final ACK the kernel
            # dropped looks established here but is never accepted there (nor counted, nor closed).
            time.sleep(PACE_SECONDS)
        poller = select.poll()
        for fd in pending:
            poller.register(fd, select.POLLOUT)
        deadline = time.monotonic() + timeout
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{len(pending)} of {len(held)} connections still connecting after {timeout} s")
            for fd, _event in poller.poll(left * 1000):
                sock = pending.pop(fd, None)
                poller.unregister(fd)
                if sock is not None:
                    code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if code:
                        raise OSError(code, f"connect: {errno.errorcode.get(code, code)}")
    except BaseException:
        release(held)
        raise
    return held


def closed_by_server(held: list[socket.socket]) -> list[socket.socket]:
    """The connections the server has closed (readable with EOF or reset), looked at once, without waiting."""
    poller = select.poll()
    by_fd = {sock.fileno(): sock for sock in held}
    for fd in by_fd:
        poller.register(fd, select.POLLIN)
    found = []
    for fd, event in poller.poll(0):
        sock = by_fd[fd]
        try:
            if event & (select.POLLERR | select.POLLHUP) or sock.recv(1, socket.MSG_PEEK) == b"":
                found.append(sock)
        except (ConnectionError, BlockingIOError):
            found.append(sock)
    return found


def wait_closed(held: list[socket.socket], count: int, seconds: float = 30.0) -> list[socket.socket]:
    """Poll until at least ``count`` of ``held`` were closed by the server (or ``seconds`` pass); those."""
    deadline = time.monotonic() + seconds
    while True:
        closed = closed_by_server(held)
        if len(closed) >= count or time.monotonic() > deadline:
            return closed
        time.sleep(0.05)


def release(held: list[socket.socket]) -> None:
    for sock in held:
        sock.close()
    held.clear()
