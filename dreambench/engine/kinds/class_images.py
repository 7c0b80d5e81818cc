"""The ``class_images`` kind: prior-preservation images for one class noun, shared by every subject and
label of that class, scheduled before the subject jobs that read them.

Payload: the run's base (version, profile, model, protocol, seed), the set's settings (``need``:
:func:`dreambench.methods.priors.class_image_need` less nothing) and, once the driver hashed it, the SD
weights digest (the images are the weights' samples).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ...layout import CLASS_IMAGES, ResultsLayout
from ...methods.priors import ensure_class_images
from ...verify import png_problem
from ..jobs import Job, content_hash
from . import JobKind, Log, spec_of

if TYPE_CHECKING:
    from ..expand import InputDigests
    from ..runspec import RunSpec
    from ..worker import Worker


@dataclass
class ClassImagesSpec:
    """What a class-image job makes: ``need`` (keyword arguments of
    :func:`dreambench.methods.priors.ensure_class_images`), with the model of ``profile`` / ``model``."""

    need: dict = field(default_factory=dict)
    model: str | None = None
    profile: str = "tiny"
    vae: str | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def plan_job(need: dict, base: dict, spec: RunSpec, inputs: InputDigests | None = None) -> Job:
    """The job making the class-image set ``need`` (the largest count any subject job asks for)."""
    payload = {**base, "kind": "class_images", "need": need}
    if inputs is not None and inputs.sd_digest is not None:  # the images are the weights' samples
        payload["sd_digest"] = inputs.sd_digest
    return Job(content_hash(payload), "class_images", "", str(need.get("class_noun", "")),
               ClassImagesSpec(need, spec.model, spec.profile, spec.vae).to_dict(), images=int(need.get("count", 0)))


def run(worker: Worker, job: dict, log: Log) -> tuple[dict, int]:
    spec = spec_of(ClassImagesSpec, job["spec"])
    need = dict(spec.need)
    comps = worker.components(spec.profile, spec.model, spec.vae)
    log(f"class images {need}")
    remade: list = []
    paths = ensure_class_images(comps, cache_root=ResultsLayout(worker.results_dir).class_images,
                                device=worker.ctx.device, progress=worker.ctx.progress, remade=remade, **need)
    # Sampling does not change weights, but the restore is cheap insurance against a method-level bug.
    worker.mark_dirty()
    folder = str(paths[0].parent) if paths else ""
    return {"class_images": folder, **worker.remade_record(remade, log)}, len(paths)


def output_problems(results: Path, row: dict) -> list[tuple[str, str]]:
    """The images of a done class-image job (``need.count`` of them, in the folder it recorded, looked
    up by name under ``<results>/class_images`` so a moved results folder still checks) that are not
    complete PNGs, as (path in the results folder, why); none when the job recorded no folder."""
    folder = (row.get("artifacts") or {}).get("class_images")
    if not folder:
        return []
    count = int(((row.get("spec") or {}).get("need") or {}).get("count", 0))
    rel = Path(CLASS_IMAGES) / Path(folder).name
    return [((rel / f"{i:05d}.png").as_posix(), why) for i in range(count)
            if (why := png_problem(results / rel / f"{i:05d}.png")) is not None]


def current(results: Path, row: dict, data_dir: Path | None = None) -> bool:
    return not output_problems(results, row)


def seconds(job: Job, rates: dict, sample_s: float) -> float:
    """Sampling its images."""
    return job.images * sample_s


KIND = JobKind("class_images", ClassImagesSpec, run, current, seconds, makes_images=True)
