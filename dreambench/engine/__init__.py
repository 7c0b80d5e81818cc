"""The engine: plans runs as content-hashed jobs, records their states in SQLite and runs them on local
worker processes or Ray actors. It knows jobs and resources, not what a method does inside.

Modules: ``plan`` (jobs and ids), ``state`` (SQLite), ``worker`` (what one worker does), ``local`` (the
process pool), ``ray_backend``, ``runner`` (the driver loop and summary), ``cost`` (plan size and
estimates). (``dreambench.bench``, throughput measurements, is an application on top of the engine.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_exports

# Names resolve on first use (PEP 562): ``status`` reads the state database and must not load the planner's
# or the workers' imports (torch).
_HOMES = {
    "Job": "plan", "MethodRun": "plan", "Plan": "plan", "RunSpec": "plan", "build_plan": "plan",
    "content_hash": "plan", "paper_method_runs": "plan",
    "RunOptions": "runner", "RunSummary": "runner", "format_summary": "runner", "run_plan": "runner",
    "StateDB": "state",
}

__all__ = [
    "Job",
    "MethodRun",
    "Plan",
    "RunOptions",
    "RunSpec",
    "RunSummary",
    "StateDB",
    "build_plan",
    "content_hash",
    "format_summary",
    "paper_method_runs",
    "run_plan",
]

if TYPE_CHECKING:
    from .plan import Job, MethodRun, Plan, RunSpec, build_plan, content_hash, paper_method_runs
    from .runner import RunOptions, RunSummary, format_summary, run_plan
    from .state import StateDB


__getattr__ = lazy_exports(__name__, _HOMES)
