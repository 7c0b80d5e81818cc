"""The ``score_merge`` kind: the combined score files from the current parts
(:func:`dreambench.metrics.scoring.merge_scores`). It runs even when some parts failed, which it lists in
``scores/missing.csv``.

Payload: the run's base, the metric profile, the ids of the run's score jobs and the metric weights
files' digests.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ...layout import SCORE_META, ResultsLayout
from ..jobs import Job, content_hash
from . import JobKind, Log, spec_of

if TYPE_CHECKING:
    from ..runspec import RunSpec
    from ..worker import Worker


@dataclass
class ScoreMergeSpec:
    """What to merge: the run's ``parts`` (``[label, subject]`` pairs) with the scoring settings;
    ``run_if_deps_failed`` is recorded for readers of older states (the kind declares it)."""

    metric_profile: str = "paper"
    model_profile: str = "tiny"
    metric_weights: dict = field(default_factory=dict)
    parts: list = field(default_factory=list)
    run_if_deps_failed: bool = True

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def plan_job(parts: list[Job], base: dict, spec: RunSpec, weights: dict) -> Job:
    """The merge of the score jobs ``parts`` (``weights``: :func:`dreambench.engine.kinds.score.weights_payload`)."""
    pairs = sorted([p.label, p.subject] for p in parts)
    payload = {**base, "kind": "score_merge", "metric_profile": spec.metric_profile,
               "parts": sorted(p.id for p in parts), **weights}
    merge = ScoreMergeSpec(spec.metric_profile, spec.profile, dict(spec.metric_weights), pairs)
    return Job(content_hash(payload), "score_merge", "", "", merge.to_dict(), deps=sorted(p.id for p in parts))


def run(worker: Worker, job: dict, log: Log) -> tuple[dict, int]:
    from ...manifest import merge_manifest  # heavy: pandas, torch (planning imports this module)
    from ...metrics.parts import merge_parts
    from ...metrics.scoring import merge_scores

    spec = spec_of(ScoreMergeSpec, job["spec"])
    layout = ResultsLayout(worker.results_dir)
    merge_manifest(layout.images)
    out = layout.scores
    res = merge_scores(out, merge_parts(out, spec.parts), layout.images, worker.data_dir,
                       metric_profile=spec.metric_profile, model_profile=spec.model_profile,
                       metric_weights=spec.metric_weights or {}, log=log, cache_dir=layout.cache)
    return {"scores": str(out)}, len(res.per_image)


def current(results: Path, row: dict, data_dir: Path | None = None) -> bool:
    """Whether the merged score files hold exactly the current parts: the run's own (their score jobs
    keep them current) and those of earlier runs into this folder, which no job of this plan re-checks, so
    each one merged as current is checked here from its content keys."""
    from ...metrics.parts import merge_parts, merged_current, part_current  # heavy: pandas

    spec = spec_of(ScoreMergeSpec, row.get("spec"))
    layout = ResultsLayout(results)
    scores = layout.scores
    planned = [tuple(p) for p in spec.parts]
    parts = merge_parts(scores, planned)
    if not merged_current(scores, parts):
        return False
    try:
        used = json.loads((scores / SCORE_META).read_text()).get("parts", {})
    except (OSError, ValueError):
        return False
    for label, subject in parts[len(planned):]:
        if f"{label}/{subject}" in used and (data_dir is None or not part_current(
                scores, layout.images, data_dir, label, subject, metric_profile=spec.metric_profile,
                model_profile=spec.model_profile, metric_weights=spec.metric_weights, cache_dir=layout.cache)[0]):
            return False
    return True


KIND = JobKind("score_merge", ScoreMergeSpec, run, current, after_failed_deps=True)
