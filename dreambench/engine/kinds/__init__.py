"""Job kinds as units: each module here declares one kind, whole.

A kind module holds its typed spec (a dataclass whose :meth:`to_dict` is the JSON a job carries and the
state database stores), how its jobs are planned and hashed (``plan_*`` functions the planner,
:mod:`dreambench.engine.expand`, calls), how one runs on a worker (``run``) and how a done one is judged
current (``current``: its outputs still on disk, whole and made from the current inputs). It declares
itself as a :class:`JobKind`; the worker, the driver and the planner ask :func:`get_kind` and never
branch on a kind's name.

Kinds, in the order they are scheduled: ``class_images``, ``subject``, ``score``, ``score_merge``,
``tables``. Importing this package stays light (no torch, no pandas): kinds import their heavy parts
when they run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...registry import Registry

if TYPE_CHECKING:
    from ..jobs import Job
    from ..worker import Worker

#: ``log(message)`` of a running job: one line into its log file.
Log = Callable[[str], None]


@dataclass(frozen=True)
class JobKind:
    """One job kind.

    Attributes:
        name: the kind's name (``Job.kind``, the ``kind`` column of the state database).
        spec: the kind's typed spec class (``from_dict`` / ``to_dict``).
        run: ``run(worker, job, log) -> (artifacts, images)``: run the job (a :class:`Job` dict) on
            ``worker``; ``artifacts`` is recorded in the state database, ``images`` counts what it made.
        current: ``current(results, row, data_dir) -> bool``: whether a done job (its state row) may be
            trusted without running again.
        seconds: ``seconds(job, rates, sample_s) -> float``: the job's estimated device-seconds from a
            device's measured ``rates`` (:mod:`dreambench.engine.cost`; ``sample_s``: seconds per sampled
            image); None: 0 (the merge and tables jobs).
        after_failed_deps: runs once its dependencies finished, also when some failed (the score merge).
        writes_label: writes under a method label (claims it, moves an old label's outputs aside).
        makes_images: its images count in the run summary.
    """

    name: str
    spec: type
    run: Callable[[Worker, dict, Log], tuple[dict, int]]
    current: Callable[[Path, dict, Path | None], bool]
    seconds: Callable[[Job, dict, float], float] | None = None
    after_failed_deps: bool = False
    writes_label: bool = False
    makes_images: bool = False


#: Every job kind, as lazy ``"module:KIND"`` targets (a kind module imports this package for
#: :class:`JobKind`, so naming them here imports none of them); registration order is scheduling order.
KINDS: Registry[JobKind] = Registry("job kind")
KINDS.register("class_images", "dreambench.engine.kinds.class_images:KIND")
KINDS.register("subject", "dreambench.engine.kinds.subject:KIND")
KINDS.register("score", "dreambench.engine.kinds.score:KIND")
KINDS.register("score_merge", "dreambench.engine.kinds.score_merge:KIND")
KINDS.register("tables", "dreambench.engine.kinds.tables:KIND")


def kinds() -> dict[str, JobKind]:
    """Every job kind by name, in scheduling order."""
    return dict(KINDS.items())


def get_kind(name: str) -> JobKind | None:
    """The kind named ``name``; None for a name no kind has (a row of a newer release)."""
    return KINDS.get(name) if name in KINDS else None


def spec_of(kind_spec: type, job_spec: dict | None) -> Any:
    """``kind_spec`` from a job's JSON spec, fields it lacks (rows of older releases) at their defaults."""
    names = {f.name for f in dataclasses.fields(kind_spec)}
    return kind_spec(**{k: v for k, v in (job_spec or {}).items() if k in names})


#: Kind names in scheduling order (the status table sorts by it).
ORDER = tuple(KINDS.names())
