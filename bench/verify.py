#!/usr/bin/env python3
"""Benchmark verification under a flood of forged misses: what one miss costs, and one challenge.

Anchors, measured in the same run on the same disk: one SQLite read of the
same database (what a refused miss can at best cost), and smtplib sending
the same message to the same sink (what a challenge can at best cost).

Usage: bench/verify.py [--misses 20000] [--challenges 200] [--dir DIR]
"""

from __future__ import annotations

import argparse
import ipaddress
import random
import smtplib
import sqlite3
import string
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from fswl.app.home import Home  # noqa: E402
from fswl.verify import mail  # noqa: E402
from fswl.verify.settings import VerifySettings  # noqa: E402
from fswl.verify.verifier import Verifier  # noqa: E402
from tests.harness.mail import mail_sink  # noqa: E402

SEED = 2525


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--misses", type=int, default=20000)
    parser.add_argument("--challenges", type=int, default=200)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    rng = random.Random(SEED)
    with tempfile.TemporaryDirectory(dir=args.dir) as temp, mail_sink() as (sink, port):
        home = Home(temp)
        settings = VerifySettings(enabled=True, smarthost=f"127.0.0.1:{port}", spf_refuse=(),
                                  global_per_hour=args.challenges, per_domain_per_hour=args.challenges,
                                  per_address_per_hour=args.challenges)
        verifier = Verifier(home, home.whitelist, settings, "wl.test", "http://127.0.0.1:8025")
        senders = [("".join(rng.choices(string.ascii_lowercase, k=8)) + "@" + "".join(rng.choices(string.ascii_lowercase, k=8)) + ".example",
                    ipaddress.IPv4Address(rng.randrange(1 << 24, 224 << 24))) for _ in range(args.challenges + args.misses)]
        started = time.perf_counter()
        for sender, relay in senders[:args.challenges]:
            assert verifier.challenge(sender, relay) is None
        per_challenge = (time.perf_counter() - started) / args.challenges
        started = time.perf_counter()
        for sender, relay in senders[args.challenges:]:
            assert verifier.challenge(sender, relay) == "global hourly cap"
        per_miss = (time.perf_counter() - started) / args.misses
        verifier.close()

        db = sqlite3.connect(Path(temp) / "verify" / "state.sqlite")
        started = time.perf_counter()
        for _ in range(args.misses):
            db.execute("SELECT COUNT(*) FROM sent WHERE at > ?", (time.time() - 3600,)).fetchone()
        anchor_miss = (time.perf_counter() - started) / args.misses
        message = mail.build(settings, mail.Challenge("confirm", "a@example.org", "192.0.2.1", "x" * 39, 0),
                             "wl.test", "http://127.0.0.1:8025", 86400)
        started = time.perf_counter()
        for _ in range(args.challenges):
            with smtplib.SMTP("127.0.0.1", port) as client:
                client.send_message(message, from_addr="<>", to_addrs=["a@example.org"])
        anchor_challenge = (time.perf_counter() - started) / args.challenges
        assert len(sink.messages) == 2 * args.challenges
    print(f"{'':32} {'fswl':>10} {'anchor':>10} {'ratio':>6}")
    print(f"{'refused miss (global cap full)':32} {per_miss * 1e6:8.1f}us {anchor_miss * 1e6:8.1f}us {per_miss / anchor_miss:6.1f}")
    print(f"{'challenge sent':32} {per_challenge * 1e3:8.2f}ms {anchor_challenge * 1e3:8.2f}ms {per_challenge / anchor_challenge:6.1f}")
    print(f"misses refused per second: {1 / per_miss:,.0f}; challenges per second: {1 / per_challenge:,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
