"""The engine: plans runs as content-hashed jobs, records their states in SQLite and runs them on local
worker processes or Ray actors. It knows jobs and resources, not what a method does inside.

Modules: ``plan`` (jobs and ids), ``state`` (SQLite), ``worker`` (what one worker does), ``local`` (the
process pool), ``ray_backend``, ``runner`` (the driver loop and summary), ``cost`` (plan size and
estimates), ``bench`` (throughput measurements).
"""

from .plan import Job, MethodRun, Plan, RunSpec, build_plan, content_hash, paper_method_runs
from .runner import RunOptions, RunSummary, format_summary, run_plan
from .state import StateDB

__all__ = ["Job", "MethodRun", "Plan", "RunOptions", "RunSpec", "RunSummary", "StateDB", "build_plan",
           "content_hash", "format_summary", "paper_method_runs", "run_plan"]
