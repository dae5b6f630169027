"""A real unbound resolving one zone from an authority on loopback, as a mail server's resolver would.

Private config, pid file and directory; no chroot, no daemon, no user
switch. Everything outside the zone is refused ("." refuse, and the root
points at a closed port), so nothing ever leaves the machine.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from tests.harness.secondaries import _running, free_port

#: A loopback port nothing listens on: where unbound would find the root.
NOWHERE = "127.0.0.1@9"


def unbound_config(workdir: Path, port: int, zone: str, authority_port: int) -> str:
    """unbound.conf: the zone as a stub of 127.0.0.1@AUTHORITY_PORT, everything else refused."""
    return f"""server:
  interface: 127.0.0.1
  port: {port}
  do-daemonize: no
  chroot: ""
  username: ""
  directory: "{workdir}"
  pidfile: "{workdir}/unbound.pid"
  logfile: ""
  use-syslog: no
  verbosity: 1
  num-threads: 1
  do-ip6: no
  do-not-query-localhost: no
  qname-minimisation: yes
  use-caps-for-id: yes
  module-config: "iterator"
  access-control: 127.0.0.0/8 allow
  local-zone: "." refuse
  local-zone: "{zone}." transparent
remote-control:
  control-enable: no
stub-zone:
  name: "{zone}"
  stub-addr: 127.0.0.1@{authority_port}
stub-zone:
  name: "."
  stub-addr: {NOWHERE}
"""


@contextmanager
def unbound(binary: str, zone: str, authority_port: int, workdir: Path) -> Iterator[int]:
    """``unbound -d -c CONF`` resolving ``zone`` from 127.0.0.1@AUTHORITY_PORT; yields unbound's port.

    Ready once it answers the zone's SOA (through the authority, so that
    must be up first).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = workdir / "unbound.conf"
    config.write_text(unbound_config(workdir, port, zone, authority_port))
    with _running([binary, "-d", "-c", str(config)], workdir / "unbound.log", port, zone):
        yield port
