"""Human study (the DreamBooth paper's user study): questions, database, web app, analysis.

``questions`` samples pairwise questions, ``db`` stores them with raters and answers (SQLite), ``app`` is
the rating web app (Starlette), ``analysis`` computes majority votes, Table 2 and the metric-vs-human
correlation. See docs/study.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_exports

_HOMES = {"metric_correlation": "analysis", "preference_table": "analysis"}  # pandas, scipy: on first use

__all__ = ["metric_correlation", "preference_table"]

if TYPE_CHECKING:
    from .analysis import metric_correlation, preference_table

__getattr__ = lazy_exports(__name__, _HOMES)
