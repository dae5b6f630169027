"""Sync records and their application: strict parsing, idempotence, nothing outside db/."""

from __future__ import annotations

import os
import posixpath
import time
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from fswl.errors import BadRecord
from fswl.store import Whitelist
from fswl.sync.apply import apply_record, apply_records
from fswl.sync.batches import Spool
from fswl.sync.records import MAGIC, MAX_RECORD_BYTES, Record, parse_batch, parse_record

NOW = 1_700_000_000.0

GOOD = [
    b"add\tip4/57/129/134/63/dave@umkc.edu\t\t1700000000.5\n",
    b"add\tip6/2001/0db8/*@lists.example.org\t\t1700000000\n",
    b"remove\tgroups/aol-out/*\t\t1700000001\n",
    b"seen\tip4/10/*\t\t1700000002",
    b"link\tip4/64/12/1\t../../../groups/aol-out\t1700000003\n",
    b"link\tip4/64\t../groups/g.1\t1700000003\n",
    b"unlink\tip4/64/12/1\t\t1700000004\n",
]

BAD = {
    "dotdot": b"add\tip4/../../etc/passwd\t\t1700000000\n",
    "dotdot-name": b"add\tip4/1/..\t\t1700000000\n",
    "absolute": b"add\t/etc/passwd\t\t1700000000\n",
    "outside-family": b"add\tetc/passwd\t\t1700000000\n",
    "not-a-level": b"add\tip4/1/02/a@b.org\t\t1700000000\n",
    "too-deep": b"add\tip4/1/2/3/4/5/a@b.org\t\t1700000000\n",
    "group-subdir": b"add\tgroups/g/sub/a@b.org\t\t1700000000\n",
    "bad-name": b"add\tip4/1/2/3/4/Dave@UMKC.edu\t\t1700000000\n",
    "hidden-name": b"add\tip4/1/2/3/4/.tomb\t\t1700000000\n",
    "absolute-link": b"link\tip4/64/12/1\t/etc\t1700000000\n",
    "link-out": b"link\tip4/64/12/1\t../../../../outside\t1700000000\n",
    "link-wander": b"link\tip4/64/12/1\t../../../groups/../../x\t1700000000\n",
    "link-not-group": b"link\tip4/64/12/1\t../../../ip4/1\t1700000000\n",
    "link-short-climb": b"link\tip4/64/12/1\t../groups/g\t1700000000\n",
    "unlink-target": b"unlink\tip4/64\t../groups/g\t1700000000\n",
    "unknown-op": b"chmod\tip4/1/a@b.org\t\t1700000000\n",
    "fields": b"add\tip4/1/a@b.org\t1700000000\n",
    "future": b"add\tip4/1/a@b.org\t\t9999999999\n",
    "nan": b"add\tip4/1/a@b.org\t\tnan\n",
    "negative": b"add\tip4/1/a@b.org\t\t-5\n",
    "not-utf8": b"add\tip4/1/\xff@b.org\t\t1700000000\n",
    "oversized": b"add\tip4/1/" + b"a" * MAX_RECORD_BYTES + b"@b.org\t\t1700000000\n",
    "empty": b"\n",
}


@pytest.mark.parametrize("line", GOOD)
def test_good_records_parse_and_round_trip(line: bytes) -> None:
    record = parse_record(line, NOW)
    assert parse_record(record.line(), NOW) == record


@pytest.mark.parametrize("line", list(BAD.values()), ids=list(BAD))
def test_bad_records_are_refused(line: bytes) -> None:
    with pytest.raises(BadRecord):
        parse_record(line, NOW)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | st.lists(
    st.sampled_from([b"add", b"link", b"remove", b"ip4", b"groups", b"..", b"/", b"\t", b"1", b"g", b"a@b.org", b"."]),
    max_size=20).map(b"".join))
def test_parser_accepts_only_paths_inside_db(line: bytes) -> None:
    try:
        record = parse_record(line, NOW)
    except BadRecord:
        return
    assert not record.path.startswith("/") and ".." not in record.path.split("/")
    if record.target is not None:
        landed = posixpath.normpath(posixpath.join(posixpath.dirname(record.path), record.target))
        assert landed.startswith("groups/") and landed.count("/") == 1


def test_apply_is_idempotent_and_the_newest_write_wins(tmp_path: Path) -> None:
    wl = Whitelist(tmp_path / "db")
    add = Record("add", "ip4/57/129/134/63/dave@umkc.edu", NOW)
    assert apply_record(wl, add)
    assert not apply_record(wl, add)  # again: nothing to do
    assert wl.lookup("dave@umkc.edu", "57.129.134.63")
    assert apply_record(wl, Record("remove", add.path, NOW + 10))
    assert not apply_record(wl, add)  # an older creation loses to the tombstone
    assert not apply_record(wl, Record("seen", add.path, NOW + 5))
    assert wl.lookup("dave@umkc.edu", "57.129.134.63") is None
    assert apply_record(wl, Record("add", add.path, NOW + 20))  # a later add wins over the tombstone
    assert wl.lookup("dave@umkc.edu", "57.129.134.63")


def test_seen_refreshes_and_never_creates(tmp_path: Path) -> None:
    wl = Whitelist(tmp_path / "db")
    path = "ip4/10/*"
    apply_record(wl, Record("add", path, NOW))
    assert apply_record(wl, Record("seen", path, NOW + 100))
    assert os.stat(tmp_path / "db" / path).st_mtime == pytest.approx(NOW + 100)
    os.unlink(tmp_path / "db" / path)  # expired here (or never there, or a forger's name): seen cannot tell
    assert not apply_record(wl, Record("seen", path, NOW + 200))
    assert not wl.lookup("x@y.org", "10.1.2.3")
    assert not apply_record(wl, Record("seen", "ip4/66/6/6/6/never@evil.example", NOW))
    assert not (tmp_path / "db/ip4/66").exists()


def test_links_are_applied_into_groups_only(tmp_path: Path) -> None:
    wl = Whitelist(tmp_path / "db")
    apply_record(wl, Record("add", "groups/aol/*", NOW))
    assert apply_record(wl, Record("link", "ip4/64/12/1", NOW, "../../../groups/aol"))
    assert wl.lookup("a@b.org", "64.12.1.9").via == "groups/aol"
    assert apply_record(wl, Record("unlink", "ip4/64/12/1", NOW))
    assert wl.lookup("a@b.org", "64.12.1.9") is None


def test_a_hostile_batch_writes_nothing_outside_db(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    db = tmp_path / "home" / "db"
    wl = Whitelist(db)
    (tmp_path / "outside").mkdir()
    # A link an admin (or an attacker with shell) left that leads out of db/: never written through.
    (db / "ip4").mkdir(parents=True)
    os.symlink(tmp_path / "outside", db / "ip4" / "66")
    lines = [*BAD.values(), b"add\tip4/66/x@y.org\t\t1700000000\n", b"add\tip4/1/ok@b.org\t\t1700000000\n"]
    records = []
    for line in lines:
        try:
            records.append(parse_record(line, NOW))
        except BadRecord as exc:
            records.append(exc)
    with caplog.at_level("WARNING"):
        done = apply_records(wl, records, "hostile")
    assert done.written == 1 and done.refused == len(lines) - 1
    assert os.listdir(tmp_path / "outside") == []
    assert sorted(os.listdir(tmp_path)) == ["home", "outside"]
    assert all("refused" in r.getMessage() for r in caplog.records)
    assert wl.lookup("ok@b.org", "1.2.3.4")


def test_batches_are_sealed_numbered_and_checked(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", "a")
    assert spool.seal() == []
    from fswl.store.journal import Change

    for i in range(3):
        spool.listener(Change("add", f"ip4/1/u{i}@b.org", when=time.time()))
    spool.listener(Change("expire", "ip4/1/old@b.org"))  # expiry stays local
    assert spool.seal() == [1]
    data = spool.read("a", 1)
    assert data.startswith(MAGIC + b" a 1 3\n")
    assert [r.path for r in parse_batch(data, "a", 1)] == [f"ip4/1/u{i}@b.org" for i in range(3)]
    with pytest.raises(BadRecord, match="says it is"):
        parse_batch(data, "a", 2)
    with pytest.raises(BadRecord, match="cut short|records"):
        parse_batch(data[:-5], "a", 1)
    assert spool.drain("a", 1) == 1 and spool.highest("a") == 1


def _write_records(root: str, worker: int, count: int) -> None:
    from fswl.store.journal import Change

    spool = Spool(root, "a")
    for i in range(count):
        spool.listener(Change("add", f"ip4/{worker}/u{i}@b.org", when=NOW))


def test_sealing_while_processes_write_loses_no_record(tmp_path: Path) -> None:
    import multiprocessing

    root = str(tmp_path / "spool")
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_write_records, args=(root, w, 400)) for w in range(1, 5)]
    for worker in workers:
        worker.start()
    spool = Spool(root, "a")
    while any(w.is_alive() for w in workers):
        spool.seal()
    for worker in workers:
        worker.join()
        assert worker.exitcode == 0
    spool.seal()
    seen = [r.path for n in spool.numbers("a") for r in parse_batch(spool.read("a", n), "a", n)]
    assert len(seen) == len(set(seen)) == 1600
    assert spool.numbers("a") == list(range(1, spool.highest("a") + 1))
