"""fswl.toml: one table per part of fswl, each read into that part's settings dataclass."""

from __future__ import annotations

import dataclasses
import os
import tomllib
from typing import Any, TypeVar

from fswl.errors import BadConfig

T = TypeVar("T")

CONFIG_NAME = "fswl.toml"


def load_config(home: str | os.PathLike[str]) -> dict[str, Any]:
    """Read $FSWL_HOME/fswl.toml; a missing file is an empty configuration."""
    path = os.path.join(home, CONFIG_NAME)
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        return {}
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise BadConfig(path, exc) from exc
    except OSError as exc:
        raise BadConfig(path, exc.strerror) from exc


def section(config: dict[str, Any], name: str, cls: type[T], where: str = CONFIG_NAME) -> T:
    """Build ``cls`` (a dataclass with defaults) from table ``[name]``.

    Unknown keys and values of the wrong type are refused by name, so a typo
    in fswl.toml is an error, not a silently ignored setting.
    """
    table = config.get(name, {})
    if not isinstance(table, dict):
        raise BadConfig(where, f"[{name}] must be a table")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    values = {}
    for key, value in table.items():
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise BadConfig(where, f"unknown setting {name}.{key} (known: {known})")
        values[key] = _check_type(where, f"{name}.{key}", fields[key], value)
    return cls(**values)


def _check_type(where: str, key: str, field: dataclasses.Field[Any], value: Any) -> Any:
    default = field.default if field.default is not dataclasses.MISSING else None
    if default is None and field.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        default = field.default_factory()  # type: ignore[misc]
    if default is None:
        return value
    expected = type(default)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is tuple and isinstance(value, list):
        return tuple(value)
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise BadConfig(where, f"{key} must be {expected.__name__}, not {value!r}")
    return value
