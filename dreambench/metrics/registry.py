"""The metric registry: every aggregated metric is declared once, here, as a :class:`Metric`.

A declaration states what the metric is (modelled on torchmetrics' ``higher_is_better`` and plot bounds
beside the code): its name (the ``metric`` value in per_subject.csv, aggregates.csv, paired.csv), its
display name, its direction, the per-image column it averages and which rows it reads (the regular
prompts' images, the class-prompt samples, or div.csv's per-prompt groups), its per-subject reduction,
its possible values, whether Real Images (real.csv) has it, which tables show it (and in which column)
and which study question it is correlated with. Score files, aggregates, tables, the report and the
study derive their metric lists from :func:`list_metrics`; nothing else names a metric.

Adding a metric: ``register_metric(Metric(...))`` in a module that an outside package exposes through
the ``dreambench.metrics`` entry-point group (``name = "package.module:METRIC"``: a :class:`Metric`, or
any object whose import registers one); ``docs/metrics.md`` shows an example. A metric computed from
what the scorer already writes per image sets ``per_image`` (a function of the per-image frame).

Pure Python: light commands import this without pandas or torch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from ..registry import Registry

ENTRY_POINT_GROUP = "dreambench.metrics"
#: Which rows a metric reads: the regular prompts' images (prompt_index >= 0), the class-prompt samples
#: (prompt_index == -1, "a [class noun]"), or div.csv's per-(method, subject, prompt) values.
PROMPT_ROWS, CLASS_ROWS, DIV_ROWS = "prompt", "class", "div"
ROWS = (PROMPT_ROWS, CLASS_ROWS, DIV_ROWS)
#: The interval of an unbounded metric (the same as :data:`dreambench.stats.UNBOUNDED`).
UNBOUNDED = (-math.inf, math.inf)


@dataclass(frozen=True)
class Metric:
    """One aggregated metric.

    Attributes:
        name: the ``metric`` value in per_subject.csv, aggregates.csv, per_category.csv, paired.csv.
        display: the name tables, the report and plots show (``"CLIP-I"``).
        higher_is_better: the direction (PRES: lower = less language drift).
        column: the per-image column (``rows`` prompt or class) or div.csv column (``rows`` div) averaged.
        rows: :data:`PROMPT_ROWS`, :data:`CLASS_ROWS` or :data:`DIV_ROWS`.
        reduction: the per-subject reduction over the rows (a pandas groupby aggregation name).
        scale: the metric profile's per-image cosine scale it is on (``"dino"``, ``"clip_i"``,
            ``"clip_t"``): its possible range and ``mean_floor`` come from there; None: not scaled.
        lower_bound, upper_bound: its possible range when ``scale`` is None (intervals are clipped to it).
        real: real.csv has the column ``column`` (Real Images row; a real-photo label takes it: the one
            real row, :func:`dreambench.metrics.aggregate.with_real_rule`).
        per_category: shown per prompt category (per_category.csv, the report's category plot).
        tables: table number -> column position among that table's metrics (Table 1: 1, Table 3: 3, ...).
        study: the study question type its A-minus-B difference is correlated with (``"subject"`` or
            ``"prompt"``), None for none.
        per_image: for a metric the scorer does not write: a function of the per-image frame (its score
            columns) returning the per-image values; ``column`` then only names it.
        description: one line (definitions: docs/metrics.md).
    """

    name: str
    display: str
    higher_is_better: bool
    column: str
    rows: str = PROMPT_ROWS
    reduction: str = "mean"
    scale: str | None = None
    lower_bound: float = -math.inf
    upper_bound: float = math.inf
    real: bool = False
    per_category: bool = True
    tables: Mapping[int, int] = field(default_factory=dict)
    study: str | None = None
    per_image: Callable[[Any], Any] | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if self.rows not in ROWS:
            raise ValueError(f"metric {self.name}: rows must be one of {ROWS}, not {self.rows!r}")

    def value_range(self, profile=None) -> tuple[float, float]:
        """Its possible values under a metric profile: the profile's scaled cosine range
        (:meth:`Scale.value_range`) when it has a ``scale``, else ``[lower_bound, upper_bound]``; unbounded
        without a known profile (a table of several profiles clips nothing)."""
        if profile is None:
            return UNBOUNDED
        if self.scale is not None:
            return profile.scale(self.scale).value_range()
        return (self.lower_bound, self.upper_bound)


#: Every metric by name (the project's one :class:`~dreambench.registry.Registry`). Its entry points are
#: loaded here, not by the registry's own ``group``: one may name a list of metrics, or a module that
#: registers its metrics on import, and its name need not be a metric's.
METRICS: Registry[Metric] = Registry("metric")
_entry_points_loaded = False


def register_metric(metric: Metric) -> Metric:
    """Add (or replace) a metric; its place in every list is the order of its first registration."""
    METRICS.register(metric.name, metric, replace=True)
    return metric


def _load_entry_points() -> None:
    """Import the ``dreambench.metrics`` entry points once (a :class:`Metric` value is registered; any
    other object is assumed to have registered itself on import)."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        obj = ep.load()
        for m in obj if isinstance(obj, (list, tuple)) else [obj]:
            if isinstance(m, Metric):
                register_metric(m)


def list_metrics() -> list[Metric]:
    """Every registered metric, built-ins first, in registration order."""
    _load_entry_points()
    return METRICS.values()


def metric_names() -> list[str]:
    return [m.name for m in list_metrics()]


def get_metric(name: str) -> Metric:
    """The metric named ``name``; an unknown name raises :class:`~dreambench.errors.UnknownNameError` (a
    ``KeyError``) listing the valid ones."""
    _load_entry_points()
    return METRICS.get(name)


def display_names() -> dict[str, str]:
    """``name -> display name`` of every metric."""
    return {m.name: m.display for m in list_metrics()}


def table_metrics(number: int) -> list[str]:
    """The metrics Table ``number`` shows, in its column order."""
    return [m.name for m in sorted((m for m in list_metrics() if number in m.tables),
                                   key=lambda m: m.tables[number])]


def real_metrics() -> list[str]:
    """The metrics real.csv holds (Real Images row; the one real row of a real-photo label)."""
    return [m.name for m in list_metrics() if m.real]


def study_metrics() -> dict[str, tuple[str, ...]]:
    """``question type -> metrics`` correlated with the study's answers."""
    out: dict[str, tuple[str, ...]] = {}
    for m in list_metrics():
        if m.study:
            out[m.study] = (*out.get(m.study, ()), m.name)
    return out


# ---------------------------------------------------------------------------------------------------------
# The built-in metrics (definitions: docs/metrics.md). Their order is the order of every file and list.

DINO = register_metric(Metric(
    "dino", "DINO", True, "dino", scale="dino", real=True, tables={1: 0, 3: 2, 4: 0, 5: 0}, study="subject",
    description="mean DINO cosine of a generated image to the subject's real photos"))
CLIP_I = register_metric(Metric(
    "clip_i", "CLIP-I", True, "clip_i", scale="clip_i", real=True, tables={1: 1, 3: 3, 4: 1},
    study="subject", description="mean CLIP image cosine of a generated image to the subject's real photos"))
CLIP_T = register_metric(Metric(
    "clip_t", "CLIP-T", True, "clip_t", scale="clip_t", tables={1: 2, 3: 4, 6: 0}, study="prompt",
    description="CLIP cosine of a generated image to its prompt without the identifier"))
PRES = register_metric(Metric(
    "pres", "PRES", False, "dino", rows=CLASS_ROWS, scale="dino", per_category=False, tables={3: 0},
    description="DINO of the class-prompt samples to the subject's photos (lower: less language drift)"))
DIV = register_metric(Metric(
    "div", "DIV", True, "div", rows=DIV_ROWS, lower_bound=0.0, tables={3: 1},
    description="mean LPIPS distance between the images of one prompt (LPIPS distances are >= 0)"))
#: The per-image columns the scorer computes from embeddings (per_image.csv), in file order.
SCORED_COLUMNS = [m.column for m in (DINO, CLIP_I, CLIP_T)]
