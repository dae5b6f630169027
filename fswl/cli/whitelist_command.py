"""The commands that act on the home's whitelist with positional arguments (add, rm, check, link, unlink)."""

from __future__ import annotations

import functools
from typing import Any, Callable

import click

from fswl.store import Whitelist


def whitelist_command(*arguments: str) -> Callable[[Callable[..., Any]], click.Command]:
    """A click command taking ``arguments`` (in order) whose function gets the opened Whitelist first.

    Options stay ordinary ``@click.option`` decorators below this one.
    """

    def decorate(function: Callable[..., Any]) -> click.Command:
        @functools.wraps(function)
        def run(obj: Any, *args: Any, **kwargs: Any) -> Any:
            whitelist: Whitelist = obj.home.whitelist  # opened only when a command runs
            return function(whitelist, *args, **kwargs)

        command: Callable[..., Any] = click.pass_obj(run)
        for name in reversed(arguments):
            command = click.argument(name)(command)
        return click.command()(command)

    return decorate
