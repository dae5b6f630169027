"""AXFR over TCP: the zone `fswl export --format zone` writes, to allowed secondaries only."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import dns.xfr
import dns.rdatatype
import dns.zone
import pytest
from dnslib import DNSRecord

from fswl.dns.settings import DnsSettings
from fswl.dns.transfer import ZoneTransfer
from fswl.app.home import Home
from tests.conftest import require, run_fswl
from tests.harness.dnsd import fswl_serve
from tests.shell import wait_for
from tests.test_dns import add_names_table_entries

ZONE = "wl.example.org"


def make_home(root: Path, allow: list[str]) -> Home:
    home = Home(root)
    add_names_table_entries(home.whitelist)
    allowed = ", ".join(f'"{a}"' for a in allow)
    (root / "fswl.toml").write_text(f'[dns]\nzone = "{ZONE}"\naxfr_allow = [{allowed}]\n')
    return home


def test_an_allowed_secondary_gets_the_exported_zone(tmp_path: Path) -> None:
    home = make_home(tmp_path / "home", ["127.0.0.0/8", "192.0.2.53"])
    with fswl_serve(home.root, "dns") as port:
        transferred = dns.zone.from_xfr(dns.query.xfr("127.0.0.1", ZONE, port=port, timeout=20))
        dig = require("dig")
        out = subprocess.run([dig, "-p", str(port), "@127.0.0.1", ZONE, "AXFR"], capture_output=True, text=True,
                             timeout=30).stdout
    serial = transferred.find_rdataset("@", "SOA")[0].serial
    export = run_fswl(home, "export", "--format", "zone", "--serial", str(serial), check=True).stdout
    exported = dns.zone.from_text(export, origin=ZONE)
    assert _records(transferred) == _records(exported)
    assert len(_records(transferred)) > 20
    names = {name.to_text() for name in transferred.nodes}
    assert "dave.umkc.edu.63.134.129.57" in names
    assert "XFR size" in out and f"dave.umkc.edu.63.134.129.57.{ZONE}." in out


@pytest.mark.parametrize("allow", [["192.0.2.53"], []], ids=["others-only", "nobody"])
def test_anyone_else_is_refused(tmp_path: Path, allow: list[str]) -> None:
    home = make_home(tmp_path / "home", allow)
    with fswl_serve(home.root, "dns") as port:
        dig = require("dig")
        out = subprocess.run([dig, "-p", str(port), "@127.0.0.1", ZONE, "AXFR"], capture_output=True, text=True,
                             timeout=30).stdout
        assert "REFUSED" in out or "Transfer failed" in out
        assert "dave.umkc.edu" not in out
        with pytest.raises(dns.xfr.TransferError) as failed:
            dns.zone.from_xfr(dns.query.xfr("127.0.0.1", ZONE, port=port, timeout=20))
        assert failed.value.rcode == dns.rcode.REFUSED


def _records(zone: dns.zone.Zone) -> set[tuple[str, int, str]]:
    found = set()
    for name, node in zone.nodes.items():
        for rdataset in node.rdatasets:
            for rdata in rdataset:
                found.add((name.to_text().lower(), rdataset.rdtype, rdata.to_text()))
    return found


def transfer_processes() -> list[int]:
    """Pids of AXFR children (``python -m fswl.dns.transfer``) on this machine."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and b"fswl.dns.transfer" in (proc / "cmdline").read_bytes():
                pids.append(int(proc.name))
        except OSError:
            continue  # gone meanwhile
    return pids


@pytest.fixture
def quick_dir(tmp_path: Path):
    """A directory on tmpfs where there is one: 20,000 inodes take 0.1 s there, 3 to 9 s on this VM's ext4."""
    if not os.path.isdir("/dev/shm"):
        yield tmp_path
        return
    base = Path(tempfile.mkdtemp(prefix="fswl-test-", dir="/dev/shm"))
    yield base
    shutil.rmtree(base, ignore_errors=True)


def test_a_secondary_that_hangs_up_leaves_no_transfer_running(quick_dir: Path) -> None:
    home = make_home(quick_dir / "home", ["127.0.0.0/8"])
    for relay in range(400):  # a zone larger than the socket and pipe buffers: the child is still writing
        level = home.root / "db" / "ip4" / "10" / "0" / str(relay // 200) / str(relay % 200)
        level.mkdir(parents=True)
        for n in range(50):
            (level / f"user{n}@example{relay}.com").touch()  # as an admin would: the tree is the interface
    with fswl_serve(home.root, "dns") as port:
        query = dns.message.make_query(ZONE, "AXFR").to_wire()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            conn.sendall(len(query).to_bytes(2, "big") + query)
            assert len(conn.recv(100)) > 0  # the first message is on its way
            assert wait_for(lambda: transfer_processes(), seconds=5)  # built by a child, not the responder
        assert wait_for(lambda: not transfer_processes(), seconds=10)
        assert dns.query.udp(dns.message.make_query(f"user7.example3.com.3.0.0.10.{ZONE}", "A"), "127.0.0.1", port=port,
                             timeout=5).answer


class StalledSecondary:
    """A StreamWriter whose peer reads nothing: every drain waits forever."""

    def __init__(self) -> None:
        self.written = 0
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written += len(data)

    async def drain(self) -> None:
        await asyncio.Event().wait()

    def close(self) -> None:
        self.closed = True


def test_a_stalled_secondary_is_dropped_and_transfers_take_turns(tmp_path: Path) -> None:
    home = make_home(tmp_path / "home", ["127.0.0.1"])
    transfer = ZoneTransfer(home.root, home.settings("dns", DnsSettings), "http://wl.example.org", lambda: 7)
    transfer.stall_seconds = 1.0
    request = DNSRecord.question(ZONE, "AXFR")

    async def three_stalled() -> list[float]:
        async def one() -> float:
            writer = StalledSecondary()
            await transfer.stream(request, "127.0.0.1", writer)  # type: ignore[arg-type]
            assert writer.closed and writer.written > 0
            return time.monotonic() - started

        started = time.monotonic()
        return sorted(await asyncio.gather(one(), one(), one()))

    ended = asyncio.run(three_stalled())
    assert ended[1] < 5 and ended[2] >= ended[0] + 0.9  # two at once; the third waited its turn
    assert wait_for(lambda: not transfer_processes(), seconds=5)  # each child was stopped


def test_completed_transfers_log_success_also_when_several_run_at_once(tmp_path: Path) -> None:
    """The child's exit status survives transfers running side by side (no "exited with 255")."""
    home = make_home(tmp_path / "home", ["127.0.0.0/8"])
    log: list[str] = []
    rounds = 6
    with fswl_serve(home.root, "dns", log=log) as port:
        def one() -> int:
            return len(list(dns.query.xfr("127.0.0.1", ZONE, port=port, timeout=20)))

        assert one() > 0  # one alone
        for _ in range(rounds):  # two at once: the most that run side by side (MAX_TRANSFERS)
            with concurrent.futures.ThreadPoolExecutor(2) as pool:
                assert all(messages > 0 for messages in pool.map(lambda _: one(), range(2)))
        finished = lambda: [line for line in log if "AXFR" in line and "finished" in line]  # noqa: E731
        assert wait_for(lambda: len(finished()) == 1 + 2 * rounds, seconds=10), "".join(log)
    assert not [line for line in log if "failed" in line or "Unknown child" in line or "ERROR" in line], "".join(log)
    assert f"AXFR of {ZONE}. to 127.0.0.1 finished: " in finished()[0]
