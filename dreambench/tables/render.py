"""Formatting tables for people: display frames (``mean ± half-width``) and CSV / LaTeX / Markdown files.

Every file starts with the run's provenance (:meth:`RunMeta.lines`): CSV as ``#`` comment lines (read
with ``pandas.read_csv(path, comment="#")``), LaTeX as ``%`` comments plus the caption, Markdown as text
above the table. Random-init runs say so first, and in the LaTeX caption.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..io import atomic_path, write_text_atomic
from ..stats import MIN_SUBJECTS
from .load import RunMeta

NA = "N/A"
#: An interval that is not shown: fewer than MIN_SUBJECTS subjects, or NaN bounds (stats gives NaN then).
NA_INTERVAL = "n/a"
#: The LaTeX packages every .tex needs (stated in its first comment line).
LATEX_PACKAGES = ("booktabs",)


@dataclass
class Table:
    """One paper table: tidy ``data`` plus how to show it.

    ``ids``: (column, header) of identifying columns; ``metrics``: (column, header) of figures that have
    ``<column>_lo`` / ``<column>_hi`` intervals; ``pivot``: for Tables 5/6, (row column, column column)
    spreading the single metric; ``trailing``: (column, header) shown as-is after the figures;
    ``plot``: the PNG drawn for it, if any; ``footnotes``: lines shown under the table (Markdown), in the
    LaTeX caption and as CSV ``#`` lines (e.g. the subjects missing from a row)."""

    key: str
    number: int
    title: str
    data: pd.DataFrame
    ids: list[tuple[str, str]]
    metrics: list[tuple[str, str]]
    digits: int = 3
    unit: str = ""
    pivot: tuple[str, str] | None = None
    trailing: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    plot: Path | None = None
    footnotes: list[str] = field(default_factory=list)


def fmt(mean: float, lo: float, hi: float, digits: int = 3, ci: bool = True, unit: str = "") -> str:
    """``"0.668 ± 0.012"`` (± is the half-width of [lo, hi]); ``"0.668"`` without ci; a NaN mean is
    ``N/A``; a NaN (or half-NaN) interval is ``"0.668 ± n/a"``."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return NA
    s = f"{mean:.{digits}f}{unit}"
    if ci:
        s += f" ± {NA_INTERVAL}" if (math.isnan(lo) or math.isnan(hi)) else f" ± {(hi - lo) / 2:.{digits}f}"
    return s


def _row_ci(row: dict, ci: bool) -> tuple[bool, bool]:
    """(show an interval, the interval is n/a) for one tidy row: reported rows never have one; measured
    rows behind fewer than MIN_SUBJECTS subjects show n/a."""
    if row.get("source") == "reported":
        return False, False
    n = row.get("n_subjects")
    few = n is not None and not (isinstance(n, float) and math.isnan(n)) and int(n) < MIN_SUBJECTS
    return ci, few


def _cell(row: dict, m: str, table: Table, ci: bool) -> str:
    show, few = _row_ci(row, ci)
    nan = float("nan")
    lo, hi = (nan, nan) if few else (row.get(f"{m}_lo", nan), row.get(f"{m}_hi", nan))
    return fmt(row[m], lo, hi, table.digits, show, table.unit)


def _plain(v) -> str:
    """An id or trailing cell: integers without ``.0`` (pandas makes n a float next to NaN), NaN empty."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def display_frame(table: Table, ci: bool = True) -> pd.DataFrame:
    """The table as strings with display headers, as it appears in LaTeX, Markdown and HTML."""
    df = table.data
    if table.pivot is not None:
        row_col, col_col = table.pivot
        ((m, _header),) = table.metrics
        cells = {(r[row_col], r[col_col]): _cell(r, m, table, ci) for r in df.to_dict("records")}
        rows_keys = sorted({k[0] for k in cells})
        cols_keys = list(dict.fromkeys(k[1] for k in cells))
        # n: the subjects (columns) behind the row, as in the other tables
        out = pd.DataFrame(
            [[str(rk)] + [cells.get((rk, ck), NA) for ck in cols_keys]
             + [str(sum((rk, ck) in cells for ck in cols_keys))] for rk in rows_keys],
            columns=[dict(table.ids).get(row_col, row_col), *[str(c) for c in cols_keys], "n"],
        )
        return out
    records = df.to_dict("records")
    out = pd.DataFrame({header: [_plain(r.get(col)) for r in records] for col, header in table.ids})
    for col, header in table.metrics:
        out[header] = [_cell(r, col, table, ci) for r in records]
    for col, header in table.trailing:
        out[header] = [_plain(r.get(col)) for r in records]
    return out


def to_markdown(df: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (no extra dependency)."""

    def cell(v) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = [
        "| " + " | ".join(cell(c) for c in df.columns) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(df.columns) - 1)) + "|",
    ]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


_LATEX_SPECIAL = {
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "\\": r"\textbackslash{}",
}


def latex_escape(text: str) -> str:
    return re.sub(r"[&%$#_{}~^\\]", lambda m: _LATEX_SPECIAL[m.group()], str(text))


def to_latex(df: pd.DataFrame, caption: str, label: str, n_left: int = 1) -> str:
    """A booktabs table via pandas' Styler, cells and headers LaTeX-escaped, ± as ``$\\pm$``; the first
    ``n_left`` (identifying) columns left-aligned, figures right-aligned."""
    styler = df.style.hide(axis="index").format(escape="latex").format_index(escape="latex", axis=1)
    body = styler.to_latex(
        hrules=True,
        caption=latex_escape(caption),
        label=label,
        position_float="centering",
        column_format="l" * n_left + "r" * (len(df.columns) - n_left),
    )
    return body.replace("±", r"$\pm$").rstrip("\n") + "\n"


def caption_of(table: Table, meta: RunMeta) -> str:
    cap = f"Table {table.number}: {table.title}. Run {meta.run}, {meta.profile} ({meta.weights} weights)."
    cap += "".join(f" {f.rstrip('.')}." for f in table.footnotes)
    if meta.random_init:
        cap = "random-init weights: not quality results. " + cap
    return cap


def write_table(table: Table, out_dir: Path, meta: RunMeta, ci: bool = True) -> list[Path]:
    """Write ``<key>.csv``, ``<key>.tex`` and ``<key>.md`` into ``out_dir``; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    notes = table.notes + (["± : half-width of the 95% interval"] if ci else [])
    header = [f"Table {table.number}: {table.title}", *meta.lines(), *notes, *table.footnotes]
    disp = display_frame(table, ci)

    csv_path = out_dir / f"{table.key}.csv"
    with atomic_path(csv_path) as tmp, open(tmp, "w", newline="") as f:
        f.write("".join(f"# {line}\n" for line in header))
        table.data.to_csv(f, index=False, float_format="%.10g")

    packages = ", ".join(LATEX_PACKAGES)
    tex = f"% LaTeX packages needed: {packages} (\\usepackage{{{packages}}})\n"
    tex += "".join(f"% {line}\n" for line in header) + to_latex(
        disp, caption_of(table, meta), f"tab:{table.key}", 1 if table.pivot else len(table.ids)
    )
    tex_path = write_text_atomic(out_dir / f"{table.key}.tex", tex)

    md = [f"### Table {table.number}: {table.title}", ""]
    if meta.random_init:
        md += ["> **random-init weights: not quality results**", ""]
    md += [f"- {line}" for line in meta.lines() if not line.startswith("random-init")]
    md += [f"- {n}" for n in notes]
    md += ["", to_markdown(disp)]
    if table.footnotes:
        md += [*(f"- {f}" for f in table.footnotes), ""]
    md_path = write_text_atomic(out_dir / f"{table.key}.md", "\n".join(md))
    return [csv_path, tex_path, md_path]
