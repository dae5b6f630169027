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
import threading
from typing import TYPE_CHECKING

from fswl.store.events import Event, EventLog, Tail
from fswl.names import IPAddress
from fswl.reputation.model import Reputation, ReputationSettings

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
        self.stop_event = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        """Replay the log (at startup, before any service answers), then follow it in a thread."""
        self.table.apply(self.tail.poll())
        self.thread = threading.Thread(target=self._run, name="fswl-reputation", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        """Stop following the log and write what is pending."""
        self.stop_event.set()
        if self.thread is not None:
            self.thread.join()
            self.thread = None
        self.sync()

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

    def _run(self) -> None:
        while not self.stop_event.wait(self.settings.poll_seconds):
            try:
                self.sync()
            except Exception:  # keep answering from memory; the next poll retries
                log.exception("reputation: reading or writing the event log failed")


def attach(runtime: Runtime) -> None:
    """EXTENSIONS entry: give the runtime a reputation quota when [reputation] enabled is true."""
    settings = runtime.home.settings("reputation", ReputationSettings)
    if not settings.enabled:
        return
    service = ReputationService(runtime, settings)
    service.start()
    runtime.admit_hooks.append(service.admit)
    runtime.close_hooks.append(service.stop)
