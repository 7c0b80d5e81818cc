"""Tables 1-6 built from a loaded results folder and written as CSV, LaTeX, Markdown and plots
(:func:`write_tables`); the package docstring of :mod:`dreambench.tables` says what goes where."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .. import layout, stats
from ..errors import DataError, DreambenchError
from ..io import write_text_atomic, writes_under
from ..judge.table import judge_rows
from ..layout import AGGREGATES, PER_CATEGORY, STUDY_DB, TABLES_README, ResultsLayout
from ..metrics.aggregate import real_photo_labels
from ..metrics.registry import display_names, table_metrics
from . import dreambench_plus as dbp
from . import reference as refs
from . import select
from .compute import (
    REAL_LABEL,
    aggregates,
    compare_aggregates,
    metric_range,
    per_category,
    table1,
    table2,
    table3,
    table4,
    table_inputs,
)
from .load import Results, RunMeta
from .merge import load_many, parse_relabels
from .names import display
from .preference import load_preference
from .render import DEFAULT_LATEX, LatexStyle, Table, write_table

TABLES = layout.TABLES
KEYS = {
    1: "table1_fidelity",
    2: "table2_preference",
    3: "table3_prior_preservation",
    4: "table4_class_noun",
    5: "table5_inputs_dino",
    6: "table6_inputs_clip_t",
    dbp.NUMBER: dbp.KEY,
}
_NOUN_ORDER = {m: i for i, m in enumerate(select.NOUN_MODES)}


class AggregateMismatchWarning(UserWarning):
    """Our recomputed figures disagree with aggregates.csv."""


@dataclass
class TableSet:
    """Every table that could be built, the reasons others could not, and checks on the inputs."""

    results: Results
    tables: list[Table]
    skipped: dict[int, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    per_category: pd.DataFrame | None = None

    @property
    def meta(self) -> RunMeta:
        return self.results.meta


def _m(*names: str) -> list[tuple[str, str]]:
    shown = display_names()
    return [(n, shown.get(n, n)) for n in names]


def _study_table(results: Results, study_db: Path | None) -> tuple[Table | None, str]:
    if study_db is None:
        auto = ResultsLayout(results.results_dir).study_db
        if not auto.is_file():
            return None, f"no study database (pass --study DB or put {STUDY_DB} in the results folder)"
        study_db = auto
    elif not Path(study_db).is_file():
        raise DataError(f"{study_db}: study database not found")
    try:
        pref = load_preference(Path(study_db))
    except ImportError as e:
        return None, f"dreambench.study.analysis is not available ({e})"
    if pref.empty:
        return None, f"{study_db}: no answered study questions"
    data = table2(pref)
    t = Table(
        KEYS[2],
        2,
        "User preference (majority vote per question)",
        data,
        ids=[("question_type", "Question"), ("method_a", "Method A"), ("method_b", "Method B")],
        metrics=[("pct_a", "% A"), ("pct_b", "% B"), ("pct_undecided", "% undecided")],
        digits=1,
        trailing=[("n_questions", "Questions")],
        ranges={m: (0.0, 100.0) for m in ("pct_a", "pct_b", "pct_undecided")},
        notes=[
            f"study database: {Path(study_db).name}",
            ("interval: Wilson score interval of each percentage over the row's questions; n/a for a row "
             "with questions that have fewer answers than the study asked for"),
            *_incomplete_notes(data),
        ],
    )
    return t, ""


def _incomplete_notes(data: pd.DataFrame) -> list[str]:
    """A note per Table 2 row with questions short of answers (its interval is n/a); the warning comes from
    :func:`dreambench.study.analysis.preference_table`, which made the row."""
    notes = [f"incomplete: {r.question_type} {r.method_a} vs {r.method_b}: {r.n_short} of {r.n_planned} "
             "questions have fewer answers than the study asked for (interval n/a, percentages provisional)"
             for r in data.itertuples(index=False) if r.n_short > 0]
    return notes


def _named(data: pd.DataFrame, names: dict[str, str]) -> pd.DataFrame:
    """Measured rows: a ``name`` column (the display name) after ``method`` and ``source = measured``."""
    data = data.copy()
    data.insert(1, "name", [REAL_LABEL if m == REAL_LABEL else display(m, names) for m in data["method"]])
    data["source"] = refs.MEASURED
    return data


def _with_reference(t: Table, ref: str | None) -> Table:
    """Append the reference's reported rows (after every measured row) and the note naming their model
    and subject count; measured figures and intervals are untouched."""
    if not ref:
        return t
    rows = refs.reported_rows(ref, t.number)
    if rows.empty:
        return t
    if "source" not in t.data.columns:
        t.data = t.data.assign(source=refs.MEASURED)
    t.data = pd.concat([t.data, rows], ignore_index=True) if len(t.data) else rows
    note = refs.reported_note(ref, t.number)
    t.notes = [*t.notes, note] if note else t.notes
    return t


def _reported_only(number: int, title: str, ids, metrics, why: str, ref: str | None, **kw) -> Table | None:
    """With a reference, a table whose measured rows are missing still shows the reported rows."""
    if not ref or refs.reported_rows(ref, number).empty:
        return None
    t = Table(KEYS[number], number, title, pd.DataFrame(), ids=ids, metrics=metrics, **kw)
    t.notes = [f"no measured rows: {why}"]
    return _with_reference(t, ref)


_N = [("n_subjects", "n")]
_INTERVAL_NOTE = (
    f"95% interval (CSV: <metric>_lo, <metric>_hi, both NaN below {stats.MIN_SUBJECTS} subjects): "
    f"{stats.INTERVAL_METHOD}; n: subjects behind the row"
)
_REAL_NOTE = ("real (the subject's photos as a method): DINO and CLIP-I are the Real Images row's (each photo "
              "against the subject's other photos); CLIP-T is its photos against the prompts")


def missing_footnotes(table: Table, missing: list[str]) -> list[str]:
    """One line naming the subjects planned for the table's labels that have no scores (``missing``:
    ``label/subject`` from score_meta.json, as scores/missing.csv lists them); n leaves them out."""
    if "method" not in table.data.columns or not missing:
        return []
    labels = set(table.data["method"].astype(str))
    by_label: dict[str, list[str]] = {}
    for item in missing:
        label, _, subject = item.rpartition("/")
        if label in labels:
            by_label.setdefault(label, []).append(subject)
    if not by_label:
        return []
    parts = "; ".join(f"{lab}: {', '.join(sorted(subj))}" for lab, subj in sorted(by_label.items()))
    return [f"missing subjects (planned, no scores, not counted in n; see scores/missing.csv): {parts}"]


def _table1(res: Results, names: dict[str, str], ref: str | None) -> Table:
    main = select.main_labels(res.labels, res.infos)
    t = Table(
        KEYS[1],
        1,
        "Subject fidelity (DINO, CLIP-I) and prompt fidelity (CLIP-T)",
        _named(table1(res.per_image, res.real, main, known=res.per_subject, div=res.div), names),
        ids=[("name", "Method")],
        metrics=_m(*table_metrics(1)),
        trailing=_N,
        notes=[_INTERVAL_NOTE],
    )
    if real_photo_labels(res.per_image):
        t.notes.append(_REAL_NOTE)
        t.bounds = set(real_photo_labels(res.per_image))
    return _with_reference(t, ref)


_T2 = ("User preference (majority vote per question)",
       [("question_type", "Question"), ("method_a", "Method A"), ("method_b", "Method B")],
       [("pct_a", "% A"), ("pct_b", "% B"), ("pct_undecided", "% undecided")])


def _table3(res: Results, names: dict[str, str], ref: str | None) -> tuple[Table | None, str]:
    title, ids, metrics = "Prior preservation loss ablation", [("name", "Method"), ("ppl", "PPL")], _m(
        *table_metrics(3))
    ppl = select.ppl_ablation(res.labels, res.infos)
    if not ppl:
        why = "no labels differing only in prior preservation (method.json ppl true and false)"
        return _reported_only(3, title, ids, metrics, why, ref, trailing=_N), why
    order = sorted(ppl, key=lambda lab: (select.method_of(lab, res.infos), not ppl[lab], lab))
    data = _named(table3(res.per_image, res.div, {lab: ppl[lab] for lab in order}, res.per_subject), names)
    t = Table(KEYS[3], 3, title, data, ids=ids, metrics=metrics, trailing=_N, notes=[_INTERVAL_NOTE])
    return _with_reference(t, ref), ""


def _table4(res: Results, names: dict[str, str], ref: str | None) -> tuple[Table | None, str]:
    title, ids, metrics = "Class noun ablation", [("name", "Method"), ("class_noun", "Class noun")], _m(
        *table_metrics(4))
    noun = select.noun_ablation(res.labels, res.infos)
    if not noun:
        why = "no labels differing only in class_noun_mode (correct and none/wrong)"
        return _reported_only(4, title, ids, metrics, why, ref, trailing=_N), why
    order = sorted(noun, key=lambda lab: (select.method_of(lab, res.infos), _NOUN_ORDER[noun[lab]], lab))
    data = _named(table4(res.per_image, {lab: noun[lab] for lab in order}, res.per_subject), names)
    t = Table(KEYS[4], 4, title, data, ids=ids, metrics=metrics, trailing=_N, notes=[_INTERVAL_NOTE])
    return _with_reference(t, ref), ""


def _table2(res: Results, study_db: Path | None, ref: str | None) -> tuple[Table | None, str]:
    t2, why = _study_table(res, study_db)
    if t2 is not None:
        return _with_reference(t2, ref), ""
    title, ids, metrics = _T2
    return _reported_only(2, title, ids, metrics, why, ref, digits=1,
                          trailing=[("n_questions", "Questions")]), why


def _inputs_tables(res: Results, inputs_subjects: list[str] | None) -> tuple[list[Table], dict[int, str]]:
    pi, infos = res.per_image, res.infos
    inputs = select.inputs_ablation(res.labels, infos)
    tables, skipped = [], {}
    for number in (5, 6):
        metric = table_metrics(number)[0]  # Tables 5 and 6 plot one metric each
        data = table_inputs(pi, inputs, metric, inputs_subjects) if inputs else pd.DataFrame()
        if data.empty:
            skipped[number] = (
                "no labels with num_inputs set in method.json"
                if not inputs
                else f"no images of subjects {', '.join(inputs_subjects or [])} for the num_inputs labels"
            )
            continue
        data.insert(3, "group", [_inputs_group(lab, infos) for lab in data["method"]])
        if data["group"].nunique() > 1:
            data["column"] = data["group"] + ": " + data["subject"]
        else:
            data["column"] = data["subject"]
        if data.duplicated(["num_inputs", "column"]).any():
            # Two labels with identical settings (e.g. two configs): keep both visible, one column each.
            data["column"] = data["method"] + ": " + data["subject"]
        # Column order of the display: group by group, subjects within (first appearance decides).
        data = data.sort_values(["group", "subject", "num_inputs", "method"], kind="stable").reset_index(
            drop=True
        )
        tables.append(
            Table(
                KEYS[number],
                number,
                f"Number of input images vs {display_names()[metric]}",
                data,
                ids=[("num_inputs", "Input images")],
                metrics=_m(metric),
                pivot=("num_inputs", "column"),
                notes=[
                    ("one column per subject; n: subjects behind the row; 95% interval (CSV: _lo, _hi) over "
                     "the subject's per-prompt means (CSV n_prompts; read 'subjects' below as prompts): "
                     f"{stats.INTERVAL_METHOD}")
                ],
            )
        )
    return tables, skipped


def _categories(res: Results) -> pd.DataFrame:
    cat = per_category(res.per_image)
    cat_path = res.scores_dir / PER_CATEGORY
    if cat.empty and cat_path.is_file():
        # No category column in per_image.csv: fall back to what `dreambench score` aggregated.
        cat = pd.read_csv(cat_path, keep_default_na=False).astype({"method": str, "category": str})
        for c in ("mean", "lo", "hi"):
            cat[c] = pd.to_numeric(cat[c], errors="coerce")
    return cat


def _dreambench_plus(res: Results, names: dict[str, str], reference: str | None) -> Table:
    """DreamBench++'s table, with the judge's CP and PF where the folder (each merged one) was judged."""
    labels = select.main_labels(res.labels, res.infos)
    judged = []
    for part in res.parts or [res]:
        if layout.ResultsLayout(part.results_dir).judge_scores.is_file():
            rows = judge_rows(part.results_dir)
            judged.append(rows.assign(label=rows["label"].map(lambda m, r=part.relabeled: (r or {}).get(m, m))))
    extra = dbp.judge_table_rows(pd.concat(judged, ignore_index=True), labels) if judged else None
    return dbp.build(res.per_image, labels, names, reference, extra)


def build_tables(
    results: Results | str | Path | list,
    *,
    study_db: str | Path | None = None,
    inputs_subjects: list[str] | None = None,
    names: dict[str, str] | None = None,
    reference: str | None = None,
    relabels: list[str] | tuple[str, ...] = (),
) -> TableSet:
    """Compute every table that the results support (no files written).

    ``results``: a folder, a loaded :class:`Results`, or a list of folders merged into one table set
    (:func:`dreambench.tables.merge.load_many`). ``names``: display names (label -> text) over those
    recorded in each folder's names.json. ``reference="paper"``: add the paper's reported rows. ``relabels``:
    ``DIR:LABEL=NEW`` items renaming a folder's label (two folders' different jobs under one label)."""
    if isinstance(results, Results):
        res = results
    else:
        dirs = [Path(r) for r in results] if isinstance(results, (list, tuple)) else [Path(results)]
        res = load_many(dirs, parse_relabels(relabels, dirs))
    names = {**res.names, **(names or {})}
    ts = TableSet(res, [])
    ts.tables.append(_table1(res, names, reference))
    for number, (t, why) in ((2, _table2(res, Path(study_db) if study_db else None, reference)),
                             (3, _table3(res, names, reference)), (4, _table4(res, names, reference))):
        if t is not None:
            ts.tables.append(t)
        if why:
            ts.skipped[number] = why if t is None else f"{why} (reported rows only)"
    inputs, skipped = _inputs_tables(res, inputs_subjects)
    ts.tables += inputs
    ts.skipped.update(skipped)
    if dbp.is_dreambench_plus(res.per_image) or reference == dbp.REFERENCE:
        ts.tables.append(_dreambench_plus(res, names, reference))
    ts.tables.sort(key=lambda t: t.number)
    for t in ts.tables:
        t.footnotes += missing_footnotes(t, res.meta.missing if res.meta else [])
        t.ranges = {**_metric_ranges(res.per_image, t), **t.ranges}

    for part in res.parts or [res]:
        agg_path = part.scores_dir / AGGREGATES
        if agg_path.is_file():
            theirs = pd.read_csv(agg_path, keep_default_na=False)
            if part.relabeled and "method" in theirs:
                theirs["method"] = theirs["method"].map(lambda m, r=part.relabeled: r.get(m, m))
            found = compare_aggregates(aggregates(part.per_image, part.div, part.real), theirs)
            ts.problems += found
            for p in found:
                warnings.warn(f"{agg_path}: {p}", AggregateMismatchWarning, stacklevel=2)
    ts.per_category = _categories(res)
    return ts


def _metric_ranges(per_image: pd.DataFrame, t: Table) -> dict[str, tuple[float, float]]:
    """The possible values of each registered metric column of ``t`` in the run's metric profile (others,
    like Table 2's percentages, declare their own)."""
    out = {}
    for m, _ in t.metrics:
        try:
            out[m] = metric_range(per_image, m)
        except (KeyError, DreambenchError):  # not a registered metric
            continue
    return out


def _inputs_group(label: str, infos: dict[str, dict]) -> str:
    """The line a Table 5/6 label belongs to: its method, marked when prior preservation is off."""
    method = select.method_of(label, infos)
    return f"{method} (no PPL)" if select.ppl_of(infos.get(label, {})) is False else method


def _readme(ts: TableSet, written: list[Path]) -> str:
    lines = ["# Tables", ""]
    lines += [f"- {line}" for line in ts.meta.lines()]
    lines += ["", "## Written", ""]
    lines += [f"- [{p.name}]({p.name})" for p in written]
    made = {t.number for t in ts.tables}
    only_reported = {n: why for n, why in ts.skipped.items() if n in made}
    lines += [f"- Table {n}: the paper's reported rows only; {why.removesuffix(' (reported rows only)')}"
              for n, why in sorted(only_reported.items())]
    if set(ts.skipped) - made:
        lines += ["", "## Not written", ""]
        lines += [f"- Table {n}: {why}" for n, why in sorted(ts.skipped.items()) if n not in made]
    if ts.problems:
        lines += ["", "## Disagreements with aggregates.csv", ""] + [f"- {p}" for p in ts.problems]
    return "\n".join(lines) + "\n"


@writes_under("out_dir")
def write_table_set(ts: TableSet, out_dir: Path, *, ci: bool = True, latex: LatexStyle = DEFAULT_LATEX
                    ) -> dict[str, Path]:
    """Write every table of ``ts`` (+ plots, README.md) into ``out_dir``; stale files of skipped tables are
    removed so the folder never mixes runs. ``latex``: the float and bolding of the .tex files. Returns
    ``file name -> path``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for t in ts.tables:
        written += write_table(t, out_dir, ts.meta, ci, latex)
        if t.pivot is not None:
            from .plots import plot_inputs  # matplotlib only when Table 5/6 has data

            ((metric, name),) = t.metrics
            t.plot = plot_inputs(
                t.data,
                metric,
                name,
                out_dir / f"{t.key}.png",
                title=f"Table {t.number}: {t.title} ({ts.meta.run})",
                random_init=ts.meta.random_init,
            )
            written.append(t.plot)
    made = {t.number for t in ts.tables}
    for number in set(ts.skipped) - made:
        for suffix in (".csv", ".tex", ".md", ".png"):
            (out_dir / f"{KEYS[number]}{suffix}").unlink(missing_ok=True)
    written.append(write_text_atomic(out_dir / TABLES_README, _readme(ts, written)))
    return {p.name: p for p in written}


@writes_under("results_dir")
def write_tables(
    results_dir: str | Path,
    *,
    ci: bool = True,
    study_db: str | Path | None = None,
    inputs_subjects: list[str] | None = None,
) -> dict[str, Path]:
    """Compute Tables 1-6 from ``<results_dir>/scores`` and write them to ``<results_dir>/tables``.

    ``ci=False`` drops the ``±`` intervals from LaTeX and Markdown (CSV always keeps ``_lo``/``_hi``).
    ``study_db``: the study database for Table 2 (default ``<results_dir>/study.sqlite`` when present).
    ``inputs_subjects``: subjects of Tables 5/6 (default: all subjects of the num_inputs labels).
    Returns ``file name -> path`` of everything written."""
    ts = build_tables(results_dir, study_db=study_db, inputs_subjects=inputs_subjects)
    return write_table_set(ts, ResultsLayout(results_dir).tables, ci=ci)
