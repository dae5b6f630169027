"""fswl.dns.datagrams: batches of UDP queries read with recvmmsg and answered with sendmmsg, or one by one."""

from __future__ import annotations

import socket
import threading

import pytest

from fswl.dns.datagrams import BATCH, SLOT_BYTES, BatchedDatagrams, PlainDatagrams, open_datagrams

FAMILIES = [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")]


def bound(family: int, host: str) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.bind((host, 0))
    except OSError as exc:
        sock.close()
        pytest.skip(f"no {host} here: {exc}")
    return sock


def serve_once(datagrams, server: socket.socket) -> list[bytes]:
    """Answer every waiting datagram with its payload reversed; return what was read."""
    server.settimeout(5)
    queries = datagrams.receive()
    datagrams.send([(i, data[::-1]) for i, data in enumerate(queries)])
    return queries


@pytest.mark.parametrize("batched", [True, False], ids=["recvmmsg", "recvfrom"])
@pytest.mark.parametrize("family,host", FAMILIES, ids=["ipv4", "ipv6"])
def test_each_client_gets_its_own_reply(batched: bool, family: int, host: str) -> None:
    server = bound(family, host)
    datagrams = open_datagrams(server, batched)
    assert isinstance(datagrams, BatchedDatagrams if batched else PlainDatagrams)
    clients = [bound(family, host) for _ in range(4)]
    try:
        sent = {}
        for n in range(3 * BATCH):  # more than one batch waiting
            client = clients[n % len(clients)]
            payload = f"query {n} from {client.getsockname()[1]}".encode()
            client.sendto(payload, server.getsockname()[:2])
            sent[payload] = client
        read: list[bytes] = []
        while len(read) < len(sent):
            batch = serve_once(datagrams, server)
            assert batch and len(batch) <= BATCH
            read += batch
        assert sorted(read) == sorted(sent)
        for client in clients:
            client.settimeout(5)
        got = {client: set() for client in clients}
        for client in clients:
            for _ in range(3 * BATCH // len(clients)):
                got[client].add(client.recv(4096))
        for payload, client in sent.items():
            assert payload[::-1] in got[client]
    finally:
        for sock in (server, *clients):
            sock.close()


@pytest.mark.parametrize("batched", [True, False], ids=["recvmmsg", "recvfrom"])
@pytest.mark.parametrize("family,host", FAMILIES, ids=["ipv4", "ipv6"])
def test_the_source_address_is_the_clients(batched: bool, family: int, host: str) -> None:
    server, client = bound(family, host), bound(family, host)
    try:
        datagrams = open_datagrams(server, batched)
        client.sendto(b"hello", server.getsockname()[:2])
        assert datagrams.receive() == [b"hello"]
        assert datagrams.source(0) == socket.inet_pton(family, client.getsockname()[0])
        assert socket.inet_pton(family, datagrams.host(0)) == datagrams.source(0)
    finally:
        server.close()
        client.close()


def test_a_datagram_too_long_for_its_slot_is_read_as_empty_not_in_part() -> None:
    server, client = bound(*FAMILIES[0]), bound(*FAMILIES[0])
    try:
        datagrams = open_datagrams(server)
        client.sendto(b"x" * (SLOT_BYTES + 100), server.getsockname())
        client.sendto(b"short", server.getsockname())
        read = []
        while len(read) < 2:
            read += datagrams.receive()
        assert read == [b"", b"short"]
    finally:
        server.close()
        client.close()


def test_a_shutdown_wakes_a_blocked_receive() -> None:
    server = bound(*FAMILIES[0])
    datagrams = open_datagrams(server)
    woke = []
    thread = threading.Thread(target=lambda: woke.append(datagrams.receive()))
    thread.start()
    try:
        server.shutdown(socket.SHUT_RDWR)  # what DnsServer.stop() does; UDP says ENOTCONN, yet wakes it
    except OSError:
        pass
    thread.join(timeout=5)
    server.close()
    assert not thread.is_alive() and len(woke) == 1 and not any(woke[0])  # nothing, or one empty datagram
