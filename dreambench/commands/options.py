"""Options shared by several commands (kept apart from cli.py, which imports every command module)."""

from __future__ import annotations

from pathlib import Path

import click


def results_option(f):
    """``--results DIR`` on a subcommand, defaulting to the global ``--results``."""
    return click.option(
        "--results", "results", type=click.Path(file_okay=False, path_type=Path), default=None,
        help="Results folder (default: the global --results).",
    )(f)


def resolve_results(ctx: click.Context, results: Path | None) -> Path:
    """The subcommand's ``--results``, else the global one."""
    return results or ctx.find_root().obj["results"]
