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
from ..metrics.registry import get_metric
from ..stats import MIN_SUBJECTS
from .compute import REAL_LABEL
from .load import RunMeta

NA = "N/A"
#: What the tables say of their interval cells (:func:`fmt`).
CI_NOTE = ("± : half-width of the 95% interval; [lo, hi]: the interval itself where the figure ± its "
           "half-width would leave the metric's possible range")
#: An interval that is not shown: fewer than MIN_SUBJECTS subjects, or NaN bounds (stats gives NaN then).
NA_INTERVAL = "n/a"
#: The LaTeX packages every .tex needs (stated in its first comment line): rules, and \resizebox for a
#: table wider than the line.
LATEX_PACKAGES = ("booktabs", "graphicx")
#: What a reported row's first cell ends with when the table has no name column (Table 2).
REPORTED_MARK = " (reported)"
#: LaTeX floats: ``table*`` spans both columns of a two-column paper (in one column it is a plain table).
LATEX_FLOATS = ("table*", "table")


@dataclass(frozen=True)
class LatexStyle:
    """How the .tex files are set. ``float``: ``table*`` (default; two-column safe) or ``table`` (one
    column). Either way a tabular wider than the line is scaled down to it (never up), so no box is
    overfull. ``bold_best``: bold the best measured value of each metric column (its direction from the
    metric registry; the Real Images row and the table's ``bounds`` (the real photos as a method) and
    reported rows are not candidates)."""

    float: str = "table*"
    bold_best: bool = False


#: The default: ``table*``, no bold.
DEFAULT_LATEX = LatexStyle()


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
    #: Labels (``method`` column) that are upper or lower bounds rather than methods: never "best".
    bounds: set[str] = field(default_factory=set)
    #: Metric column -> its possible values (e.g. (-1, 1) for a cosine, (0, 100) for a percentage): a cell
    #: whose ``mean ± half-width`` would leave them shows its interval's bounds instead (:func:`fmt`).
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)


def fmt(mean: float, lo: float, hi: float, digits: int = 3, ci: bool = True, unit: str = "",
        value_range: tuple[float, float] | None = None) -> str:
    """``"0.668 ± 0.012"`` (± is the half-width of [lo, hi]); ``"0.668"`` without ci, and when there is no
    interval (NaN or half-NaN bounds: below MIN_SUBJECTS subjects; the table's note says so); a NaN mean
    is ``N/A``. When ``mean ± half-width`` would leave ``value_range`` (an interval clipped to the
    metric's range, or a Wilson interval near 0% or 100%), the bounds themselves: ``"0.889 [0.652, 1.000]"``,
    so no cell implies a value the metric cannot take."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return NA
    s = f"{mean:.{digits}f}{unit}"
    if ci and not (math.isnan(lo) or math.isnan(hi)):
        half = (hi - lo) / 2
        low, high = value_range if value_range is not None else (-math.inf, math.inf)
        tol = 0.5 * 10.0 ** -digits  # what rounding to the shown digits hides
        if mean - half < low - tol or mean + half > high + tol:
            s += f" [{lo:.{digits}f}, {hi:.{digits}f}]"
        else:
            s += f" ± {half:.{digits}f}"
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
    if show and _short(row) and not _isnan(row[m]):
        # Table 2: questions of the row lack answers the study asked for; its notes and the CLI say which.
        return fmt(row[m], nan, nan, table.digits, False, table.unit) + " ± n/a"
    lo, hi = (nan, nan) if few else (row.get(f"{m}_lo", nan), row.get(f"{m}_hi", nan))
    return fmt(row[m], lo, hi, table.digits, show, table.unit, table.ranges.get(m))


def _isnan(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _short(row: dict) -> bool:
    """A Table 2 row with questions that have fewer answers than the study asked for (``n_short``)."""
    n = row.get("n_short")
    return not _isnan(n) and int(n) > 0


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
    if records and "name" not in dict(table.ids):  # e.g. Table 2: no name column carries "(reported)"
        first = table.ids[0][1]
        out[first] = [v + REPORTED_MARK if r.get("source") == "reported" else v for v, r in zip(out[first], records)]
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


def _tex_cell(text: str) -> str:
    return latex_escape(text).replace("±", r"$\pm$")


def to_latex(df: pd.DataFrame, caption: str, label: str, n_left: int = 1, *, style: LatexStyle = DEFAULT_LATEX,
             bold: set[tuple[int, str]] = frozenset(), rule_before: int | None = None) -> str:
    """A booktabs table in a ``style.float`` float: cells and headers LaTeX-escaped, ± as ``$\\pm$``, the
    first ``n_left`` (identifying) columns left-aligned, figures right-aligned; ``bold``: (row, header)
    cells set in bold; ``rule_before``: a ``\\midrule`` above that row (the first reported one). The
    tabular is measured in a box and scaled down to ``\\linewidth`` only when wider."""
    if style.float not in LATEX_FLOATS:
        raise ValueError(f"LaTeX float {style.float!r}; valid: {', '.join(LATEX_FLOATS)}")
    cols = [str(c) for c in df.columns]
    rows = []
    for i, row in enumerate(df.itertuples(index=False)):
        if rule_before is not None and i == rule_before and i > 0:
            rows.append(r"\midrule")
        cells = [rf"\textbf{{{_tex_cell(v)}}}" if (i, c) in bold else _tex_cell(v) for c, v in zip(cols, row)]
        rows.append(" & ".join(cells) + r" \\")
    spec = "l" * n_left + "r" * (len(cols) - n_left)
    return "\n".join([
        rf"\begin{{{style.float}}}", r"\centering", rf"\caption{{{latex_escape(caption)}}}", rf"\label{{{label}}}",
        r"\sbox0{%", rf"\begin{{tabular}}{{{spec}}}", r"\toprule", " & ".join(map(_tex_cell, cols)) + r" \\",
        r"\midrule", *rows, r"\bottomrule", r"\end{tabular}}%",
        r"\ifdim\wd0>\linewidth\resizebox{\linewidth}{!}{\usebox0}\else\usebox0\fi",
        rf"\end{{{style.float}}}"]) + "\n"


def best_cells(table: Table, disp: pd.DataFrame) -> set[tuple[int, str]]:
    """(row, header) of the best measured value of each metric column whose direction the metric registry
    knows (pivot tables: of each subject column); ties all bold. Real Images and reported rows are left out."""
    def direction(metric: str) -> bool | None:
        try:
            return get_metric(metric).higher_is_better
        except Exception:  # noqa: BLE001  (not a registered metric, e.g. Table 2's percentages: no bold)
            return None

    out: set[tuple[int, str]] = set()
    if table.pivot is not None:
        ((metric, _h),) = table.metrics
        up = direction(metric)
        if up is None:
            return out
        for header in disp.columns[1:-1]:
            vals = {i: _number(v) for i, v in enumerate(disp[header])}
            out |= _best(vals, up, header)
        return out
    records = table.data.to_dict("records")
    candidates = [i for i, r in enumerate(records)
                  if r.get("source", "measured") != "reported" and r.get("method") != REAL_LABEL
                  and r.get("method") not in table.bounds]
    for col, header in table.metrics:
        up = direction(col)
        if up is not None:
            out |= _best({i: records[i].get(col) for i in candidates}, up, header)
    return out


def _number(text: str) -> float | None:
    try:
        return float(str(text).split(" ")[0])
    except ValueError:
        return None


def _best(values: dict[int, float | None], higher: bool, header: str) -> set[tuple[int, str]]:
    vals = {i: float(v) for i, v in values.items() if v is not None and not math.isnan(float(v))}
    if len(vals) < 2:  # one row is not "the best" of anything
        return set()
    top = max(vals.values()) if higher else min(vals.values())
    return {(i, header) for i, v in vals.items() if v == top}


def measured(table: Table) -> bool:
    """Whether the table holds a measured row (a table of the paper's reported rows only holds none)."""
    data = table.data
    return len(data) > 0 and ("source" not in data.columns or bool((data["source"] != "reported").any()))


def caption_of(table: Table, meta: RunMeta) -> str:
    """The LaTeX caption: the title and footnotes, as a paper shows it (LaTeX numbers the table; the run
    and its provenance are the file's ``%`` lines). Measured random-init figures say so first."""
    cap = f"{table.title}." + "".join(f" {f.rstrip('.')}." for f in table.footnotes)
    if meta.random_init and measured(table):
        cap = "Random-init weights: not quality results. " + cap
    return cap


def _first_reported(table: Table) -> int | None:
    if table.pivot is not None or "source" not in table.data.columns:
        return None
    rows = [i for i, s in enumerate(table.data["source"]) if s == "reported"]
    return rows[0] if rows else None


def write_table(table: Table, out_dir: Path, meta: RunMeta, ci: bool = True,
                latex: LatexStyle = DEFAULT_LATEX) -> list[Path]:
    """Write ``<key>.csv``, ``<key>.tex`` and ``<key>.md`` into ``out_dir``; returns their paths. A table
    of reported rows only carries no random-init line (nothing in it was measured here)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    notes = table.notes + ([CI_NOTE] if ci else [])
    lines = meta.lines(missing=False)  # the table's footnotes name the subjects its own rows miss
    if not measured(table):
        lines = [x for x in lines if not x.startswith("random-init")]
    header = [f"Table {table.number}: {table.title}", *lines, *notes, *table.footnotes]
    disp = display_frame(table, ci)

    csv_path = out_dir / f"{table.key}.csv"
    with atomic_path(csv_path) as tmp, open(tmp, "w", newline="") as f:
        f.write("".join(f"# {line}\n" for line in header))
        table.data.to_csv(f, index=False, float_format="%.10g")

    packages = ", ".join(LATEX_PACKAGES)
    tex = f"% LaTeX packages needed: {packages} (\\usepackage{{{','.join(LATEX_PACKAGES)}}})\n"
    tex += "".join(f"% {line}\n" for line in header) + to_latex(
        disp, caption_of(table, meta), f"tab:{table.key}", 1 if table.pivot else len(table.ids), style=latex,
        bold=best_cells(table, disp) if latex.bold_best else set(), rule_before=_first_reported(table))
    tex_path = write_text_atomic(out_dir / f"{table.key}.tex", tex)

    md = [f"### Table {table.number}: {table.title}", ""]
    if meta.random_init and measured(table):
        md += ["> **random-init weights: not quality results**", ""]
    md += [f"- {line}" for line in lines if not line.startswith("random-init")]
    md += [f"- {n}" for n in notes]
    md += ["", to_markdown(disp)]
    if table.footnotes:
        md += [*(f"- {f}" for f in table.footnotes), ""]
    md_path = write_text_atomic(out_dir / f"{table.key}.md", "\n".join(md))
    return [csv_path, tex_path, md_path]
