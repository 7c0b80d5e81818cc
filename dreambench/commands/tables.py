"""``dreambench tables`` (Tables 1-6 as CSV / LaTeX / Markdown) and ``dreambench report`` (static HTML)."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import DreambenchError
from ..layout import ResultsLayout
from ..tables.names import parse_names
from .options import resolve_results

_results_arg = click.argument("results_dir", required=False, type=click.Path(file_okay=False, path_type=Path))
_no_ci = click.option(
    "--no-ci", is_flag=True, help="Leave the ± 95% interval out of LaTeX, Markdown and HTML."
)
_study = click.option(
    "--study",
    "study_db",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Study database for Table 2 (default: RESULTS_DIR/study.sqlite when present).",
)
_subjects = click.option(
    "--subjects",
    "inputs_subjects",
    default=None,
    metavar="A,B",
    help="Subjects of Tables 5/6 (paper: backpack,dog; default: all with num_inputs labels).",
)


def _split(s: str | None) -> list[str] | None:
    return [x.strip() for x in s.split(",") if x.strip()] if s else None


def _resolve(ctx: click.Context, results_dir: Path | None) -> Path:
    if results_dir is not None:
        return results_dir

    return resolve_results(ctx, results_dir)


_names = click.option(
    "--name",
    "names",
    multiple=True,
    metavar="LABEL=TEXT",
    help='Display name of a label\'s rows, e.g. --name dreambooth="DreamBooth (Stable Diffusion)" (repeatable; '
    "adds to the names `dreambench run --name` recorded).",
)
_reference = click.option(
    "--reference",
    type=click.Choice(["paper", "dreambench-plus"]),
    default=None,
    help="Add published rows, marked (reported), never mixed into measured rows: paper = the DreamBooth paper's "
    "(Ruiz et al. 2023, Tables 1-4); dreambench-plus = DreamBench++'s CP, PF, CP·PF (Peng et al. 2025, its table).",
)


def _parse_names(names: tuple[str, ...]) -> dict[str, str]:
    try:
        return parse_names(names)
    except DreambenchError as e:
        raise click.BadParameter(str(e).removeprefix("--name "), param_hint="--name") from None


@click.command("tables")
@click.argument("results_dirs", nargs=-1, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Output folder (default: RESULTS_DIR/tables; required with several RESULTS_DIRs).",
)
@_names
@click.option(
    "--relabel",
    "relabels",
    multiple=True,
    metavar="DIR:LABEL=NEW",
    help="Show label LABEL of folder DIR as NEW (repeatable): merges folders that each hold a different job "
    "under one label, e.g. dreambooth at two learning rates.",
)
@_reference
@_no_ci
@click.option("--latex-float", type=click.Choice(["table*", "table"]), default="table*", show_default=True,
              help="LaTeX float of the .tex files: table* spans both columns of a two-column paper, table sits "
                   "in one column; a table wider than its line is scaled down to it either way.")
@click.option("--bold-best", is_flag=True,
              help="Bold the best measured value of each metric column in the .tex files (not Real Images, "
                   "not reported rows).")
@_study
@_subjects
@click.pass_context
def tables_cmd(
    ctx: click.Context,
    results_dirs: tuple[Path, ...],
    out_dir: Path | None,
    names: tuple[str, ...],
    relabels: tuple[str, ...],
    reference: str | None,
    no_ci: bool,
    latex_float: str,
    bold_best: bool,
    study_db: Path | None,
    inputs_subjects: str | None,
) -> None:
    """Write Tables 1-6 of RESULTS_DIR (default: the global --results) into RESULTS_DIR/tables/.

    Several RESULTS_DIRs (same protocol, metric profile and model profile) make one table set in --out."""
    display = _parse_names(names)
    if len(results_dirs) > 1 and out_dir is None:
        raise click.UsageError("--out DIR is required with several RESULTS_DIRs")
    import warnings

    from ..tables import build_tables, write_table_set  # heavy: pandas (this module is imported by --help)

    dirs = list(results_dirs) or [_resolve(ctx, None)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        ts = build_tables(dirs, study_db=study_db, inputs_subjects=_split(inputs_subjects), names=display,
                          reference=reference, relabels=relabels)
    for w in caught:
        # The study's (optional package) incomplete rows: one `warning:` line each, as `study analyze` prints.
        if w.category.__name__ == "IncompleteStudyWarning":
            click.echo(f"warning: {w.message}", err=True)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    out = out_dir or ResultsLayout(dirs[0]).tables
    from ..tables.render import LatexStyle

    written = write_table_set(ts, out, ci=not no_ci, latex=LatexStyle(latex_float, bold_best))
    if ts.meta.random_init:
        click.echo("random-init weights: not quality results", err=True)
    numbers = ", ".join(str(t.number) for t in ts.tables)
    click.echo(f"wrote Table(s) {numbers} ({len(written)} files) to {out}")
    for n, why in sorted(ts.skipped.items()):
        click.echo(f"Table {n} not written: {why}" if n not in {t.number for t in ts.tables}
                   else f"Table {n}: {why}")
    for p in ts.problems:
        click.echo(f"warning: disagrees with aggregates.csv: {p}", err=True)


@click.command("report")
@_results_arg
@click.option(
    "--data",
    "data_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Dataset folder with <subject>/ real images (default: $DREAMBENCH_DATA or the shared copy).",
)
@_names
@_reference
@_no_ci
@_study
@_subjects
@click.option(
    "--thumb-size", default=128, show_default=True, help="Longest side of real-image thumbnails (px)."
)
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output folder (default: RESULTS_DIR/report, tables refreshed in RESULTS_DIR/tables); "
                   "with --out nothing is written into RESULTS_DIR.")
@click.pass_context
def report_cmd(
    ctx: click.Context,
    results_dir: Path | None,
    data_dir: Path | None,
    names: tuple[str, ...],
    reference: str | None,
    no_ci: bool,
    study_db: Path | None,
    inputs_subjects: str | None,
    thumb_size: int,
    out_dir: Path | None,
) -> None:
    """Write a static HTML report of RESULTS_DIR into RESULTS_DIR/report/ or --out (open index.html from disk)."""
    display = _parse_names(names)
    from ..report import write_report  # heavy: matplotlib, jinja2, pandas

    results_dir = _resolve(ctx, results_dir)
    index = write_report(
        results_dir,
        out_dir=out_dir,
        data_dir=data_dir,
        ci=not no_ci,
        study_db=study_db,
        inputs_subjects=_split(inputs_subjects),
        thumb_size=thumb_size,
        names=display,
        reference=reference,
    )
    click.echo(f"wrote {index}")


COMMANDS = [tables_cmd, report_cmd]
