"""Table 2's input: the human study's preference table (``dreambench.study.analysis.preference_table``).

The study package is optional at import time: when it is missing, Table 2 is skipped with a reason."""

from __future__ import annotations

import importlib
from pathlib import Path

import pandas as pd

from ..errors import DataError

PREFERENCE_COLUMNS = [
    "question_type",
    "method_a",
    "method_b",
    "pct_a",
    "pct_b",
    "pct_undecided",
    "n_questions",
]


def load_preference(db_path: Path) -> pd.DataFrame:
    """The study's majority-vote preference table for ``db_path``.

    Raises :class:`ImportError` when the study analysis module is not installed and :class:`DataError`
    when the table lacks a PREFERENCE_COLUMNS column."""
    analysis = importlib.import_module("dreambench.study.analysis")
    df = analysis.preference_table(db_path)
    missing = [c for c in PREFERENCE_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"{db_path}: study preference table lacks column(s) {', '.join(missing)}")
    return df
