"""End to end: a real Postfix asks `fswl serve policy`; swaks plays the sending relay."""

from __future__ import annotations

import subprocess
import time

import pytest

from fswl.app.home import Home
from tests.conftest import require, run_fswl
from tests.harness.dnsd import fswl_serve
from tests.harness.postfix import postfix

pytestmark = pytest.mark.integration


def swaks(port: int, sender: str, relay: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require("swaks"), "--server", "127.0.0.1", "--port", str(port), "--from", sender,
         "--to", "someone@receiver.example", "--xclient", f"ADDR={relay}", "--body", "hello from fswl's tests",
         "--timeout", "20"],
        capture_output=True, text=True, timeout=60,
    )


def test_listed_mail_is_delivered_and_unlisted_mail_is_deferred_until_listed(tmp_path) -> None:
    require("postfix", "the policy end-to-end test runs a private Postfix")
    require("swaks")
    home = Home(tmp_path / "home")
    home.whitelist.add("dave@umkc.edu", "57.129.134.63")
    with fswl_serve(home.root, "policy") as policy_port, postfix(policy_port) as mta:
        listed = swaks(mta.port, "dave@umkc.edu", "57.129.134.63")
        assert listed.returncode == 0, listed.stdout + listed.stderr
        assert "250 2.0.0 Ok: queued" in listed.stdout

        unlisted = swaks(mta.port, "bob@example.org", "57.129.134.63")
        assert unlisted.returncode != 0
        [reply] = [line for line in unlisted.stdout.splitlines() if line.startswith("<** ")]
        assert reply.startswith("<** 451 4.7.1 <someone@receiver.example>: Recipient address rejected: ")
        assert reply.endswith("sender not yet validated in global whitelist; see "
                              "http://127.0.0.1:8025/why?sender=bob%40example.org&ip=57.129.134.63"), reply

        run_fswl(home, "add", "bob@example.org", "57.129.134.63", check=True)
        deadline = time.monotonic() + 5
        while True:  # the sending MTA's retry
            retry = swaks(mta.port, "bob@example.org", "57.129.134.63")
            if retry.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert "250 2.0.0 Ok: queued" in retry.stdout, retry.stdout

        deadline = time.monotonic() + 30
        while len(mta.delivered()) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        delivered = mta.delivered()
        assert len(delivered) == 2
        assert "From: dave@umkc.edu" in delivered[0] and "From: bob@example.org" in delivered[1]
        assert all("hello from fswl's tests" in message for message in delivered)
