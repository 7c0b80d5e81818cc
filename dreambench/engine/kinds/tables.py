"""The ``tables`` kind: Tables 1-6 from the merged scores (:func:`dreambench.tables.write_tables`).

Payload: the package version and the score-merge job's id.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ... import __version__
from ...layout import SCORE_META, TABLES_README, ResultsLayout
from ..jobs import Job, content_hash
from . import JobKind, Log

if TYPE_CHECKING:
    from ..worker import Worker


@dataclass
class TablesSpec:
    """Nothing: the tables are made from the results folder."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def plan_job(merge: Job) -> Job:
    """The tables job after the score merge ``merge``."""
    payload = {"version": __version__, "kind": "tables", "score": merge.id}
    return Job(content_hash(payload), "tables", "", "", TablesSpec().to_dict(), deps=[merge.id])


def run(worker: Worker, job: dict, log: Log) -> tuple[dict, int]:
    from ...tables import write_tables  # heavy: pandas (planning imports this module)

    out = write_tables(worker.results_dir)
    log(f"tables written: {out}")
    return {"tables": str(ResultsLayout(worker.results_dir).tables)}, 0


def current(results: Path, row: dict, data_dir: Path | None = None) -> bool:
    """Whether the tables are newer than the score files they were made from."""
    layout = ResultsLayout(results)
    readme, meta = layout.tables / TABLES_README, layout.scores / SCORE_META
    return readme.is_file() and meta.is_file() and readme.stat().st_mtime_ns >= meta.stat().st_mtime_ns


KIND = JobKind("tables", TablesSpec, run, current)
