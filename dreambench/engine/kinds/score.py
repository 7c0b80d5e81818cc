"""The ``score`` kind: one per (label, subject), after its subject job: scores that manifest part into
``<results>/scores/parts/<label>/<subject>`` (:func:`dreambench.metrics.scoring.score_folder` with ``only``).

Payload: the run's base, the metric profile, the subject job's id and the metric weights files' digests.
Whether a done score job's inputs changed since is checked from content keys
(:func:`dreambench.metrics.parts.inputs_current`), not by the id.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ...layout import ResultsLayout
from ...models.digest import file_digest
from ...models.weights_formats import weights_path
from ..jobs import Job, content_hash
from . import JobKind, Log, spec_of

if TYPE_CHECKING:
    from ..runspec import RunSpec
    from ..worker import Worker


@dataclass
class ScoreSpec:
    """How to score one (label, subject) part: metric and model profiles, metric weights files
    (``{"dino"|"clip"|"lpips": path}``); ``label`` None in rows of older releases (whole-folder scoring)."""

    metric_profile: str = "paper"
    model_profile: str = "tiny"
    metric_weights: dict = field(default_factory=dict)
    label: str | None = None
    subject: str | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def weights_payload(metric_weights: dict) -> dict:
    """What of the metric weights files changes scores: their digests (none given: nothing, so plans
    without weights files keep their ids)."""
    if not metric_weights:
        return {}

    return {"metric_weights": {k: file_digest(weights_path(v, f"--{k}-weights")) if Path(v).exists() else v
                               for k, v in sorted(metric_weights.items())}}


def plan_jobs(subject_jobs: list[Job], base: dict, spec: RunSpec, weights: dict) -> list[Job]:
    """One score job per subject job, run as soon as it is done. ``weights``: :func:`weights_payload`."""
    out = []
    for sj in subject_jobs:
        payload = {**base, "kind": "score", "metric_profile": spec.metric_profile, "subject_job": sj.id, **weights}
        part = ScoreSpec(spec.metric_profile, spec.profile, dict(spec.metric_weights), sj.label, sj.subject)
        out.append(Job(content_hash(payload), "score", sj.label, sj.subject, part.to_dict(), deps=[sj.id],
                       images=sj.images))
    return out


def run(worker: Worker, job: dict, log: Log) -> tuple[dict, int]:
    """Score one (label, subject) manifest part into ``scores/parts/<label>/<subject>``; backbones are
    built once per worker (and not at all when every number is current)."""
    from ...metrics.scoring import score_folder  # heavy: torch, pandas (planning imports this module)

    spec = spec_of(ScoreSpec, job["spec"])
    layout = ResultsLayout(worker.results_dir)
    label, subject = spec.label, spec.subject
    out = layout.score_part(label, subject)
    log(f"scoring {label}/{subject} -> {out} (metric profile {spec.metric_profile})")
    weights = spec.metric_weights or {}
    res = score_folder(layout.images, worker.data_dir, out, metric_profile=spec.metric_profile,
                       model_profile=spec.model_profile, device=worker.ctx.device, progress=worker.ctx.progress,
                       dino_weights=weights.get("dino"), clip_weights=weights.get("clip"),
                       lpips_weights=weights.get("lpips"), cache_dir=layout.cache,
                       only=(label, subject), towers=worker.towers, log=log)
    log(f"score stats: {res.stats}")
    for e in res.errors[:20]:  # bad rows are data (errors.csv), not a failed job
        log(f"bad input: {e}")
    return {"scores": str(out)}, len(res.per_image)


def current(results: Path, row: dict, data_dir: Path | None = None) -> bool:
    """Whether the part's numbers are still made from the current inputs (image and real-photo bytes,
    CLIP-T texts, profile, weights), checked from content keys without building any model."""
    from ...metrics.parts import inputs_current, weights_kwargs  # heavy: pandas

    spec = spec_of(ScoreSpec, row.get("spec"))
    if spec.label is None or data_dir is None:  # a whole-folder score job of an older release
        return False
    layout = ResultsLayout(results)
    ok, _ = inputs_current(layout.images, data_dir, layout.score_part(spec.label, spec.subject),
                           metric_profile=spec.metric_profile, model_profile=spec.model_profile,
                           only=(spec.label, spec.subject), cache_dir=layout.cache,
                           **weights_kwargs(spec.metric_weights))
    return ok


def seconds(job: Job, rates: dict, sample_s: float) -> float:
    """Scoring the part's images at the end-to-end rate (0 without one)."""
    return job.images / rates["score_images_per_s"] if rates.get("score_images_per_s") else 0.0


KIND = JobKind("score", ScoreSpec, run, current, seconds)
