"""Human study (the DreamBooth paper's user study): questions, database, web app, analysis.

``questions`` samples pairwise questions, ``db`` stores them with raters and answers (SQLite), ``app`` is
the rating web app (Starlette), ``analysis`` computes majority votes, Table 2 and the metric-vs-human
correlation. See docs/study.md.
"""

from .analysis import metric_correlation, preference_table

__all__ = ["metric_correlation", "preference_table"]
