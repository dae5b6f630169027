"""The factory every listening service gives the composition root: its table read, its address chosen.

``fswl serve`` calls ``factory(runtime, listen)``; ``listen`` (from the
command line) overrides the ``listen`` of the service's own fswl.toml table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Protocol, TypeVar

if TYPE_CHECKING:
    from fswl.serving.runtime import Runtime


class ListenSettings(Protocol):
    """A service's settings: where it listens unless told otherwise."""

    @property
    def listen(self) -> str: ...


S = TypeVar("S", bound=ListenSettings)
T = TypeVar("T")


def service_factory(table: str, settings_type: type[S],
                    service_type: Callable[[Runtime, S, str], T]) -> Callable[[Runtime, str | None], T]:
    """``make_service`` of a service built as ``service_type(runtime, [table] settings, listen)``."""

    def make_service(runtime: Runtime, listen: str | None) -> T:
        settings = runtime.home.settings(table, settings_type)
        return service_type(runtime, settings, listen or settings.listen)

    make_service.__doc__ = f"The {table} service, configured by [{table}] in fswl.toml."
    return make_service
