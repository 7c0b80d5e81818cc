"""A run's jobs: :func:`build_plan` expands a :class:`~dreambench.engine.runspec.RunSpec` into class-image,
subject, score, score-merge and tables jobs (each made and hashed by its kind,
:mod:`dreambench.engine.kinds`), in dependency order.

A subject job's id includes its ``inputs``: the bytes of the subject's photos, the class-image sets it
trains with and the SD weights digest, hashed by the driver when it plans (:class:`InputDigests`), so a
changed photo or weights file re-runs exactly the jobs that read it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .. import __version__
from ..data.check import subject_images
from ..errors import DreambenchError
from ..io import sha256_file
from ..protocol import Protocol
from .jobs import Job, Plan, canonical_json
from .kinds import class_images, score, score_merge, subject, tables
from .runspec import RunSpec, model_source, truncated_protocol, validate_spec


@dataclass
class InputDigests:
    """The content of a run's inputs that no option spells out, hashed by the driver when it plans.

    Attributes:
        data_dir: the run's dataset folder (``--data``); each subject's photos enter the ids of the jobs
            that read them as ``[name, sha256]`` pairs of the whole listing (the number-of-inputs
            ablation draws its subset from that listing). None: photos are left out of the ids.
        sd_digest: the SD weights digest (:func:`dreambench.provenance.sd_provenance`); None: left out.
    """

    data_dir: Path | None = None
    sd_digest: str | None = None
    _photos: dict[str, list | None] = field(default_factory=dict, repr=False)

    def photos(self, subject: str) -> list[list[str]] | None:
        """``[[name, sha256], ...]`` of the subject's photos in name order (hashed once per subject); None
        without a data folder, or when the subject's folder is missing, empty or unreadable (the run's
        data check then names it before any job runs)."""
        if self.data_dir is None:
            return None
        if subject not in self._photos:
            try:
                self._photos[subject] = [[p.name, sha256_file(p)] for p in subject_images(self.data_dir, subject)]
            except (DreambenchError, OSError):
                self._photos[subject] = None
        return self._photos[subject]


def build_plan(spec: RunSpec, protocol: Protocol, inputs: InputDigests | None = None) -> Plan:
    """Expand ``spec`` into jobs: class images, subject jobs, then score and tables. ``inputs``: the
    photos and weights the ids are made from (None: neither is; a plan only shown, or a test's)."""
    # 1. Check the spec (names, counts, roles) before anything is resolved.
    validate_spec(spec, protocol)
    source = model_source(spec.profile, spec.model)
    proto = truncated_protocol(protocol, spec.prompts)
    run_subjects = [s.name for s in protocol.select(spec.subjects)]
    base = {"version": __version__, "profile": spec.profile, "model": source, "protocol": protocol.name,
            "seed": spec.seed}
    if protocol.digest:  # the protocol files' content, not only their name, decides the jobs
        base["protocol_digest"] = protocol.digest
    if spec.vae:  # only when given: runs without --vae keep their ids
        base["vae"] = spec.vae
    # 2. The subject jobs of every label, and the class-image sets they read.
    class_needs: dict[str, dict] = {}
    subject_jobs: list[Job] = []
    for mr in spec.methods:
        for job, needs in subject.plan_jobs(mr, spec, protocol, proto, base, source, run_subjects, inputs):
            for need in needs:
                # One job per class-image set; count is not part of the cache key, so take the largest.
                key = canonical_json({k: v for k, v in need.items() if k != "count"})
                if key in class_needs:
                    class_needs[key]["count"] = max(class_needs[key]["count"], need["count"])
                else:
                    class_needs[key] = need
            subject_jobs.append(job)
    # 3. One class-image job per set, ahead of the subject jobs that read it.
    class_jobs = {key: class_images.plan_job(need, base, spec, inputs) for key, need in class_needs.items()}
    for j in subject_jobs:
        j.deps = sorted(class_jobs[d].id for d in j.deps)
    jobs = list(class_jobs.values()) + subject_jobs
    # 4. Scoring: one part per subject job, their merge, then the tables.
    if spec.score and subject_jobs:
        weights = score.weights_payload(spec.metric_weights)
        parts = score.plan_jobs(subject_jobs, base, spec, weights)
        merge = score_merge.plan_job(parts, base, spec, weights)
        jobs += parts + [merge]
        if spec.tables:
            jobs.append(tables.plan_job(merge))
    return Plan(spec, jobs)
