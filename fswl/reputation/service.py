"""The reputation extension: attaches the quota to every Runtime (see fswl.app.services.EXTENSIONS).

The admit hook runs on the policy service's event loop and touches memory
only.  A thread reads what other processes appended to the event log
(confirmations from the web and SMTP services, other policy processes'
admissions) and appends this process's admissions in one write per poll;
the log is the only state on disk, so a restart replays it.
"""

from __future__ import annotations

import logging
import os
import secrets
from typing import TYPE_CHECKING

from fswl.names import IPAddress
from fswl.reputation.model import Reputation, ReputationSettings
from fswl.store.events import Event, EventLog, Tail
from fswl.util.periodic import Periodic

if TYPE_CHECKING:
    from fswl.serving import Runtime

log = logging.getLogger(__name__)

#: Admissions waiting to be written, at most; beyond this the oldest are dropped from the log (not the count).
MAX_PENDING = 100_000


class ReputationService:
    """A Reputation table kept current from the event log, and its admit hook."""

    def __init__(self, runtime: Runtime, settings: ReputationSettings) -> None:
        self.runtime = runtime
        self.settings = settings
        self.table = Reputation(settings)
        self.log = EventLog.of(runtime.home)
        self.tail = Tail(self.log)
        self.origin = f"{os.getpid()}-{secrets.token_hex(4)}"
        self.pending: list[Event] = []
        self.follower = Periodic(self.sync, settings.poll_seconds, "fswl-reputation",
                                 "reputation: reading or writing the event log failed", log)

    def start(self) -> None:
        """Replay the log (at startup, before any service answers), then follow it in a thread."""
        self.table.apply(self.tail.poll())
        self.follower.start()

    def stop(self) -> None:
        """Stop following the log and write what is pending."""
        self.follower.stop()

    def admit(self, sender: str, address: IPAddress) -> bool:
        """Runtime admit hook: True lets this unlisted message through under the relay's quota."""
        listed = self.runtime.index.senders_at(address) if "index" in self.runtime.__dict__ else ()
        if not self.table.admit(address, listed):
            return False
        if len(self.pending) < MAX_PENDING:
            self.pending.append(Event(self.table.clock(), "seen", str(address), sender, self.origin))
        return True

    def sync(self) -> None:
        """Read the others' new events; write ours."""
        events = [e for e in self.tail.poll() if e.origin != self.origin]
        self.table.apply(events)
        pending, self.pending = self.pending, []
        self.log.append(pending)


def attach(runtime: Runtime) -> None:
    """EXTENSIONS entry: give the runtime a reputation quota when [reputation] enabled is true."""
    settings = runtime.home.settings("reputation", ReputationSettings)
    if not settings.enabled:
        return
    service = ReputationService(runtime, settings)
    service.start()
    runtime.admit_hooks.append(service.admit)
    runtime.close_hooks.append(service.stop)
