"""Verification as a Runtime extension: the miss hook, and one Verifier per runtime for smtp and web."""

from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING

from fswl.dns.settings import DnsSettings
from fswl.verify.verifier import Verifier, load_settings
from fswl.verify.worker import ChallengeWorker

if TYPE_CHECKING:
    from fswl.services import Runtime

_verifiers: weakref.WeakKeyDictionary[Runtime, Verifier] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def attach(runtime: Runtime) -> None:
    """Listed in fswl.services.EXTENSIONS: with [verify] enabled, every miss may be challenged."""
    settings = load_settings(runtime.home)
    if not settings.enabled:
        return
    worker = ChallengeWorker(verifier_for(runtime), settings.queue_size, settings.workers)
    runtime.miss_hooks.append(worker.submit)
    runtime.close_hooks.append(worker.stop)


def verifier_for(runtime: Runtime) -> Verifier:
    """The runtime's Verifier, made on first use (the smtp and web services confirm through it)."""
    with _lock:
        verifier = _verifiers.get(runtime)
        if verifier is None:
            home = runtime.home
            zone = home.settings("dns", DnsSettings).zone
            verifier = Verifier(home, load_settings(home), zone, runtime.base_url)
            _verifiers[runtime] = verifier
            runtime.close_hooks.insert(0, verifier.close)  # closed last, after the worker
        return verifier
