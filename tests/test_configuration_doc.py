"""docs/configuration.md names every setting of every table, with its default; fswl loads every toml block of docs/."""

from __future__ import annotations

import dataclasses
import re

import pytest

from fswl.populate.correlate import CorrelateSettings
from fswl.dns.settings import DnsSettings
from fswl.store.events import HistorySettings
from fswl.config.home import StoreSettings
from fswl.policy.settings import PolicySettings
from fswl.reputation.model import ReputationSettings
from fswl.smtp.settings import SmtpSettings
from fswl.populate.spf import SpfSettings
from fswl.sync.node import SyncSettings
from fswl.verify.settings import VerifySettings
from fswl.web.settings import WebSettings
from tests.conftest import REPO
from tests.harness.docblocks import Block, all_blocks, blocks

TABLES = {
    "store": StoreSettings, "dns": DnsSettings, "policy": PolicySettings, "verify": VerifySettings,
    "smtp": SmtpSettings, "web": WebSettings, "reputation": ReputationSettings, "history": HistorySettings,
    "spf": SpfSettings, "correlate": CorrelateSettings, "sync": SyncSettings,
}


def documented() -> dict[str, dict[str, str]]:
    text = (REPO / "docs" / "configuration.md").read_text()
    tables: dict[str, dict[str, str]] = {}
    for match in re.finditer(r"^## \[(\w+)\]\n(.*?)(?=^## |\Z)", text, re.S | re.M):
        rows = re.findall(r"^\| `(\w+)` \| `(.*?)` \| (.+) \|$", match.group(2), re.M)
        tables[match.group(1)] = {name: default for name, default, _meaning in rows}
    return tables


@pytest.mark.parametrize("table", sorted(TABLES))
def test_every_setting_is_documented_with_its_default(table: str) -> None:
    docs = documented().get(table)
    assert docs is not None, f"docs/configuration.md has no [{table}] section"
    for field in dataclasses.fields(TABLES[table]):
        assert field.name in docs, f"[{table}] {field.name} is not in docs/configuration.md"
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        if isinstance(default, (bool, int, float)) and not isinstance(default, bool):
            assert float(docs[field.name]) == float(default), f"[{table}] {field.name}: doc says {docs[field.name]}"
        elif isinstance(default, bool):
            assert docs[field.name] == str(default).lower()
        elif isinstance(default, str):
            assert docs[field.name] == f'"{default}"', f"[{table}] {field.name}: doc says {docs[field.name]}"
    assert set(docs) == {f.name for f in dataclasses.fields(TABLES[table])}, "a documented setting no longer exists"


def test_the_example_file_is_accepted(tmp_path) -> None:
    """The production example at the top of the page loads without a complaint."""
    from fswl.config import section
    from fswl.app.home import Home
    from fswl.verify.verifier import load_settings

    example = next(block for block in blocks("configuration.md") if block.lang == "toml")
    (tmp_path / "fswl.toml").write_text(example.text)
    home = Home(tmp_path)
    for table, cls in TABLES.items():
        if table != "verify":
            section(home.config, table, cls)
    assert load_settings(home).from_address == "whitelist@wl.example.org"


@pytest.mark.parametrize("block", [b for b in all_blocks() if b.lang == "toml"], ids=str)
def test_every_toml_block_of_the_docs_is_accepted_by_fswl(tmp_path, block: Block) -> None:
    """A ```toml block is a piece of fswl.toml: each table loads as fswl loads it (no unknown key, no bad value)."""
    import tomllib

    from fswl.config import section
    from fswl.app.home import Home
    from fswl.verify.verifier import load_settings

    tables = tomllib.loads(block.text)
    (tmp_path / "fswl.toml").write_text(block.text)
    home = Home(tmp_path)
    for table in tables:
        assert table in TABLES, f"{block}: [{table}] is not a table of fswl.toml"
        if table == "verify":
            load_settings(home)  # takes the documented alias `from` too
        else:
            section(home.config, table, TABLES[table])
