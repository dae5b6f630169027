"""UDP queries read and answered a batch at a time: one recvmmsg and one sendmmsg for many packets.

A Python recvfrom/sendto loop that does nothing else already costs about
what rbldnsd spends on a whole answer (about 5 µs a packet here, nearly all
of it the two system calls and their wrappers). Linux's recvmmsg(2) and
sendmmsg(2) move every datagram waiting on the socket in one call each, so
under load the per-call cost is shared by the batch (measured with
bench/udp_floor.py: 4.47 µs a packet against 5.40 µs; docs/performance.md). The standard library has
neither, so they are called through ctypes, on buffers laid out once.

Where they are missing (not Linux, or no C library to load), the same
interface reads and answers one packet at a time with recvfrom/sendto.
"""

from __future__ import annotations

import array
import ctypes
import ctypes.util
import socket

#: Datagrams taken per recvmmsg call: what arrives between two calls under load is rarely more.
BATCH = 64
#: Room per query. Datagrams this long or longer (no real query is) are dropped, never read in part.
SLOT_BYTES = 4096
#: The largest UDP datagram a reply may need (an EDNS0 answer is far smaller).
MAX_DATAGRAM = 65535
#: sockaddr_in6, the larger of the two address structures.
_NAME_BYTES = 28
_SOCKADDR_BYTES = {socket.AF_INET: 16, socket.AF_INET6: 28}
_MSG_WAITFORONE = 0x10000


class _Iovec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class _Msghdr(ctypes.Structure):
    _fields_ = [("msg_name", ctypes.c_void_p), ("msg_namelen", ctypes.c_uint32), ("msg_iov", ctypes.c_void_p),
                ("msg_iovlen", ctypes.c_size_t), ("msg_control", ctypes.c_void_p),
                ("msg_controllen", ctypes.c_size_t), ("msg_flags", ctypes.c_int)]


class _Mmsghdr(ctypes.Structure):
    _fields_ = [("msg_hdr", _Msghdr), ("msg_len", ctypes.c_uint)]


class PlainDatagrams:
    """One datagram per call, with recvfrom_into and sendto: the portable way."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buffer = bytearray(MAX_DATAGRAM)
        self._address: tuple | None = None

    def receive(self) -> list[bytes]:
        """Wait for datagrams and return them (none: woken for another reason, look at why)."""
        try:
            size, self._address = self.sock.recvfrom_into(self._buffer)
        except OSError:
            return []
        if self._address is None:  # stop()'s shutdown woke us
            return []
        return [bytes(self._buffer[:size])]

    def source(self, i: int) -> bytes:
        """The source address of datagram ``i`` of the last :meth:`receive`, packed."""
        host = self._address[0].partition("%")[0]  # type: ignore[index]  # no IPv6 zone
        return socket.inet_pton(self.sock.family, host)

    def host(self, i: int) -> str:
        """The source address of datagram ``i``, as text."""
        return self._address[0]  # type: ignore[index]

    def send(self, replies: list[tuple[int, bytes]]) -> None:
        """Send each (datagram number, reply) to the datagram's source."""
        for _i, wire in replies:
            try:
                self.sock.sendto(wire, self._address)  # type: ignore[arg-type]
            except OSError:
                pass  # the client's problem (unreachable, spoofed source): not ours to retry


class BatchedDatagrams:
    """Up to :data:`BATCH` datagrams per recvmmsg, their replies in one sendmmsg (Linux)."""

    def __init__(self, sock: socket.socket, libc: ctypes.CDLL) -> None:
        self.sock = sock
        self._recvmmsg = libc.recvmmsg
        self._recvmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int, ctypes.c_void_p]
        self._sendmmsg = libc.sendmmsg
        self._sendmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
        self._queries = bytearray(BATCH * SLOT_BYTES)
        self._replies = bytearray(BATCH * SLOT_BYTES)
        self._names = bytearray(BATCH * _NAME_BYTES)
        self._in = (_Mmsghdr * BATCH)()
        self._out = (_Mmsghdr * BATCH)()
        self._in_iov = (_Iovec * BATCH)()
        self._out_iov = (_Iovec * BATCH)()
        queries, replies, names = (ctypes.addressof(ctypes.c_char.from_buffer(b))
                                   for b in (self._queries, self._replies, self._names))
        # A socket's sources are all of its own family, so each address has
        # the same length and a reply's is known in advance. (The kernel
        # rewrites msg_namelen on receipt: 0 for the wake-up of a shutdown,
        # so receive() puts the room back each time.)
        name_bytes = _SOCKADDR_BYTES.get(sock.family, _NAME_BYTES)
        # Where the address lies in sockaddr_in (sin_addr) or sockaddr_in6 (sin6_addr), and its length.
        self._address_at, self._address_bytes = (4, 4) if sock.family == socket.AF_INET else (8, 16)
        for i in range(BATCH):
            self._in_iov[i].iov_base, self._in_iov[i].iov_len = queries + i * SLOT_BYTES, SLOT_BYTES
            self._out_iov[i].iov_base = replies + i * SLOT_BYTES
            for table, iov in ((self._in, self._in_iov), (self._out, self._out_iov)):
                header = table[i].msg_hdr
                header.msg_name, header.msg_namelen = names + i * _NAME_BYTES, name_bytes
                header.msg_iov, header.msg_iovlen = ctypes.addressof(iov[i]), 1
        # The fields touched per packet, as plain integer views and offsets
        # worked out once: a ctypes attribute access costs more than the rest
        # of a cached answer.
        words = ctypes.sizeof(_Mmsghdr) // 4
        length = _Mmsghdr.msg_len.offset // 4
        self._in32 = memoryview(self._in).cast("B").cast("I")
        self._namelens = self._in32[_Msghdr.msg_namelen.offset // 4::words]
        self._room = memoryview(array.array("I", [name_bytes] * BATCH))
        self._out64 = memoryview(self._out).cast("B").cast("Q")
        self._out_iov64 = memoryview(self._out_iov).cast("B").cast("Q")
        #: Per slot: where its query starts, and the 32-bit word of its length.
        self._slots = [(i * SLOT_BYTES, i * words + length) for i in range(BATCH)]
        #: Per slot: the 64-bit words of its reply's msg_name and iov_len; per datagram, its source's address.
        self._name_words = [i * words // 2 + _Msghdr.msg_name.offset // 8 for i in range(BATCH)]
        self._iov_len_words = [2 * i + 1 for i in range(BATCH)]
        self._name_addresses = [names + i * _NAME_BYTES for i in range(BATCH)]
        self._query_view = memoryview(self._queries)
        self._reply_view = memoryview(self._replies)

    def receive(self) -> list[bytes]:
        """Wait for datagrams and return them (none: woken for another reason, look at why)."""
        self._namelens[:] = self._room
        count = self._recvmmsg(self.sock.fileno(), ctypes.addressof(self._in), BATCH, _MSG_WAITFORONE, None)
        in32, view = self._in32, self._query_view
        # A datagram that filled its slot may have been longer: it is read as empty, never in part.
        # (count -1: interrupted, or stop()'s shutdown: no datagrams.)
        return [bytes(view[start:start + size]) if (size := in32[length]) < SLOT_BYTES else b""
                for start, length in self._slots[:max(count, 0)]]

    def source(self, i: int) -> bytes:
        """The source address of datagram ``i`` of the last :meth:`receive`, packed."""
        start = i * _NAME_BYTES + self._address_at
        return bytes(self._names[start:start + self._address_bytes])

    def host(self, i: int) -> str:
        """The source address of datagram ``i``, as text."""
        return socket.inet_ntop(self.sock.family, self.source(i))

    def send(self, replies: list[tuple[int, bytes]]) -> None:
        """Send each (datagram number, reply) to the datagram's source, in one sendmmsg.

        A reply that cannot go (a spoofed or unreachable source) is skipped.
        """
        view, out64, iov64 = self._reply_view, self._out64, self._out_iov64
        name_words, iov_len_words, name_addresses = self._name_words, self._iov_len_words, self._name_addresses
        queued = 0
        for i, wire in replies:
            size = len(wire)
            if size > SLOT_BYTES:
                continue  # no UDP reply is this long (the payload limit is 1232)
            start = queued * SLOT_BYTES
            view[start:start + size] = wire
            iov64[iov_len_words[queued]] = size
            out64[name_words[queued]] = name_addresses[i]
            queued += 1
        sent, size, base, fd = 0, ctypes.sizeof(_Mmsghdr), ctypes.addressof(self._out), self.sock.fileno()
        while sent < queued:
            done = self._sendmmsg(fd, base + sent * size, queued - sent, 0)
            sent += done if done > 0 else 1


def open_datagrams(sock: socket.socket, batched: bool = True) -> PlainDatagrams | BatchedDatagrams:
    """The batched reader where the C library has recvmmsg and sendmmsg, else the plain one.

    Batched only on a 64-bit ABI (x86_64, aarch64): the per-packet views
    index the structures by 64-bit words.
    """
    if batched and ctypes.sizeof(ctypes.c_void_p) == 8 and ctypes.sizeof(_Mmsghdr) == 64:
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
            if hasattr(libc, "recvmmsg") and hasattr(libc, "sendmmsg"):
                return BatchedDatagrams(sock, libc)
        except (OSError, TypeError):
            pass
    return PlainDatagrams(sock)
