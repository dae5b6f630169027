"""Verification as a Runtime extension: the miss hook, and one Verifier per runtime for smtp and web."""

from __future__ import annotations

import ipaddress
import logging
import threading
import weakref
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from fswl import defaults
from fswl.dns.settings import DnsSettings
from fswl.errors import BadConfig
from fswl.verify.settings import VerifySettings
from fswl.verify.verifier import Verifier, load_settings
from fswl.verify.worker import ChallengeWorker

if TYPE_CHECKING:
    from fswl.serving import Runtime

log = logging.getLogger(__name__)

_verifiers: weakref.WeakKeyDictionary[Runtime, Verifier] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def attach(runtime: Runtime) -> None:
    """Listed in fswl.app.services.EXTENSIONS: with [verify] enabled, every miss may be challenged."""
    settings = load_settings(runtime.home)
    if not settings.enabled:
        return
    check_public(runtime, settings)
    worker = ChallengeWorker(verifier_for(runtime), settings.queue_size, settings.workers)
    runtime.miss_hooks.append(worker.submit)
    runtime.unchallenged_hooks.append(worker.count_refusal)
    runtime.close_hooks.append(worker.stop)


def check_public(runtime: Runtime, settings: VerifySettings) -> None:
    """Challenge mail must name a zone and pages that are really ours: refuse the example zone, warn for loopback."""
    home = runtime.home
    zone = settings.zone_or(home.settings("dns", DnsSettings).zone)
    if zone == defaults.ZONE.lower():
        raise BadConfig(home.config_path, f"[verify] enabled needs a real [dns] zone or verify.zone, not the example "
                                          f"{defaults.ZONE}, and a public [web] base_url")
    host = urlsplit(runtime.base_url).hostname or ""
    if host == "localhost" or _is_loopback(host):
        log.warning("verify: [web] base_url %s is a loopback address: links in challenge mail work only on this host",
                    runtime.base_url)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def verifier_for(runtime: Runtime) -> Verifier:
    """The runtime's Verifier, made on first use (the smtp and web services confirm through it)."""
    with _lock:
        verifier = _verifiers.get(runtime)
        if verifier is None:
            home = runtime.home
            zone = home.settings("dns", DnsSettings).zone
            verifier = Verifier(home, runtime.whitelist, load_settings(home), zone, runtime.base_url)
            _verifiers[runtime] = verifier
            runtime.close_hooks.insert(0, verifier.close)  # closed last, after the worker
        return verifier
