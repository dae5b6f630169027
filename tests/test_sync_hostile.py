"""A hostile peer talking to `fswl sync --serve` (what SSH runs): refused with a log line, nothing outside db/."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from tests.conftest import REPO, require, run_fswl
from tests.harness.hostile import SERVER_COMMAND, Intruder, Plan, batch, message, record
from tests.harness.sshd import Mesh, free_port, keygen
from tests.test_sync_live import ask, eventually, start, stop

NOW = int(time.time())


def serve(home: Path, conversation: bytes) -> subprocess.CompletedProcess[bytes]:
    (home / "fswl.toml").write_text('[sync]\nnode = "victim"\n')
    return subprocess.run([sys.executable, "-m", "fswl", "--home", str(home), "sync", "--serve"],
                          input=conversation, capture_output=True, cwd=REPO, timeout=60)


def hello(name: str = "evil") -> bytes:
    return message({"hello": name, "version": 1, "have": {}, "known": {}})


def test_hostile_records_are_refused_and_nothing_lands_outside_db(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    records = [
        b"add\tip4/../../../../%s/pwned\t\t%d\n" % (str(tmp_path).encode(), NOW),
        b"add\t%s/pwned\t\t%d\n" % (str(tmp_path).encode(), NOW),
        b"link\tip4/10\t/tmp\t%d\n" % NOW,
        b"link\tip4/10/1\t../../../../escape\t%d\n" % NOW,
        b"add\tip4/10/" + b"x" * 5000 + b"@evil.example\t\t%d\n" % NOW,
        b"add only two fields\n",
        b"add\tip4/57/129/134/63/good@example.org\t\t%d\n" % NOW,
    ]
    conversation = b"".join([
        hello(),
        message({"batch": "evil", "seq": 1}, batch("evil", 1, records)),
        message({"batch": "evil", "seq": 2}, b"not a batch at all\n"),
        message({"batch": "../etc", "seq": 3}, batch("evil", 3, [])),
        message({"end": True}),
        message({"have": {}, "known": {"../x": {"y": 1}}}),
        message({"bye": True}),
    ])
    result = serve(home, conversation)
    stderr = result.stderr.decode()
    assert result.returncode == 1 and "malformed batch header" in stderr  # the ../etc origin ends it
    assert stderr.count("refused") >= 7, stderr
    assert "refused batch evil/2" in stderr and "Traceback" not in stderr
    assert sorted(os.listdir(tmp_path)) == ["home"]
    assert (home / "db/ip4/57/129/134/63/good@example.org").exists()
    assert not (home / "db/ip4/10").exists()


def test_oversized_and_garbage_messages_end_the_conversation(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    for conversation, said in [
        (hello() + b'{"batch": "evil", "seq": 1, "size": 999999999999}\n', "payload"),
        (hello() + b"\xff\xfe garbage\n", "malformed"),
        (b"x" * 100, "cut-off"),
        (b"", "hung up"),
        (hello("victim"), "this node itself"),
    ]:
        result = serve(home, conversation)
        assert result.returncode == 1 and said in result.stderr.decode(), result.stderr
        assert b"Traceback" not in result.stderr
    assert sorted(os.listdir(tmp_path)) == ["home"]


# -- a hostile peer through the real sshd ------------------------------------------------------------

FORGED = "ip4/66/6/6/6/forged@evil.example"
#: A deadline short enough for a test, long enough for a round on a loaded machine.
DEADLINE = 8


@pytest.fixture
def signed(tmp_path: Path) -> Iterator[Mesh]:
    """Mirrors victim and c: each signs its batches, requires signatures and has the other's key; peered."""
    require("sshd", "mirrors sync over SSH")
    require("ssh-keygen")
    mesh = Mesh(tmp_path / "mesh", ["victim", "c"])
    try:
        keygen(mesh.root / "evil_batch_key")
        for name in ("victim", "c"):
            keygen(mesh.root / f"{name}_batch_key")
        for name, other in (("victim", "c"), ("c", "victim")):
            (mesh[name].home / "peers/keys").mkdir(parents=True)
            shutil.copy(mesh.root / f"{other}_batch_key.pub", mesh[name].home / f"peers/keys/{other}.pub")
            with open(mesh[name].home / "fswl.toml", "a") as toml:
                toml.write(f'require_signatures = true\nsigning_key = "{mesh.root / name}_batch_key"\n'
                           f"deadline = {DEADLINE}\ntimeout = 2\n")
            fswl(mesh, name, *mesh.peer_args(other))
        yield mesh
    finally:
        mesh.stop()


def fswl(mesh: Mesh, node: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run_fswl(mesh[node].home, *args, check=check)


def add_evil(mesh: Mesh, plan: Plan, name: str = "evil") -> Path:
    """Make the hostile server (tests.harness.hostile) a peer of victim, reached through c's sshd."""
    plan.name = name
    path = plan.write(mesh.root / f"plan-{name}.json")
    url = f"ssh://root@127.0.0.1:{mesh['c'].sshd.port}/nowhere"
    fswl(mesh, "victim", "peers", "add", name, url, "--key", str(mesh.key), "--known-hosts", str(mesh.known_hosts),
         "--remote-command", f"{SERVER_COMMAND} {path}")
    return path


def set_sync(mesh: Mesh, node: str, **settings: str) -> None:
    """Change [sync] settings of ``node`` (each set in fswl.toml by the fixture)."""
    path = mesh[node].home / "fswl.toml"
    lines = path.read_text().splitlines()
    lines = [f"{line.split(' =')[0]} = {settings[line.split(' =')[0]]}" if line.split(" =")[0] in settings else line
             for line in lines]
    path.write_text("\n".join(lines) + "\n")


def heard(plan: Path) -> list[dict]:
    """The headers the hostile server received."""
    log = Path(f"{plan}.log")
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def seq_of(mesh: Mesh, node: str, origin: str) -> int:
    path = mesh[node].home / "spool" / origin / ".seq"
    return int(path.read_text()) if path.exists() else 0


def spooled(mesh: Mesh, node: str, origin: str) -> list[str]:
    return sorted(p.name for p in (mesh[node].home / "spool" / origin).glob("*.batch"))


def listed(mesh: Mesh, node: str, sender: str, relay: str) -> bool:
    return fswl(mesh, node, "check", sender, relay, check=False).returncode == 0


def forged_ack(mesh: Mesh, node: str, have: dict[str, int]) -> dict:
    """An ack claiming to be ``node``'s, signed with the attacker's key."""
    from cryptography.hazmat.primitives import serialization

    from fswl.sync.acks import signed_bytes

    key = serialization.load_ssh_private_key((mesh.root / "evil_batch_key").read_bytes(), password=None)
    return {"node": node, "have": have, "sig": base64.b64encode(key.sign(signed_bytes(node, have))).decode()}


def attack_batches(mesh: Mesh, flood: int = 200_000) -> list[tuple[dict, bytes]]:
    """Batches a hostile peer sends: garbage, unsigned, signed by the wrong key, a flood, a forged own."""
    forged = [record("add", FORGED, NOW), record("seen", "ip4/66/6/6/7/never@evil.example", NOW)]
    evil_key = mesh.root / "evil_batch_key"
    return [
        ({"batch": "Z", "seq": 7}, b'{"batch":"Z","seq":7}'),  # garbage for an unknown origin
        ({"batch": "c", "seq": 1}, batch("c", 1, forged, evil_key)),  # an origin it does not own: the wrong key
        ({"batch": "c", "seq": 1}, batch("c", 1, forged)),  # a duplicate number, unsigned (c waits: skipped)
        ({"batch": "c", "seq": 2}, batch("c", 2, forged)),
        ({"batch": "evil", "seq": 1}, batch("evil", 1, [record("add", f"ip4/66/6/{i // 250}/{i % 250}/f@evil.example",
                                                              NOW) for i in range(flood)])),  # unsigned flood
        ({"batch": "victim", "seq": 9}, batch("victim", 9, forged, evil_key)),  # the victim's own, forged
    ]


def assert_nothing_forged(mesh: Mesh, node: str) -> None:
    db = mesh[node].home / "db"
    assert not (db / "ip4/66").exists(), sorted(str(p) for p in (db / "ip4/66").rglob("*"))
    for origin in ("Z", "evil"):
        assert not (mesh[node].home / "spool" / origin).exists(), f"spool/{origin} made by a refused header"


@pytest.mark.integration
def test_a_lying_server_gets_nothing_unsigned_applied_and_cannot_renumber_or_drain(signed: Mesh) -> None:
    mesh = signed
    fswl(mesh, "victim", "add", "alice@example.org", "192.0.2.10")  # a signed write, batch victim/1
    fswl(mesh, "victim", "sync", "c", "--full")  # paired: c holds victim/1 and said so, signed
    fswl(mesh, "victim", "add", "bob@example.org", "192.0.2.11")  # victim/2: c must get it, whatever evil says
    plan = Plan(hello={"have": {"victim": 1_000_000, "c": 0}, "known": {"c": {"victim": 1_000_000}},
                       "acks": [forged_ack(mesh, "c", {"victim": 1_000_000}),
                                forged_ack(mesh, "victim", {"victim": 1_000_000})]},
                status={"have": {"victim": 1_000_000}, "known": {"c": {"victim": 1_000_000}}},
                listings={"": {"ip4": ["d", "lie"]}, "ip4": {"66": ["d", "lie"]}, "ip4/66": {"6": ["d", "lie"]},
                          "ip4/66/6": {"6": ["d", "lie"]}, "ip4/66/6/6": {"6": ["d", "lie"], "7": ["d", "lie"]},
                          "ip4/66/6/6/6": {"forged@evil.example": ["e", NOW]},
                          "ip4/66/6/6/7": {"never@evil.example": ["e", NOW]}},  # lying digests
                records="".join(r.decode() for r in [record("add", FORGED, NOW),
                                                     record("seen", "ip4/66/6/6/7/never@evil.example", NOW)]))
    for header, payload in attack_batches(mesh):
        plan.add_batch(header, payload)
    path = add_evil(mesh, plan)
    result = fswl(mesh, "victim", "-v", "sync", "evil", check=False)
    assert "Traceback" not in result.stderr
    for refused, why in (("Z/7", "no fswl-batch header"), ("c/1", "bad signature"), ("evil/1", "unsigned")):
        assert f"refused batch {refused} from evil: Bad sync record: batch" in result.stderr, result.stderr
        assert why in result.stderr
    assert_nothing_forged(mesh, "victim")
    assert not any("digests" in h or "children" in h for h in heard(path)), "reconciled with a liar"
    assert_nothing_forged(mesh, "victim")
    assert seq_of(mesh, "victim", "victim") == 2, "renumbered by a peer's claim"
    fswl(mesh, "victim", "sync", "evil", check=False)  # again: its forged acks and known table drain nothing
    assert spooled(mesh, "victim", "victim") == ["0000000002.batch"], "victim/1 drained only once c acked it"
    fswl(mesh, "victim", "peers", "rm", "evil")
    fswl(mesh, "c", "sync")
    assert listed(mesh, "c", "bob@example.org", "192.0.2.11") and listed(mesh, "c", "alice@example.org", "192.0.2.10")
    assert_nothing_forged(mesh, "c")
    fswl(mesh, "victim", "sync")  # c's signed ack now covers victim/2
    assert spooled(mesh, "victim", "victim") == []
    fswl(mesh, "victim", "add", "carol@example.org", "192.0.2.12")
    fswl(mesh, "victim", "sync")
    assert seq_of(mesh, "victim", "victim") == 3 and listed(mesh, "c", "carol@example.org", "192.0.2.12")


@pytest.mark.integration
def test_an_intruder_client_impersonating_a_peer_changes_nothing_and_replays_are_ignored(signed: Mesh) -> None:
    mesh = signed
    fswl(mesh, "c", "add", "bob@example.org", "192.0.2.11")
    fswl(mesh, "c", "sync")
    fswl(mesh, "c", "rm", "bob@example.org", "192.0.2.11")
    fswl(mesh, "c", "sync")  # c/1 (the add) and c/2 (the removal) reached victim
    # What c signed as c/1, replayed: as itself, and renumbered past the removal.
    genuine = batch("c", 1, [record("add", "ip4/192/0/2/11/bob@example.org", NOW - 100)], mesh.root / "c_batch_key")
    fswl(mesh, "victim", "add", "alice@example.org", "192.0.2.10")
    assert not listed(mesh, "victim", "bob@example.org", "192.0.2.11")
    own = 1  # alice@ and the * below, sealed as the intruder's round begins
    port = free_port()
    fswl(mesh, "victim", "add", "*", "192.0.2.77")
    server = start(mesh, "victim", "serve", "dns", "--listen", f"127.0.0.1:{port}")
    try:
        eventually("fswl serve answering", lambda: ask(port, "77.2.0.192.wl.example.org") is not None)
        intruder = Intruder(mesh, mesh["victim"])
        intruder.send(message({"hello": "c", "version": 1, "full": False, "rescan": False,
                               "have": {"victim": 1_000_000}, "known": {"c": {"victim": 1_000_000}},
                               "acks": [forged_ack(mesh, "c", {"victim": 1_000_000})]}))
        assert intruder.recv()[0]["hello"] == "victim"
        for header, payload in [({"batch": "c", "seq": 1}, genuine), ({"batch": "c", "seq": 3}, genuine),
                                *attack_batches(mesh)]:
            intruder.send(message(header, payload))
        intruder.send(message({"end": True}))
        while not intruder.recv()[0].get("end"):
            pass
        answer = ask(port, "77.2.0.192.wl.example.org")  # the node keeps answering during the attack
        assert answer is not None and "127.0.0." in answer.to_text()
        intruder.send(message({"have": {"victim": 1_000_000}, "known": {"c": {"victim": 1_000_000}}}))
        intruder.recv()
        intruder.send(message({"apply": True}, record("add", FORGED, NOW)))
        intruder.send(message({"bye": True, "held": {"victim": 1_000_000, "c": 1_000_000}}))
        status, err = intruder.finish()
    finally:
        stop(server)
    assert status == 0, err
    assert "refused 1 unsigned records of a reconciliation from c" in err and "Traceback" not in err
    assert "refused batch c/3 from c: Bad sync record: batch c/3 says it is b'c'/b'1'" in err, err
    assert_nothing_forged(mesh, "victim")
    assert not listed(mesh, "victim", "bob@example.org", "192.0.2.11"), "a replayed batch undid a removal"
    assert seq_of(mesh, "victim", "victim") == own and seq_of(mesh, "victim", "c") == 2
    assert spooled(mesh, "victim", "victim") == [f"{own:010d}.batch"], "drained on an intruder's word"
    fswl(mesh, "c", "sync")
    assert listed(mesh, "c", "alice@example.org", "192.0.2.10")


@pytest.mark.integration
def test_a_truncated_stream_applies_nothing_half_and_the_next_round_is_clean(signed: Mesh) -> None:
    mesh = signed
    plan = Plan(cut_after=150)
    plan.add_batch({"batch": "c", "seq": 1}, batch("c", 1, [record("add", FORGED, NOW)] * 100))
    add_evil(mesh, plan)
    result = fswl(mesh, "victim", "sync", "evil", check=False)
    assert result.returncode == 1 and "hung up" in result.stderr and "Traceback" not in result.stderr
    assert_nothing_forged(mesh, "victim")
    fswl(mesh, "c", "add", "dave@example.org", "192.0.2.13")
    fswl(mesh, "victim", "sync", "c")
    assert listed(mesh, "victim", "dave@example.org", "192.0.2.13")


@pytest.mark.integration
def test_a_silent_peer_fails_naming_the_cause(signed: Mesh) -> None:
    mesh = signed
    add_evil(mesh, Plan(silent=True))
    set_sync(mesh, "victim", timeout="0.5", deadline="60")  # silent for 10 timeouts: gone
    result = fswl(mesh, "victim", "sync", "evil", check=False)
    assert result.returncode == 1
    assert "sync with evil failed: evil: timed out after 5 s waiting for its 'hello' message" in result.stderr, \
        result.stderr


@pytest.mark.integration
def test_trickling_peers_are_cut_at_the_deadline_at_both_ends(signed: Mesh) -> None:
    mesh = signed
    pad = {"pad": "x" * 2000}  # 2,000 bytes at 0.8 s each: half an hour without a deadline
    add_evil(mesh, Plan(trickle=0.8, hello={"have": {}, "known": {}, **pad}))
    began = time.monotonic()
    result = fswl(mesh, "victim", "sync", "evil", check=False)
    assert result.returncode == 1 and "deadline of 8 s ([sync] deadline) passed" in result.stderr, result.stderr
    assert time.monotonic() - began < 120
    intruder = Intruder(mesh, mesh["victim"])
    began = time.monotonic()
    intruder.trickle(message({"hello": "c", "version": 1, "have": {}, "known": {}, **pad}), 0.8, began + 300)
    status, err = intruder.finish()
    assert time.monotonic() - began < 120
    assert status == 1 and "deadline of 8 s ([sync] deadline) passed" in err, err


@pytest.mark.integration
def test_the_daemon_syncs_with_the_others_while_one_peer_trickles(signed: Mesh) -> None:
    mesh = signed
    set_sync(mesh, "victim", deadline="600")
    add_evil(mesh, Plan(trickle=0.8, hello={"have": {}, "known": {}, "pad": "x" * 2000}), "slow")
    daemon = start(mesh, "victim", "sync", "--daemon")
    try:
        time.sleep(2)  # the round with slow has begun, and will not end for half an hour
        fswl(mesh, "c", "add", "erin@example.org", "192.0.2.14")
        eventually("c's write reaching victim", lambda: listed(mesh, "victim", "erin@example.org", "192.0.2.14"))
    finally:
        stop(daemon)


def test_the_sync_settings_in_the_mirrors_doc_are_accepted(tmp_path: Path) -> None:
    """Every toml snippet of docs/mirrors.md loads as [sync] settings; the deadline one says what it sets."""
    import re

    from fswl.config import section
    from fswl.app.home import Home
    from fswl.sync.node import SyncSettings

    snippets = re.findall(r"```toml\n(.*?)```", (REPO / "docs/mirrors.md").read_text(), re.S)
    assert len(snippets) >= 3
    for snippet in snippets:
        (tmp_path / "fswl.toml").write_text(snippet)
        settings = section(Home(tmp_path).config, "sync", SyncSettings)
        if "deadline" in snippet:
            assert settings.deadline == 900


@pytest.mark.integration
def test_a_node_restored_from_a_backup_numbers_on_from_its_own_signed_word(signed: Mesh) -> None:
    mesh = signed
    backup = mesh.root / "victim-backup"
    shutil.copytree(mesh["victim"].home, backup)
    for n in range(3):
        fswl(mesh, "victim", "add", f"before{n}@example.org", "192.0.2.20")
        fswl(mesh, "victim", "sync")
    assert seq_of(mesh, "victim", "victim") == 3
    shutil.rmtree(mesh["victim"].home)
    shutil.copytree(backup, mesh["victim"].home)  # back to before those batches
    fswl(mesh, "victim", "add", "after@example.org", "192.0.2.21")
    fswl(mesh, "victim", "sync")
    assert seq_of(mesh, "victim", "victim") == 4, "numbered on from c's copy of victim's own ack"
    assert listed(mesh, "c", "after@example.org", "192.0.2.21"), "the first write after the restore was lost"
