"""A hostile peer talking to `fswl sync --serve` (what SSH runs): refused with a log line, nothing outside db/."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import REPO

NOW = int(time.time())


def message(header: dict, payload: bytes = b"") -> bytes:
    if payload:
        header = {**header, "size": len(payload)}
    return json.dumps(header).encode() + b"\n" + payload


def batch(origin: str, seq: int, lines: list[bytes]) -> bytes:
    return b"fswl-batch 1 %s %d %d\n" % (origin.encode(), seq, len(lines)) + b"".join(lines)


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
