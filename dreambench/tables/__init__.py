"""Tables 1-6 of the DreamBooth paper from a scored results folder.

``write_tables(results_dir)`` reads ``<results>/scores`` (and the study database for Table 2) and writes
``<results>/tables/<key>.{csv,tex,md}`` plus PNG plots of Tables 5 and 6 and a README.md that lists what
was written and why a table was skipped. Figures are means over subjects of the per-subject values in
per_subject.csv (recomputed from per_image.csv / div.csv by the same declared reductions for a folder
without a current one; see :mod:`dreambench.tables.compute`), with Real Images from real.csv; the metrics
each table shows are declared in :mod:`dreambench.metrics.registry`; and every figure is checked against
aggregates.csv.

Modules: ``build`` (``write_tables``, ``build_tables``), ``load`` (reading the folder), ``select`` (which
labels go where), ``compute`` (pure table functions), ``preference`` (Table 2's study input), ``render``
(display and file formats), ``plots``, ``names`` (display names). The names below load on first use, so
``dreambench.tables.names`` (read by ``run``) costs no pandas import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_exports

_HOMES = {
    **dict.fromkeys(("KEYS", "TABLES", "AggregateMismatchWarning", "TableSet", "build_tables", "write_table_set",
                     "write_tables"), "build"),
    **dict.fromkeys(("Table", "display_frame"), "render"),
    "load_results": "load",
    **dict.fromkeys(("per_category", "table1", "table2", "table3", "table4", "table_inputs"), "compute"),
}

__all__ = [
    "KEYS",
    "TABLES",
    "AggregateMismatchWarning",
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

if TYPE_CHECKING:
    from .build import (
        KEYS,
        TABLES,
        AggregateMismatchWarning,
        TableSet,
        build_tables,
        write_table_set,
        write_tables,
    )
    from .compute import per_category, table1, table2, table3, table4, table_inputs
    from .load import load_results
    from .render import Table, display_frame

__getattr__ = lazy_exports(__name__, _HOMES)
