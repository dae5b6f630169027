"""The configuration snippets of docs/, taken from the doc text, checked by the programs that read them.

A block marked ``checked`` in its fence (see tests/harness/docblocks.py) is
fed to postconf/postfix, rspamadm, spamassassin, systemd-analyze, nsd-checkzone or
sshd; cron lines are run by tests/test_doc_cron.py; the doc is the only copy.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from fswl.app.home import Home
from tests.conftest import require, run_fswl
from tests.harness.dnsd import fswl_serve
from tests.harness.docblocks import Block, all_blocks, checked
from tests.harness.postfix import configure, documented_restrictions, postfix
from tests.harness.rspamd import confdir as rspamd_confdir
from tests.harness.rspamd import rspamd
from tests.harness.rspamd import symbols as rspamd_symbols
from tests.harness.sshd import Mesh

pytestmark = pytest.mark.integration

LISTED_RELAY = "57.129.134.63"


def kind(block: Block) -> str | None:
    """Which program reads the file a block names (None: no program here checks such a file)."""
    name = block.file or ""
    if name in ("main.cf", "master.cf"):
        return "postfix"
    if name.startswith("local.d/"):
        return "rspamd"
    if name.startswith("/etc/spamassassin/"):
        return "spamassassin"
    if name.endswith(".service"):
        return "systemd"
    if name.startswith("/etc/cron.d/"):
        return "cron"
    if name.endswith("/authorized_keys"):
        return "sshd"
    if name.endswith(".zone"):
        return "zone"
    return None


def test_every_checked_block_is_one_a_checker_reads_and_every_such_block_is_checked() -> None:
    found = all_blocks()
    assert any(b.checked for b in found)
    for block in found:
        if block.checked:
            assert kind(block), f"{block} is marked checked, but no test reads a file named {block.file!r}"
        else:
            assert kind(block) is None, f"{block} is a {block.file} snippet: mark its fence 'checked'"


# -- Postfix -------------------------------------------------------------------

@pytest.mark.parametrize("block", checked("postfix.md", "main.cf"), ids=str)
def test_postconf_reads_the_documented_main_cf_as_written(block: Block) -> None:
    require("postconf", "docs/postfix.md's main.cf lines are checked by Postfix")
    for line in block.text.splitlines():
        assert line.lstrip().startswith("#") or "#" not in line, (
            f"{block}: main.cf has no trailing comments, '#' and what follows become part of the value: {line}")
    root = Path(tempfile.mkdtemp(prefix="fswl-postconf-"))
    try:
        instance = configure(root, block.text)
        postconf = subprocess.run(["postconf", "-c", str(instance.config), "-n"], capture_output=True, text=True,
                                  timeout=60)
        assert postconf.returncode == 0 and not postconf.stderr, postconf.stderr
        check = instance.postfix("check")
        assert check.returncode == 0 and not check.stdout.strip(), check.stdout
        # What Postfix read is what the doc means: each parameter with the doc's value, nothing after it.
        for name, value in parameters(block.text).items():
            got = subprocess.run(["postconf", "-c", str(instance.config), "-h", name], capture_output=True,
                                 text=True, timeout=60, check=True).stdout.strip()
            assert got == value, f"{block}: Postfix reads {name} = {got!r}"
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if "smtpd_policy_service_default_action" in block.text:
        assert parameters(block.text)["smtpd_policy_service_default_action"] == "DUNNO"


def parameters(main_cf: str) -> dict[str, str]:
    """main.cf's parameters with their values as meant: continuation lines joined, '#' lines dropped."""
    found: dict[str, str] = {}
    name = None
    for line in main_cf.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[0].isspace() and name:
            found[name] = f"{found[name]} {line.strip()}".strip()
            continue
        name, _, value = (part.strip() for part in line.partition("="))
        found[name] = value
    return {key: re.sub(r"\s+", " ", value) for key, value in found.items()}


def test_the_documented_main_cf_defers_unlisted_mail_and_lets_mail_through_when_fswl_is_down(home: Home) -> None:
    require("postfix", "docs/postfix.md's main.cf runs in a private Postfix")
    require("swaks")
    with fswl_serve(home.root, "policy") as policy_port:
        main_cf = documented_restrictions(policy_port)
        with postfix(policy_port, main_cf) as mta:
            deferred = swaks(mta.port, "bob@example.org", LISTED_RELAY)
            assert "<** 451 4.7.1" in deferred.stdout, deferred.stdout
    # fswl stopped: nothing listens on its port, and the documented default action lets the mail through.
    with postfix(policy_port, main_cf) as mta:
        passed = swaks(mta.port, "bob@example.org", LISTED_RELAY)
        assert "250 2.0.0 Ok: queued" in passed.stdout, passed.stdout


def swaks(port: int, sender: str, relay: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require("swaks"), "--server", "127.0.0.1", "--port", str(port), "--from", sender,
                           "--to", "someone@receiver.example", "--xclient", f"ADDR={relay}", "--timeout", "30"],
                          capture_output=True, text=True, timeout=90)


# -- rspamd --------------------------------------------------------------------

def rspamd_files() -> dict[str, str]:
    blocks = checked("postfix.md", "local.d/rbl.conf") + checked("postfix.md", "local.d/groups.conf")
    return {block.file: block.text for block in blocks}


def test_rspamadm_configtest_accepts_the_documented_local_d_files(tmp_path: Path) -> None:
    """The doc's local.d files dropped into a copy of the system's /etc/rspamd, then checked strictly."""
    rspamadm = require("rspamadm", "docs/postfix.md's rspamd files are checked by rspamd")
    directory, variables = rspamd_confdir(tmp_path, rspamd_files())
    command = [rspamadm, *variables]
    test = subprocess.run([*command, "configtest", "-s", "-c", str(directory / "rspamd.conf")],
                          capture_output=True, text=True, timeout=60)
    assert test.returncode == 0 and "syntax OK" in test.stdout and not test.stderr.strip(), test.stdout + test.stderr
    # rspamd took the rule and the score from the doc's files, not from somewhere else.
    rbl = subprocess.run([*command, "configdump", "-c", str(directory / "rspamd.conf"), "rbl"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    rule = re.search(r"^    FSWL \{\n(.*?)^    \}", rbl, re.S | re.M)
    assert rule and 'rbl = "wl.example.org";' in rule.group(1) and '"127.0.0.4"' in rule.group(1), rbl
    groups = subprocess.run([*command, "configdump", "-c", str(directory / "rspamd.conf"), "group"],
                            capture_output=True, text=True, timeout=60, check=True).stdout
    assert re.search(r"FSWL_LISTED_RELAY \{[^}]*weight = -2;", groups), groups


@pytest.mark.slow  # a cold rspamd compiles its stock rules first: up to a minute on a busy machine
def test_rspamd_scores_a_listed_relay_through_fswl_dns(tmp_path: Path, home: Home) -> None:
    require("rspamd", "docs/postfix.md's rspamd files are run by rspamd")
    (home.root / "fswl.toml").write_text('[dns]\nzone = "wl.example.org"\n')
    home.whitelist.add("*", LISTED_RELAY)
    message = ("Received: from mail.example.net (mail.example.net [{ip}]) by mx.receiver.example;"
               " Wed, 2 Dec 2026 07:00:00 +0000\nFrom: bob@example.net\nTo: someone@receiver.example\n"
               "Subject: hello\nDate: Wed, 2 Dec 2026 07:00:00 +0000\nMessage-ID: <1@example.net>\n\nhello\n")
    with fswl_serve(home.root, "dns") as dns_port:
        directory, variables = rspamd_confdir(tmp_path, rspamd_files(), dns_port)
        with rspamd(directory, variables) as port:
            listed = rspamd_symbols(port, message.format(ip=LISTED_RELAY), LISTED_RELAY)
            unlisted = rspamd_symbols(port, message.format(ip="198.51.100.9"), "198.51.100.9")
    assert listed.get("FSWL_LISTED_RELAY") == -2.0, listed
    assert "FSWL_LISTED_RELAY" not in unlisted, unlisted


# -- SpamAssassin --------------------------------------------------------------

def spamassassin_rules(tmp_path: Path, *extra: str) -> Path:
    """A rules directory with the doc's file (and ``extra`` test-only lines in a second file)."""
    [block] = checked("postfix.md", "/etc/spamassassin/fswl.cf")
    rules = tmp_path / "sa"
    rules.mkdir()
    (rules / "fswl.cf").write_text(block.text)
    (rules / "zz-test.cf").write_text("".join(line + "\n" for line in extra))
    return rules


def test_spamassassin_lints_the_documented_rule(tmp_path: Path) -> None:
    spamassassin = require("spamassassin", "docs/postfix.md's rule is checked by SpamAssassin")
    lint = subprocess.run([spamassassin, "--lint", "-C", str(spamassassin_rules(tmp_path))],
                          capture_output=True, text=True, timeout=120)
    # -C replaces the stock rules, the list of TLDs (sa-update's) with them: that warning is ours, not the doc's.
    warnings = [line for line in lint.stderr.splitlines() if "no tlds defined" not in line]
    assert lint.returncode == 0 and not warnings, lint.stderr


def test_the_documented_rule_fires_for_a_listed_relay_through_fswl_dns(tmp_path: Path, home: Home) -> None:
    spamassassin = require("spamassassin", "docs/postfix.md's rule is run by SpamAssassin")
    (home.root / "fswl.toml").write_text('[dns]\nzone = "wl.example.org"\n')
    home.whitelist.add("*", LISTED_RELAY)
    with fswl_serve(home.root, "dns") as port:
        rules = spamassassin_rules(tmp_path, f"dns_server 127.0.0.1:{port}", "dns_available yes")
        hits = {relay: scan(spamassassin, rules, relay) for relay in (LISTED_RELAY, "198.51.100.9")}
        # What the doc warns of: without its networks, the last external relay is the MX itself (192.0.2.25).
        doc = (rules / "fswl.cf").read_text()
        (rules / "fswl.cf").write_text(re.sub(r"^(trusted|internal)_networks .*\n", "", doc, flags=re.M))
        unaware = scan(spamassassin, rules, LISTED_RELAY, asked="25.2.0.192")
    assert "RCVD_IN_FSWL" in hits[LISTED_RELAY], hits[LISTED_RELAY]
    assert "RCVD_IN_FSWL" not in hits["198.51.100.9"], hits["198.51.100.9"]
    assert "RCVD_IN_FSWL" not in unaware, unaware


def scan(spamassassin: str, rules: Path, relay: str, asked: str | None = None) -> str:
    """The rules that fired (comma-separated) for a mail handed by ``relay`` to an MX in the doc's networks."""
    message = (f"Received: from mx.receiver.example (mx.receiver.example [192.0.2.25])\n"
               f"\tby filter.receiver.example with ESMTP id 2; Wed, 2 Dec 2026 07:00:01 +0000\n"
               f"Received: from mail.example.net (mail.example.net [{relay}])\n"
               f"\tby mx.receiver.example (192.0.2.25) with ESMTP id 1; Wed, 2 Dec 2026 07:00:00 +0000\n"
               "From: bob@example.net\nTo: someone@receiver.example\nSubject: hello\n"
               "Date: Wed, 2 Dec 2026 07:00:00 +0000\nMessage-ID: <1@example.net>\n\nhello\n")
    result = subprocess.run([spamassassin, "-t", "-D", "dns,check", "-C", str(rules)], input=message,
                            capture_output=True, text=True, timeout=120)
    asked = asked or ".".join(reversed(relay.split(".")))
    assert f"{asked}.wl.example.org" in result.stderr, f"the rule did not ask fswl about {asked}"
    # -C leaves out the stock report template: the debug line names the rules that fired.
    fired = re.search(r"dbg: check: tests=(\S*)", result.stderr)
    assert fired, result.stderr[-3000:]
    return fired.group(1)


# -- systemd -------------------------------------------------------------------

#: Every checked unit of docs/: install.md's fswl.service, mirrors.md's fswl-sync.service.
UNITS = [b for b in all_blocks() if b.checked and (b.file or "").endswith(".service")]
assert {b.file for b in UNITS} >= {"/etc/systemd/system/fswl.service"}, "docs/install.md lost its unit"


@pytest.mark.parametrize("block", UNITS, ids=str)
def test_systemd_analyze_verifies_the_documented_unit(tmp_path: Path, block: Block) -> None:
    """`systemd-analyze verify --root` on a tree with the doc's unit, the system's units, and the ExecStart program."""
    analyze = require("systemd-analyze", "the docs' units are checked by systemd")
    root = tmp_path / "root"
    unit = root / block.file.lstrip("/")
    unit.parent.mkdir(parents=True)
    unit.write_text(block.text)
    # multi-user.target and friends; a copy, as --root chases absolute links inside the tree.
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    [program] = re.findall(r"^ExecStart=(\S+)", block.text, re.M)
    installed = root / program.lstrip("/")  # verify wants the program to exist: the installed fswl
    installed.parent.mkdir(parents=True)
    installed.write_text(f"#!/bin/sh\nexec {Path(sys.executable).parent / 'fswl'} \"$@\"\n")
    installed.chmod(0o755)
    result = subprocess.run([analyze, "verify", f"--root={root}", unit.name], capture_output=True, text=True,
                            timeout=60)
    # verify exits 0 on unknown keys and bad values, and only says so: any word from it is a fault of the unit.
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), result.stdout + result.stderr


# -- sshd ----------------------------------------------------------------------

def test_the_documented_forced_command_serves_a_sync_round(tmp_path: Path) -> None:
    """docs/mirrors.md's authorized_keys line in a real sshd: a round through it carries entries both ways."""
    require("sshd", "docs/mirrors.md's authorized_keys line is run by sshd")
    require("ssh-keygen")
    [block] = checked("mirrors.md", "~fswl/.ssh/authorized_keys")
    mesh = Mesh(tmp_path / "mesh", ["a", "b"])
    try:
        client = Path(f"{mesh.key}.pub").read_text().split()
        line = block.text.replace("/opt/fswl/bin/fswl", str(Path(sys.executable).parent / "fswl"))
        line = line.replace("/var/spool/fswl", str(mesh["b"].home))
        line = re.sub(r"ssh-ed25519 AAAA\.\.\. \S+", " ".join(client[:2]), line)
        (mesh["b"].sshd.dir / "authorized_keys").write_text(line)
        Home(mesh["a"].home).whitelist.add("*", "192.0.2.1")
        Home(mesh["b"].home).whitelist.add("*", LISTED_RELAY)
        # The client asks for something else: the forced command is what runs.
        run_fswl(mesh["a"].home, *mesh.peer_args("b")[:-2], "--remote-command", "false", check=True)
        run_fswl(mesh["a"].home, "sync", "b", check=True)
        assert Home(mesh["a"].home).whitelist.lookup("x@example.net", LISTED_RELAY) is not None
        assert Home(mesh["b"].home).whitelist.lookup("x@example.net", "192.0.2.1") is not None
    finally:
        mesh.stop()


# -- DNS -----------------------------------------------------------------------

def test_nsd_checkzone_accepts_the_documented_delegation(tmp_path: Path) -> None:
    """docs/dns.md's delegation lines, in a parent zone that has only the SOA and NS every zone needs besides."""
    checkzone = require("nsd-checkzone", "docs/dns.md's delegation is checked by NSD")
    [block] = checked("dns.md", "example.org.zone")
    zone = tmp_path / block.file
    zone.write_text("$ORIGIN example.org.\n$TTL 3600\n"
                    "@ IN SOA ns.example.org. hostmaster.example.org. 1 3600 600 604800 300\n"
                    "@ IN NS ns.example.org.\nns IN A 192.0.2.1\n" + block.text)
    result = subprocess.run([checkzone, "example.org", str(zone)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "is ok" in result.stdout, result.stdout + result.stderr
