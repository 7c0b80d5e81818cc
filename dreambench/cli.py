"""The ``dreambench`` command line: parses options, calls the library, prints. No logic of its own.

Each command group lives in ``dreambench/commands/<group>.py`` and exposes ``COMMANDS``, a list of click
commands added to the main group here.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import click

from . import __version__
from .errors import DreambenchError, describe_os_error
from .paths import default_results_dir

COMMAND_MODULES = ["protocol", "data", "models", "methods", "score", "run", "doctor", "tables", "study", "samples",
                   "judge"]


#: What Ctrl-C prints (exit status 130, as a shell reports a process stopped by SIGINT).
INTERRUPTED_LINE = "interrupted: re-run the same command to resume"


class _Group(click.Group):
    """Turns every user-facing error into one line on stderr and exit status 2, a failed write of the
    machine (disk full, read-only folder, SQLite error) into one line naming the file, exit status 1, and
    Ctrl-C into :data:`INTERRUPTED_LINE`, exit status 130 (no traceback)."""

    def invoke(self, ctx: click.Context):
        import sqlite3

        try:
            return super().invoke(ctx)
        except DreambenchError as e:
            for line in str(e).splitlines() or [""]:  # one problem a line (e.g. each refused label), each marked
                click.echo(f"error: {line}", err=True)
            sys.exit(e.exit_code)
        except BrokenPipeError:
            # The reader left (`dreambench run --dry-run | head`): not a failure of the machine. Click's own
            # handler stops quietly, its flushes at exit pacified (exit status 1, no traceback, no line).
            raise
        except (OSError, sqlite3.Error) as e:
            click.echo(f"error: {describe_os_error(e)}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:  # the driver has stopped its workers and recorded the run as interrupted
            click.echo(INTERRUPTED_LINE, err=True)
            sys.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="dreambench")
@click.option(
    "--results",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Results folder (default: $DREAMBENCH_RESULTS or ./results). Commands that take --results use it.",
)
@click.pass_context
def main(ctx: click.Context, results: Path | None) -> None:
    """dreambench: evaluate subject-driven text-to-image personalization (the DreamBooth protocol)."""
    ctx.ensure_object(dict)
    ctx.obj["results"] = results or default_results_dir()


for _name in COMMAND_MODULES:
    for _cmd in importlib.import_module(f"dreambench.commands.{_name}").COMMANDS:
        main.add_command(_cmd)
