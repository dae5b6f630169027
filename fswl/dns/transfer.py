"""AXFR: the zone to configured secondaries, REFUSED to everyone else (mailbox names are private).

The records are exactly those of `fswl export --format zone` (fswl.export):
SOA, NS and TXT at the apex, then one A and one TXT per name fswl answers
positively, with wildcards where a prefix lists a relay for every sender.
A secondary (NSD, Knot, BIND) loaded this way answers as fswl does, except
for what a zone cannot say (docs/exports.md, "Differences"); the export's
differential test holds for the transfer too.

A transfer is built by a child process (``python -m fswl.dns.transfer``)
from db/, and the responder only relays its bytes: at a million entries
that is half a minute of CPU, which inside the responder would hold the
interpreter's lock against the UDP thread and slow every answer meanwhile.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import signal
import sys
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

from dnslib import A, NS, QTYPE, RCODE, RR, SOA, TXT, DNSLabel, DNSRecord

from fswl.dns import answers
from fswl.dns.settings import DnsSettings
from fswl.errors import BadInput
from fswl.dns.export_names import ExportNames
from fswl.store.tree import Tree

log = logging.getLogger(__name__)

#: Records per AXFR message; keeps each well under the 64 KiB TCP limit.
RECORDS_PER_MESSAGE = 200
#: Bytes relayed from the child per read.
RELAY_CHUNK = 65536
#: Transfers built at once; more secondaries wait their turn (each build is a walk of db/).
MAX_TRANSFERS = 2
#: A secondary that takes nothing for this long is dropped (its transfer stops).
STALL_SECONDS = 30.0


class ZoneTransfer:
    """Who may transfer one zone, and the transfer itself, built by a child process from ``home``."""

    def __init__(self, home: Path, settings: DnsSettings, base_url: str, serial: Callable[[], int]) -> None:
        self.home = home
        self.settings = settings
        self.base_url = base_url
        self.serial = serial
        self.zone = DNSLabel(settings.zone)
        self._turns = asyncio.Semaphore(MAX_TRANSFERS)
        #: A secondary that takes nothing for this long is dropped.
        self.stall_seconds = STALL_SECONDS
        try:
            self.allowed = [ipaddress.ip_network(str(item), strict=False) for item in settings.axfr_allow]
        except ValueError as exc:
            raise BadInput(f"[dns] axfr_allow: {exc}; list addresses or networks, e.g. [\"192.0.2.53\"]") from exc

    def allows(self, host: str) -> bool:
        """Whether ``host`` (a peer address) may transfer the zone."""
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False
        if address.version == 6 and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address.version == net.version and address in net for net in self.allowed)

    def refusal(self, request: DNSRecord, host: str) -> bytes | None:
        """The one message refusing an AXFR ``request`` from ``host``, or None if it may go ahead."""
        if self.allows(host) and request.q.qname == self.zone:
            return None
        log.warning("AXFR of %s refused to %s", request.q.qname, host)
        return _rcode(request, RCODE.NOTAUTH if self.allows(host) else RCODE.REFUSED)

    async def stream(self, request: DNSRecord, host: str, writer: asyncio.StreamWriter) -> None:
        """Send an allowed transfer: the child's framed messages, relayed as they come.

        At most MAX_TRANSFERS children run at once, and a secondary that
        stops reading for STALL_SECONDS is dropped, so allowed hosts cannot
        pile up walks of db/ either.
        """
        async with self._turns:
            log.warning("AXFR of %s to %s", self.zone, host)
            # -P: nothing importable from the working directory shadows fswl's modules in the child.
            child = await asyncio.create_subprocess_exec(
                sys.executable, "-P", "-m", "fswl.dns.transfer", str(self.serial()), self.base_url,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                env={**os.environ, "FSWL_HOME": str(self.home)})
            sent = 0
            whole = False
            try:
                assert child.stdin is not None and child.stdout is not None
                child.stdin.write(bytes(request.pack()))
                child.stdin.close()
                while chunk := await child.stdout.read(RELAY_CHUNK):
                    writer.write(chunk)
                    sent += len(chunk)
                    await asyncio.wait_for(writer.drain(), self.stall_seconds)
                whole = True
            except asyncio.TimeoutError:
                log.warning("AXFR of %s to %s dropped: the secondary read nothing for %.0f s",
                            self.zone, host, self.stall_seconds)
                writer.close()
                return
            finally:
                if not whole and child.returncode is None:
                    _kill(child.pid)  # the secondary went away: nobody reads the rest
                # At the end of its output the child is exiting by itself: wait, never kill (that was
                # a SIGKILL racing its exit) and never poll (the loop's child watcher reaps it).
                status = await child.wait()
        if status:
            log.error("AXFR of %s to %s failed: the transfer process exited with %d", self.zone, host, status)
            writer.close()  # the stream ended early: closing says so at once, and the secondary retries
        else:
            log.warning("AXFR of %s to %s finished: %d bytes", self.zone, host, sent)


def _kill(pid: int) -> None:
    """SIGKILL a transfer child that may have exited meanwhile.

    Not Process.kill(): that is Popen.send_signal(), which first polls, so
    it can reap the child before the event loop's child watcher does; the
    watcher then finds no child ("Unknown child process pid") and reports
    255 for a transfer that went well. Until the watcher reaps it, the pid
    stays ours (a zombie at worst); the watcher reaps it only moments before
    the return code the caller checked is set, far too soon for the kernel
    to hand the pid to another process.
    """
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def zone_messages(tree: Tree, settings: DnsSettings, base_url: str, serial: int,
                  request: DNSRecord) -> Iterator[bytes]:
    """The wire messages of an allowed AXFR ``request``: SOA, the records, SOA again."""
    zone = DNSLabel(settings.zone)
    ttl = settings.ttl
    soa = answers.soa(settings, serial)
    soa_rr = RR(zone, QTYPE.SOA, ttl=ttl,
                rdata=SOA(soa.mname, soa.rname, (soa.serial, soa.refresh, soa.retry, soa.expire, soa.minimum)))
    batch: list[RR] = [soa_rr]
    for record in _records(tree, settings, base_url, zone):
        batch.append(record)
        if len(batch) >= RECORDS_PER_MESSAGE:
            yield _message(request, batch)
            batch = []
    batch.append(soa_rr)
    yield _message(request, batch)


def _records(tree: Tree, settings: DnsSettings, base_url: str, zone: DNSLabel) -> Iterator[RR]:
    ttl = settings.ttl
    for ns in settings.ns_names():
        yield RR(zone, QTYPE.NS, ttl=ttl, rdata=NS(ns))
    yield RR(zone, QTYPE.TXT, ttl=ttl, rdata=_txt(answers.info_text(base_url)))
    names = ExportNames(tree, settings)
    for line in names.skipped:
        log.warning("AXFR leaves out %s", line)
    for record in names.records():
        owner = DNSLabel(list(record.owner) + list(zone.label))
        yield RR(owner, QTYPE.A, ttl=ttl, rdata=A(record.value))
        yield RR(owner, QTYPE.TXT, ttl=ttl, rdata=_txt(record.text))


def _message(request: DNSRecord, records: list[RR]) -> bytes:
    reply = answers.reply_to(request, aa=1)
    reply.rr = list(records)
    return reply.pack()


def _txt(text: str) -> TXT:
    return TXT(answers.txt_chunks(text))


def _rcode(request: DNSRecord, rcode: int) -> bytes:
    reply = answers.reply_to(request, aa=0)
    reply.header.rcode = rcode
    return reply.pack()


def _write_transfer(request_wire: bytes, serial: int, base_url: str, out: BinaryIO) -> None:
    from fswl.config.home import HomeLayout
    from fswl.store import Whitelist

    home = HomeLayout(Path(os.environ["FSWL_HOME"]))
    settings = home.settings("dns", DnsSettings)
    # Read only: a transfer writes nothing, so the store needs no listeners.
    for wire in zone_messages(Whitelist(home.db).tree, settings, base_url, serial, DNSRecord.parse(request_wire)):
        out.write(len(wire).to_bytes(2, "big") + wire)


if __name__ == "__main__":  # the child of ZoneTransfer.stream: request on stdin, framed messages on stdout
    logging.basicConfig(level=logging.WARNING, format="fswl axfr: %(message)s")
    _write_transfer(sys.stdin.buffer.read(), int(sys.argv[1]), sys.argv[2], sys.stdout.buffer)
    sys.stdout.buffer.flush()
