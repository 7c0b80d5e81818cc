"""Tables 1-6 of the DreamBooth paper from a scored results folder.

``write_tables(results_dir)`` reads ``<results>/scores`` (and the study database for Table 2) and writes
``<results>/tables/<key>.{csv,tex,md}`` plus PNG plots of Tables 5 and 6 and a README.md that lists what
was written and why a table was skipped. Figures are recomputed from per_image.csv / div.csv / real.csv
(see :mod:`dreambench.tables.compute` for definitions) and checked against aggregates.csv.

Modules: ``load`` (reading the folder), ``select`` (which labels go where), ``compute`` (pure table
functions), ``preference`` (Table 2's study input), ``render`` (display and file formats), ``plots``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..errors import DataError
from ..io import write_text_atomic
from . import select
from .compute import (
    METRIC_NAMES,
    aggregates,
    compare_aggregates,
    per_category,
    table1,
    table2,
    table3,
    table4,
    table_inputs,
)
from .load import AGGREGATES, PER_CATEGORY, STUDY_DB, Results, RunMeta, load_results
from .plots import plot_inputs
from .preference import load_preference
from .render import Table, display_frame, write_table

TABLES = "tables"
KEYS = {
    1: "table1_fidelity",
    2: "table2_preference",
    3: "table3_prior_preservation",
    4: "table4_class_noun",
    5: "table5_inputs_dino",
    6: "table6_inputs_clip_t",
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
    return [(n, METRIC_NAMES.get(n, n)) for n in names]


def _study_table(results: Results, study_db: Path | None) -> tuple[Table | None, str]:
    if study_db is None:
        auto = results.results_dir / STUDY_DB
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
        notes=[
            f"study database: {Path(study_db).name}",
            "interval: bootstrap over questions (multinomial resampling of majority-vote outcomes)",
        ],
    )
    return t, ""


def build_tables(
    results: Results | str | Path,
    *,
    study_db: str | Path | None = None,
    inputs_subjects: list[str] | None = None,
) -> TableSet:
    """Compute every table that the results support (no files written)."""
    res = results if isinstance(results, Results) else load_results(results)
    pi, infos, labels = res.per_image, res.infos, res.labels
    ts = TableSet(res, [])
    interval_note = (
        "95% interval (CSV: <metric>_lo, <metric>_hi): bootstrap over subjects (1000 resamples, seed 0)"
    )

    main = select.main_labels(labels, infos)
    ts.tables.append(
        Table(
            KEYS[1],
            1,
            "Subject fidelity (DINO, CLIP-I) and prompt fidelity (CLIP-T)",
            table1(pi, res.real, main),
            ids=[("method", "Method")],
            metrics=_m("dino", "clip_i", "clip_t"),
            notes=[interval_note],
        )
    )

    t2, why = _study_table(res, Path(study_db) if study_db else None)
    if t2 is not None:
        ts.tables.append(t2)
    else:
        ts.skipped[2] = why

    ppl = select.ppl_ablation(labels, infos)
    if ppl:
        order = sorted(ppl, key=lambda lab: (select.method_of(lab, infos), not ppl[lab], lab))
        data = table3(pi, res.div, {lab: ppl[lab] for lab in order})
        ts.tables.append(
            Table(
                KEYS[3],
                3,
                "Prior preservation loss ablation",
                data,
                ids=[("method", "Method"), ("ppl", "PPL")],
                metrics=_m("pres", "div", "dino", "clip_i", "clip_t"),
                notes=[interval_note],
            )
        )
    else:
        ts.skipped[3] = "no labels differing only in prior preservation (method.json ppl true and false)"

    noun = select.noun_ablation(labels, infos)
    if noun:
        order = sorted(noun, key=lambda lab: (select.method_of(lab, infos), _NOUN_ORDER[noun[lab]], lab))
        data = table4(pi, {lab: noun[lab] for lab in order})
        ts.tables.append(
            Table(
                KEYS[4],
                4,
                "Class noun ablation",
                data,
                ids=[("method", "Method"), ("class_noun", "Class noun")],
                metrics=_m("dino", "clip_i"),
                notes=[interval_note],
            )
        )
    else:
        ts.skipped[4] = "no labels differing only in class_noun_mode (correct and none/wrong)"

    inputs = select.inputs_ablation(labels, infos)
    for number, metric in ((5, "dino"), (6, "clip_t")):
        data = table_inputs(pi, inputs, metric, inputs_subjects) if inputs else pd.DataFrame()
        if data.empty:
            ts.skipped[number] = (
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
        name = METRIC_NAMES[metric]
        ts.tables.append(
            Table(
                KEYS[number],
                number,
                f"Number of input images vs {name}",
                data,
                ids=[("num_inputs", "Input images")],
                metrics=_m(metric),
                pivot=("num_inputs", "column"),
                notes=[
                    (
                        "one column per subject; 95% interval (CSV: _lo, _hi): bootstrap over the "
                        "subject's per-prompt means (1000 resamples, seed 0)"
                    )
                ],
            )
        )

    agg_path = res.scores_dir / AGGREGATES
    if agg_path.is_file():
        theirs = pd.read_csv(agg_path, keep_default_na=False)
        ts.problems = compare_aggregates(aggregates(pi, res.div, res.real), theirs)
        for p in ts.problems:
            warnings.warn(f"{agg_path}: {p}", AggregateMismatchWarning, stacklevel=2)
    ts.per_category = per_category(pi)
    cat_path = res.scores_dir / PER_CATEGORY
    if ts.per_category.empty and cat_path.is_file():
        # No category column in per_image.csv: fall back to what `dreambench score` aggregated.
        cat = pd.read_csv(cat_path, keep_default_na=False).astype({"method": str, "category": str})
        for c in ("mean", "lo", "hi"):
            cat[c] = pd.to_numeric(cat[c], errors="coerce")
        ts.per_category = cat
    return ts


def _inputs_group(label: str, infos: dict[str, dict]) -> str:
    """The line a Table 5/6 label belongs to: its method, marked when prior preservation is off."""
    method = select.method_of(label, infos)
    return f"{method} (no PPL)" if select.ppl_of(infos.get(label, {})) is False else method


def _readme(ts: TableSet, written: list[Path]) -> str:
    lines = ["# Tables", ""]
    lines += [f"- {line}" for line in ts.meta.lines()]
    lines += ["", "## Written", ""]
    lines += [f"- [{p.name}]({p.name})" for p in written]
    if ts.skipped:
        lines += ["", "## Not written", ""]
        lines += [f"- Table {n}: {why}" for n, why in sorted(ts.skipped.items())]
    if ts.problems:
        lines += ["", "## Disagreements with aggregates.csv", ""] + [f"- {p}" for p in ts.problems]
    return "\n".join(lines) + "\n"


def write_table_set(ts: TableSet, out_dir: Path, *, ci: bool = True) -> dict[str, Path]:
    """Write every table of ``ts`` (+ plots, README.md) into ``out_dir``; stale files of skipped tables are
    removed so the folder never mixes runs. Returns ``file name -> path``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for t in ts.tables:
        written += write_table(t, out_dir, ts.meta, ci)
        if t.pivot is not None:
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
    for number in ts.skipped:
        for suffix in (".csv", ".tex", ".md", ".png"):
            (out_dir / f"{KEYS[number]}{suffix}").unlink(missing_ok=True)
    written.append(write_text_atomic(out_dir / "README.md", _readme(ts, written)))
    return {p.name: p for p in written}


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
    return write_table_set(ts, Path(results_dir) / TABLES, ci=ci)


__all__ = [
    "KEYS",
    "Table",
    "TableSet",
    "build_tables",
    "display_frame",
    "load_results",
    "per_category",
    "table1",
    "table2",
    "table3",
    "table4",
    "table_inputs",
    "write_table_set",
    "write_tables",
]
