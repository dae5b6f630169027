"""fswl.toml: tables into settings dataclasses, typos refused by name."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from fswl.config import load_config, section
from fswl.errors import BadConfig
from fswl.app.home import Home


@dataclass(frozen=True)
class Example:
    listen: str = "127.0.0.1:1"
    days: float = 1.0
    count: int = 3
    enabled: bool = True
    allow: tuple = field(default_factory=tuple)


def test_defaults_fill_what_the_table_leaves_out() -> None:
    settings = section({"example": {"days": 7, "allow": ["10.0.0.0/8"]}}, "example", Example)
    assert settings == Example(days=7.0, allow=("10.0.0.0/8",))


@pytest.mark.parametrize("table,message", [
    ({"lisen": "x"}, "unknown setting example.lisen (known: allow, count, days, enabled, listen)"),
    ({"count": "3"}, "example.count must be int, not '3'"),
    ({"count": True}, "example.count must be int"),
    ({"enabled": 1}, "example.enabled must be bool"),
], ids=["typo", "string-for-int", "bool-for-int", "int-for-bool"])
def test_bad_settings_are_named(table, message: str) -> None:
    with pytest.raises(BadConfig, match=message.replace("(", r"\(").replace(")", r"\)")):
        section({"example": table}, "example", Example)


def test_a_broken_file_is_one_clear_error(home: Home) -> None:
    home.config_path.write_text("[dns\nzone = 1\n")
    with pytest.raises(BadConfig, match="fswl.toml"):
        load_config(home.root)
    assert load_config(home.root / "missing") == {}
