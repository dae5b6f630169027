"""Verifier: make a challenge for a miss, and act on a code (confirm, forgery report, list request)."""

from __future__ import annotations

import hmac
import logging
import os
import subprocess
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from fswl import config
from fswl.store import events as history
from fswl.errors import BadCode, BadSender, CodeGone, FswlError, VerifyRefused
from fswl.names import IPAddress, parse_sender, split_sender
from fswl.util import atomic
from fswl.verify import codes, mail, screen
from fswl.verify.caps import Caps, Limits
from fswl.verify.pending import Pending, Record
from fswl.verify.settings import VerifySettings

if TYPE_CHECKING:
    from email.message import EmailMessage

    from fswl.config.home import HomeLayout
    from fswl.store import Whitelist

log = logging.getLogger(__name__)

CONFIRM, IPV6 = "confirm", "ipv6"
DAY_SECONDS = 86400
SMS_DIGITS = 6
#: Wrong SMS answers, and SMS messages sent, allowed per code.
SMS_TRIES = 5
SMS_SENDS = 3
#: Used records are kept this long past their expiry, so a replay is told "already used".
KEEP_USED_SECONDS = 7 * DAY_SECONDS
#: SPF results are reused this long per (domain, relay): a flood of forged
#: senders at one domain costs one evaluation, not one each.
SPF_CACHE_SECONDS = 600.0
SPF_CACHE_SIZE = 10000
#: A mobile number has this many digits (without the +), fewest and most.
PHONE_DIGITS = (6, 16)
#: verify/events.log is rotated to events.log.1 past this size.
EVENTS_LOG_BYTES = 4 * 1024 * 1024


def load_settings(home: HomeLayout) -> VerifySettings:
    """[verify], where ``from`` (a Python keyword) stands for from_address."""
    table = dict(home.config.get("verify", {}) or {})
    if "from" in table:
        table["from_address"] = table.pop("from")
    return config.section({"verify": table}, "verify", VerifySettings, str(home.config_path))


def verify_dir(home: HomeLayout) -> Path:
    """Where the key, the caps database and the event log live."""
    return home.root / "verify"


def limits_of(settings: VerifySettings) -> Limits:
    """The caps that [verify] sets."""
    return Limits(settings.pair_period_seconds, settings.per_address_per_hour, settings.per_domain_per_hour,
                  settings.global_per_hour)


class Verifier:
    """Challenges and confirmations for one home; safe to share between threads."""

    def __init__(self, home: HomeLayout, whitelist: Whitelist, settings: VerifySettings, zone: str, base_url: str,
                 clock: Callable[[], float] = time.time,
                 send: Callable[[VerifySettings, EmailMessage], None] = mail.send) -> None:
        self.home = home
        #: The wired store (fswl.app.Home.whitelist): a confirmation is journalled for peers like any add.
        self.whitelist = whitelist
        self.settings = settings
        self.zone = settings.zone_or(zone)
        self.base_url = base_url.rstrip("/")
        self.clock = clock
        self.send = send
        directory = verify_dir(home)
        self.key = codes.load_key(directory / "key")
        self.pending = Pending(home.pending)
        self.caps = Caps(directory / "state.sqlite", limits_of(settings), clock)
        self.events_path = directory / "events.log"
        self._spf_cache: OrderedDict[tuple[str, str], tuple[float, str]] = OrderedDict()
        self._spf_lock = threading.Lock()

    # -- challenges --------------------------------------------------------

    def challenge(self, sender: str, address: IPAddress, purpose: str = CONFIRM, relay: str | None = None) -> str | None:
        """Mail a challenge for (sender, relay); None when sent, else why not (counted either way).

        ``address`` is what SPF is checked for; ``relay`` (default the address) is what a confirmation lists.
        """
        record, refused = self._open(sender, address, purpose, relay)
        if record is None:
            return refused
        message = mail.build(self.settings, mail.Challenge(purpose, record.sender, record.relay, self.code_of(record),
                                                           record.expires), self.zone, self.base_url,
                             self.settings.pair_period_seconds)
        try:
            self.send(self.settings, message)
        except VerifyRefused as exc:
            self.pending.drop(record.id)
            self.caps.count("send_failed")
            log.warning("verify: %s", exc)
            return "sending failed"
        self.caps.count("challenges_sent")
        self._event("challenged", record)
        # Never the code: whoever reads the log could confirm for the sender.
        log.info("verify: challenge sent to %s for relay %s (%s)", record.sender, record.relay, purpose)
        return None

    def code_of(self, record: Record) -> str:
        return codes.sign(self.key, record.id, record.expires, record.purpose, record.sender, record.relay)

    def _open(self, sender: str, address: IPAddress, purpose: str, relay: str | None) -> tuple[Record | None, str | None]:
        """Screen, check SPF, take a cap slot and write the pending record: (record, None) or (None, why not)."""
        relay = relay or str(address)
        refused = self._screen(sender, address, relay)
        if refused is None:
            sender = parse_sender(sender)
            refused = self.caps.take(sender, relay)  # checks again, in its transaction
        if refused is not None:
            self.caps.count("refused: " + refused)
            log.info("verify: no challenge to %s via %s: %s", sender, address, refused)
            return None, refused
        now = self.clock()
        record = Record(codes.new_id(), purpose, sender, relay, now, int(now + self.settings.code_ttl_seconds))
        self.pending.put(record)
        return record, None

    def _screen(self, sender: str, address: IPAddress, relay: str) -> str | None:
        """Cheap refusals first (the address, then the caps, read only), SPF (DNS, cached) last."""
        try:
            sender = parse_sender(sender)
        except BadSender:
            return "unparsable sender"
        refused = screen.refusal(self.settings, sender, self.zone) or self.caps.precheck(sender, relay)
        if refused is None and self.settings.spf_refuse:
            result = self._spf(sender, address)
            if result in self.settings.spf_refuse:
                refused = f"SPF {result}"
            elif result == "pass":  # evidence for reputation quotas and correlation
                history.record_spf_pass(self.home, sender, str(address))
        return refused

    def _spf(self, sender: str, address: IPAddress) -> str:
        """pyspf's result for (sender's domain, relay), reused for SPF_CACHE_SECONDS."""
        key = (split_sender(sender)[1], str(address))
        now = time.monotonic()
        with self._spf_lock:
            cached = self._spf_cache.get(key)
            if cached is not None and cached[0] > now:
                return cached[1]
        result = screen.spf_result(self.settings, sender, address)
        with self._spf_lock:
            self._spf_cache[key] = (now + SPF_CACHE_SECONDS, result)
            self._spf_cache.move_to_end(key)
            while len(self._spf_cache) > SPF_CACHE_SIZE:
                self._spf_cache.popitem(last=False)
        self.caps.count("spf_checks")
        return result

    # -- SMS: a second factor after the emailed link, never instead of it ---

    def sms_send(self, text: str, number: str) -> None:
        """Send the SMS code of an IPv6 code (whose link came by mail) to ``number`` (digits, maybe a +)."""
        record = self.lookup(text, (IPV6,))
        if not self.settings.sms_command:
            raise BadCode("SMS is not set up here")
        digits = number.replace(" ", "").replace("-", "").lstrip("+")
        if not digits.isdigit() or not PHONE_DIGITS[0] <= len(digits) <= PHONE_DIGITS[1]:
            raise BadCode(f"a mobile number has {PHONE_DIGITS[0]} to {PHONE_DIGITS[1]} digits, and may start with +")
        if self.caps.tally(f"sms-send:{record.id}", self._keep_seconds(record)) > SMS_SENDS:
            raise BadCode(f"{SMS_SENDS} text messages were already sent for this code")
        try:
            subprocess.run([*self.settings.sms_command, "--", "+" + digits, self.sms_code(text)], check=True,
                           timeout=self.settings.sms_timeout, stdin=subprocess.DEVNULL, capture_output=True)
        except (OSError, subprocess.SubprocessError) as exc:
            self.caps.count("send_failed")
            log.warning("verify: the SMS command failed: %s", exc)
            raise VerifyRefused("sending the SMS failed; try again later") from exc
        self.caps.count("sms_sent")

    def sms_code(self, text: str) -> str:
        digest = codes.derive(self.key, "sms", codes.decode(text).id)
        return str(int.from_bytes(digest[:8], "big") % 10 ** SMS_DIGITS).zfill(SMS_DIGITS)

    def confirm_sms(self, text: str, answer: str) -> Record:
        """Check the digits typed for an IPv6 code against its SMS code, then list the network."""
        record = self.lookup(text, (IPV6,))
        if self.caps.tally(f"sms-try:{record.id}", self._keep_seconds(record)) > SMS_TRIES:
            raise BadCode("too many wrong answers for this code; start again")
        if not hmac.compare_digest(answer.strip().encode("utf-8", "replace"), self.sms_code(text).encode()):
            raise BadCode("that is not the code we sent; try again")
        return self.confirm(text, "sms", (IPV6,), sms_checked=True)

    def needs_sms(self, record: Record) -> bool:
        """With an SMS command set, an IPv6 listing needs the SMS code as well as the emailed link."""
        return record.purpose == IPV6 and bool(self.settings.sms_command)

    # -- codes -------------------------------------------------------------

    def lookup(self, text: str, purposes: tuple[str, ...] = (CONFIRM, IPV6)) -> Record:
        """The record a code stands for; BadCode with a message for the sender otherwise."""
        code = codes.decode(text)
        record = self.pending.get(code.id)
        if (record.purpose not in purposes or record.expires != code.expires
                or not codes.check(self.key, code, record.purpose, record.sender, record.relay)):
            raise BadCode("this code is not valid here (it was changed, or made by another whitelist)")
        if code.expires < self.clock():
            raise CodeGone(f"this code expired on {codes.format_expiry(code.expires)}; "
                          "a new one is mailed when your server retries")
        return record

    def confirm(self, text: str, via: str, purposes: tuple[str, ...] = (CONFIRM, IPV6),
                sms_checked: bool = False) -> Record:
        """Use a code: list its (sender, relay) through the store, log it, and return the record.

        VerifyRefused (the code stays usable) when the entry cannot be written.
        """
        record = self.lookup(text, purposes)
        if self.needs_sms(record) and not sms_checked:
            raise BadCode("this listing also needs a code by SMS: open the link from the mail and follow the SMS step")
        record = self.pending.take(record.id)
        try:
            self.whitelist.add(record.sender, record.relay)
        except (FswlError, OSError) as exc:
            self.pending.untake(record.id)
            log.error("verify: could not list %s for %s: %s", record.sender, record.relay, exc)
            raise VerifyRefused("the whitelist cannot be written just now; nothing was changed and the code "
                                "still works: try again later") from exc
        self.caps.count("confirmed")
        self._event(f"confirmed via {via}", record)
        history.record_confirmation(self.home, record.sender, record.relay)
        log.info("verify: listed %s for %s (confirmed via %s)", record.sender, record.relay, via)
        return record

    def report_forgery(self, text: str) -> Record:
        """"I did not send this": use the code up and block challenges to the address for a while."""
        record = self.pending.take(self.lookup(text).id)
        self.caps.block(record.sender, self.settings.forgery_block_days * DAY_SECONDS)
        self.caps.count("forgery_reports")
        self._event("reported forged", record)
        history.record_abuse(self.home, record.relay, record.sender)
        log.warning("verify: %s reported mail via %s as forged; no challenges to it for %g days",
                    record.sender, record.relay, self.settings.forgery_block_days)
        return record

    def request_list(self, text: str) -> Record:
        """"This relay is a mailing-list server": record the request once per code (the code stays usable)."""
        record = self.lookup(text)
        if self.caps.tally(f"list:{record.id}", self._keep_seconds(record)) == 1:
            self.caps.count("list_requests")
            self._event("list server reported", record)
        return record

    # -- upkeep ------------------------------------------------------------

    def prune(self) -> int:
        return self.pending.prune(self.clock(), KEEP_USED_SECONDS)

    def stats(self) -> dict[str, object]:
        waiting = sum(1 for r in self.pending.waiting() if r.expires >= self.clock())
        return {"pending": waiting, "caps": self.caps.usage(), "counts": self.caps.counters()}

    def close(self) -> None:
        self.caps.close()

    def _keep_seconds(self, record: Record) -> float:
        return max(0.0, record.expires - self.clock()) + KEEP_USED_SECONDS

    def _event(self, what: str, record: Record) -> None:
        """One line in verify/events.log (when, what, sender, relay, purpose); rotated once past EVENTS_LOG_BYTES."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.clock()))
        line = f"{stamp} {what} {record.sender} {record.relay} {record.purpose}\n"
        with self._spf_lock:  # one rotation at a time in this process; a racing process loses a line at worst
            try:
                if self.events_path.stat().st_size > EVENTS_LOG_BYTES:
                    atomic.replace(self.events_path, self.events_path.with_name(self.events_path.name + ".1"))
            except FileNotFoundError:
                pass
            fd = os.open(self.events_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
            try:
                os.write(fd, line.encode("utf-8", "surrogateescape"))
            finally:
                os.close(fd)
