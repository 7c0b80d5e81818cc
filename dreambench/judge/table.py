"""What a table reads: one row per label with CP, PF and CP*PF, their +- over runs, the breakdowns, the
interval over subjects and the judged / expected counts (from ``<results>/judge/judge_scores.csv``)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..errors import DataError
from ..layout import ResultsLayout
from .profiles import KINDS, PROMPT_GROUPS

#: The breakdown columns DreamBench++'s table shows: CP by kind, PF by prompt group.
BREAKDOWNS = [("cp", "kind", k) for k in KINDS] + [("pf", "prompt_group", g) for g in PROMPT_GROUPS]


def judge_rows(results_dir: str | Path) -> pd.DataFrame:
    """One row per label: ``label``, ``cp``, ``cp_std``, ``cp_lo``, ``cp_hi``, ``cp_n_judged``,
    ``cp_n_expected`` (the same for ``pf``), ``cp_pf``, and ``cp_<kind>`` / ``pf_<prompt group>`` (NaN where
    no item has that kind or group). Means are over runs, rounded to 3 decimals (docs/judge.md). Raises
    :class:`DataError` when the folder was not judged."""
    path = ResultsLayout(Path(results_dir)).judge_scores
    if not path.is_file():
        raise DataError(f"{path}: not found; run `dreambench judge {results_dir}` first")
    df = pd.read_csv(path, keep_default_na=False, na_values=["", "nan", "NaN"], dtype={"label": str})
    rows = []
    for label, lab in df.groupby("label", sort=True):
        row: dict = {"label": label}
        for metric in ("cp", "pf"):
            o = lab[(lab["metric"] == metric) & (lab["breakdown"] == "overall")]
            r = o.iloc[0] if len(o) else None
            row[metric] = r["mean"] if r is not None else float("nan")
            for col in ("std", "ci_lo", "ci_hi", "n_judged", "n_expected"):
                row[f"{metric}_{col.removeprefix('ci_')}"] = r[col] if r is not None else float("nan")
        both = lab[lab["metric"] == "cp_pf"]
        row["cp_pf"] = both.iloc[0]["mean"] if len(both) else float("nan")
        for metric, breakdown, group in BREAKDOWNS:
            b = lab[(lab["metric"] == metric) & (lab["breakdown"] == breakdown) & (lab["group"] == group)]
            row[f"{metric}_{group}"] = b.iloc[0]["mean"] if len(b) else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)
