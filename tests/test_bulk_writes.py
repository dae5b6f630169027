"""Bulk writes that can be rerun: `fswl import` and add_parallel finish after any interruption, and refuse line by line."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import pytest

from fswl.app.home import Home
from fswl.store import bulk
from fswl.store.whitelist import Whitelist


def _networks(count: int, second: int = 0) -> list[ipaddress.IPv4Network]:
    return [ipaddress.ip_network(f"10.{second + n // 250}.{n % 250}.0/24") for n in range(count)]


def test_import_refuses_lines_under_a_link_and_imports_the_rest(fswl, home: Home) -> None:
    wl = home.whitelist
    wl.add("*@isp.example", "10.1.0.0/16")
    wl.link("10.1.0.0/16", "isp")  # a linked /16: nothing may be made below it
    os.makedirs(home.db / "ip4/10/3")
    os.symlink("3", home.db / "ip4/10/3/3")  # a loop where a /24 would go
    lines = ["# a list", "10.0.1.0/24", "10.1.5.0/24", "10.2.0.0/23", "10.1.7.9", "10.3.3.0/24", "10.4.0.0/24"]
    result = fswl("import", "-", input="\n".join(lines) + "\n")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    err = result.stderr.splitlines()
    assert err[0].startswith("fswl: <stdin>: line 3: 10.1.5.0/24: ") and "linked to groups/isp" in err[0]
    assert err[1].startswith("fswl: <stdin>: line 5: 10.1.7.9/32: ")
    assert err[2].startswith("fswl: <stdin>: line 6: 10.3.3.0/24: ") and "symlink loop" in err[2]
    assert err[-1].startswith("fswl: <stdin>: 4 imported, 3 refused, first: line 3: 10.1.5.0/24: ")
    for listed in ("10.0.1.0/24", "10.2.0.0/24", "10.2.1.0/24", "10.4.0.0/24"):
        assert wl.lookup("x@y.org", listed.split("/")[0]) is not None, listed
    assert not (home.db / "groups/isp/5").exists() and not (home.db / "groups/isp/7").exists()
    # Fixed, the same file imported again finishes the job; what is there is counted, not an error.
    wl.unlink("10.1.0.0/16")
    os.unlink(home.db / "ip4/10/3/3")
    again = fswl("import", "-", input="\n".join(lines) + "\n")
    assert (again.returncode, again.stdout) == (0, "imported 7 entries for * from <stdin>\n"), again.stderr


def test_refusals_in_parallel_workers_reach_the_caller(home: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bulk, "PARALLEL_THRESHOLD", 10)
    wl = home.whitelist
    wl.add("*@isp.example", "10.1.0.0/16")
    wl.link("10.1.0.0/16", "isp")
    networks = _networks(600)  # 10.0.x.0/24, 10.1.x.0/24 (refused) and 10.2.0-99.0/24
    refused: list[tuple[object, str]] = []
    written = bulk.add_parallel(wl, "*", networks, workers=2, refused=lambda n, why: refused.append((n, why)))
    assert written == 350 and len(refused) == 250
    assert all("linked" in why for _n, why in refused)
    assert sum(1 for _ in (home.db / "ip4/10/0").iterdir()) == 250
    assert not any(p.is_dir() for p in (home.db / "groups/isp").iterdir())
    with pytest.raises(Exception, match="linked to groups/isp"):  # without ``refused``, the first refusal raises
        bulk.add_parallel(wl, "*", networks, workers=2)


def test_add_many_counts_what_a_concurrent_writer_made_first(wl: Whitelist, monkeypatch: pytest.MonkeyPatch) -> None:
    """The old failure (`…/*@big.example: File exists`): a directory made, then its entry made by another writer."""
    real_mkdir = os.mkdir

    def mkdir_then_race(path, *args, **kwargs):
        real_mkdir(path, *args, **kwargs)
        path = os.fspath(path)  # the sync outbox makes spool/ directories with Paths through the same os.mkdir
        if path.count(os.sep) and "/ip4/10/" in path and path.rsplit("/", 2)[-2] == "0":
            Path(path, "*@big.example").touch()  # a rerun, a leftover worker or a sync got in between

    networks = _networks(20)
    monkeypatch.setattr("fswl.store.whitelist.os.mkdir", mkdir_then_race)
    assert wl.add_many("*@big.example", networks) == 20
    monkeypatch.undo()
    assert wl.add_many("*@big.example", networks) == 20  # a rerun: all there, counted
    assert sum(1 for _ in Path(wl.db, "ip4/10/0").glob("*/*@big.example")) == 20


def test_a_source_import_does_not_claim_what_it_could_not_write(fswl, home: Home) -> None:
    wl = home.whitelist
    wl.add("*@isp.example", "10.1.0.0/16")
    wl.link("10.1.0.0/16", "isp")
    first = fswl("import", "--source", "dwl", "-", input="10.0.1.0/24\n10.1.5.0/24\n")
    assert first.returncode == 1 and "line 2: 10.1.5.0/24" in first.stderr, first.stderr
    assert "source dwl: 2 entries listed, 0 removed" in first.stdout
    ledger = (home.root / "state/imports/dwl.list").read_text()
    assert ledger == "*\t10.0.1.0/24\n"  # the refused line is not claimed
    # The line leaves the list: nothing to remove under the link, no error.
    again = fswl("import", "--source", "dwl", "-", input="10.0.1.0/24\n")
    assert again.returncode == 0, again.stderr
    assert wl.lookup("x@isp.example", "10.1.5.1") is not None  # the group's own entry is untouched
