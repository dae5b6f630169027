"""`fswl`: parse, call the core, print. Errors are one line on stderr, never a traceback."""

from __future__ import annotations

import importlib
import logging
from functools import cached_property
from pathlib import Path

import click

from fswl import __version__
from fswl.cli import logs
from fswl.errors import FswlError
from fswl.app.home import Home, default_home

#: Modules of fswl.cli that add commands; each has ``register(group)``.
#: Modules import their heavy dependencies inside the commands, so that
#: `fswl check` stays quick.
COMMAND_MODULES = [
    "entries_cmd",
    "links_cmd",
    "maintenance_cmd",
    "import_cmd",
    "serve_cmd",
    "verify_cmd",
    "spf_cmd",
    "reputation_cmd",
    "correlate_cmd",
    "export_cmd",
    "sync_cmd",
    "peers_cmd",
]


class Context:
    """What every command gets: the home, opened on first use."""

    def __init__(self, home: Path | None) -> None:
        self.home_path = home

    @cached_property
    def home(self) -> Home:
        return Home(self.home_path or default_home())


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--home", type=click.Path(file_okay=False, path_type=Path), envvar="FSWL_HOME",
              help="The fswl home (default: $FSWL_HOME, else the checkout's spool/, else /var/spool/fswl).")
@click.option("-v", "--verbose", count=True, help="Log more (repeat for debug).")
@click.version_option(__version__, prog_name="fswl")
@click.pass_context
def cli(ctx: click.Context, home: Path | None, verbose: int) -> None:
    """fswl: a global whitelist of email senders, kept as a tree of empty files."""
    logs.configure(verbose)
    ctx.obj = Context(home)


for _name in COMMAND_MODULES:
    importlib.import_module(f"fswl.cli.{_name}").register(cli)


def fail(message: str, code: int = 2) -> None:
    """Print one line on stderr and exit with ``code``."""
    click.echo(f"fswl: {message}", err=True)
    raise SystemExit(code)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 1 no, 2 bad input)."""
    try:
        status = cli.main(args=argv, prog_name="fswl", standalone_mode=False)
    except click.UsageError as exc:
        if type(exc).__name__.startswith("NoArgsIsHelp") and exc.ctx is not None:
            click.echo(exc.ctx.get_help())
            return 2
        hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx else ""
        click.echo(f"fswl: {exc.format_message()}{hint}", err=True)
        return 2
    except click.ClickException as exc:
        click.echo(f"fswl: {exc.format_message()}", err=True)
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.Abort:
        click.echo("fswl: aborted", err=True)
        return 130
    except FswlError as exc:
        click.echo(f"fswl: {exc}", err=True)
        return exc.exit_code
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except OSError as exc:
        click.echo(f"fswl: {exc.filename or ''}: {exc.strerror or exc}", err=True)
        return 1
    except Exception as exc:  # the promise is one line, never a traceback
        logging.getLogger("fswl").debug("internal error", exc_info=True)
        click.echo(f"fswl: internal error: {type(exc).__name__}: {exc} (run with -vv for details)", err=True)
        return 1
    return status if isinstance(status, int) else 0
