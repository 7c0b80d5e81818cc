"""The ``subject`` kind: train + generate for one (label, subject), running
:func:`dreambench.engine.subject_job.run_subject_job`.

Payload (the job id): the run's base (version, profile, model, protocol and its digest, seed), the job's
fields less config, recipe and role (replaced by the typed, resolved config and recipe name; the role
says where the label goes in the tables, not what the job makes), the prompts, the class prompt, how
photos become pixels (training methods), the method's identity (provider, version, code:
:mod:`dreambench.methods.identity`) and its ``inputs`` (:func:`subject_inputs`): the photos' bytes, the
class-image sets it trains with and the SD weights digest. The spec carries the ``keys`` under which the
job's artifact and images may be reused (:func:`reuse_keys`).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ... import photos  # module: PHOTO_DECODE read at call time
from ...layout import IMAGES, ResultsLayout
from ...methods.base import get_method
from ...methods.identity import identity_payload, method_identity
from ...methods.priors import class_image_need
from ...models.profiles import get_profile
from ...protocol import load_protocol, protocol_from_content
from ...schema import MANIFEST, METHOD_INFO
from ...verify import manifest_paths, png_problem
from ..jobs import Job, canonical_json, content_hash
from ..runspec import checked_config, profile_recipe, truncated_protocol
from ..subject_job import (
    JOB_INFO,
    RUNTIME_KEYS,
    SubjectJob,
    build_job_config,
    default_role,
    run_subject_job,
    stored_artifact_problem,
    wrong_class_noun,
)
from . import JobKind, Log, spec_of

if TYPE_CHECKING:
    from ...protocol import Protocol
    from ..expand import InputDigests
    from ..runspec import MethodRun, RunSpec
    from ..worker import Worker


@dataclass
class SubjectSpec:
    """What a worker needs to run a subject job.

    Attributes:
        job: the :class:`dreambench.engine.subject_job.SubjectJob` fields.
        prompts: prompts per kind (``--prompts``), None = all.
        model: ``--model``; protocol: protocol name or folder; protocol_content: the protocol files'
            text (so a worker elsewhere runs exactly what was planned), None for a built-in protocol.
        keep_artifacts: keep the trained artifact; needs_model: the method uses the SD parts.
        recipe: the resolved recipe name.
        label_key, label_settings: the label's settings and their hash (a label made with others is
            moved aside: :func:`dreambench.engine.runner.move_aside`).
        keys: the reuse keys of the job's outputs (:func:`reuse_keys`).
    """

    job: dict = field(default_factory=dict)
    prompts: int | None = None
    model: str | None = None
    protocol: str = "dreambooth"
    keep_artifacts: bool = True
    needs_model: bool = True
    recipe: str | None = None
    label_key: str = ""
    label_settings: dict = field(default_factory=dict)
    protocol_content: list | None = None
    keys: dict | None = None
    vae: str | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


#: Subject-job payload entries that decide how many images the job makes or which package version ran
#: it, not what its artifact or any one image holds: an artifact or image made under another value is
#: reused (:func:`reuse_keys`).
COUNT_KEYS = ("version", "prompts")
COUNT_JOB_FIELDS = ("images_per_prompt", "class_prompt_samples")

#: ...and those that change the images but not the trained artifact.
SAMPLING_KEYS = ("class_prompt",)
SAMPLING_JOB_FIELDS = ("sample_steps",)


def reuse_keys(payload: dict, trains: bool) -> dict[str, str]:
    """The keys under which a subject job's outputs on disk may be reused, recorded by the job in
    ``artifact.json`` (``train``) and ``job.json`` (``images``):

    - ``images``: the hash of the job's payload less :data:`COUNT_KEYS` (and the count fields of the job),
      less the config's runtime keys (speed and memory only); images on disk made under another key
      are made again;
    - ``train`` (training methods only): the same, less the sampling settings as well; an artifact
      trained under another key is trained again.
    Everything else in the payload (photos, class images, weights, config, method identity) is in both."""
    def key(drop_keys: tuple, drop_fields: tuple) -> str:
        kept = {k: v for k, v in payload.items() if k not in drop_keys}
        kept["job"] = {k: v for k, v in payload["job"].items() if k not in drop_fields}
        kept["resolved_config"] = {k: v for k, v in payload["resolved_config"].items() if k not in RUNTIME_KEYS}
        return content_hash(kept)

    out = {"images": key(COUNT_KEYS, COUNT_JOB_FIELDS)}
    if trains:
        out["train"] = key(COUNT_KEYS + SAMPLING_KEYS, COUNT_JOB_FIELDS + SAMPLING_JOB_FIELDS)
    return out

def subject_inputs(method_cls: type, subject: str, class_sets: list[str], inputs: InputDigests | None) -> dict:
    """What a subject job reads besides its config and the protocol: the class-image sets it trains
    with (their keys, count left out: image i never depends on the count), and, when the driver hashed
    them, the subject's photos (methods with ``uses_photos``) and the SD weights digest (methods that
    need the model)."""
    out: dict[str, Any] = {"class_images": class_sets}
    if inputs is not None:
        if getattr(method_cls, "uses_photos", True):
            out["photos"] = inputs.photos(subject)
        if method_cls.needs_model and inputs.sd_digest is not None:
            out["sd_digest"] = inputs.sd_digest
    return out


def class_image_needs(sj: Any, protocol: Protocol) -> list[dict]:
    """The class-image set a subject job will read (:func:`dreambench.methods.priors.class_image_need` of
    its config, for the class noun it trains with: the ablation's one, none meaning no prior)."""
    method_cls = get_method(sj.method)
    if not method_cls.trains:
        return []
    cfg, _ = build_job_config(sj, method_cls)
    # Whether the config reads class images at all, before the class noun is drawn.
    if class_image_need(cfg, "?") is None or sj.class_noun_mode == "none":
        return []
    subject = protocol.subject(sj.subject)
    noun = wrong_class_noun(protocol, subject, sj.seed) if sj.class_noun_mode == "wrong" else subject.class_noun
    need = class_image_need(cfg, noun)
    return [] if need is None else [need]


def plan_jobs(mr: MethodRun, spec: RunSpec, protocol: Protocol, proto: Protocol, base: dict, source: str,
              subjects: list[str], inputs: InputDigests | None) -> list[tuple[Job, list[dict]]]:
    """The subject jobs of one label, each with the class-image sets it reads (``deps`` holds their
    canonical keys until the planner swaps in the class-image jobs' ids). ``proto`` is ``protocol``
    truncated to the run's prompts; ``source`` the model source."""
    method_cls = get_method(mr.method)
    recipe = mr.recipe or profile_recipe(method_cls, spec.profile)
    full_config, recipe_name = checked_config(mr, recipe, spec.steps, get_profile(spec.profile).family)
    # Provider, version and code of the method: changed code re-runs its jobs, and only them. Not a
    # label setting: the runner re-makes a label whose method.json names another identity.
    identity = identity_payload(method_identity(method_cls))
    out = []
    for name in [n for n in subjects if mr.subjects is None or n in mr.subjects]:
        sj = SubjectJob(
            method=mr.method, label=mr.label, config=dict(mr.config), recipe=recipe, subject=name,
            identifier=spec.identifier, class_noun_mode=mr.class_noun_mode, num_inputs=mr.num_inputs,
            images_per_prompt=spec.images_per_prompt, seed=spec.seed, class_prompt_samples=mr.class_prompt_samples,
            steps=spec.steps, sample_steps=spec.sample_steps, profile=spec.profile,
            role=mr.role or default_role(mr.class_noun_mode, mr.num_inputs),
        )
        needs = class_image_needs(sj, protocol)
        deps = sorted({canonical_json({k: v for k, v in n.items() if k != "count"}) for n in needs})
        job = _subject_job(sj, method_cls, spec, protocol, proto, base, source, full_config, recipe_name,
                           identity, deps, inputs)
        out.append((job, needs))
    return out


def _subject_job(sj: Any, method_cls: type, spec: RunSpec, protocol: Protocol, proto: Protocol, base: dict,
                 source: str, full_config: dict, recipe_name: str | None, identity: dict, deps: list[str],
                 inputs: InputDigests | None) -> Job:
    """One subject job: its payload hashed into the id, its spec, its size."""
    job_fields = dataclasses.asdict(sj)
    subject = protocol.subject(sj.subject)
    prompts = proto.prompts_for(subject)
    label_payload = {"model": source, "profile": spec.profile, "protocol": protocol.name,
                     **({"vae": spec.vae} if spec.vae else {}),
                     **({"protocol_digest": protocol.digest} if protocol.digest else {}),
                     "resolved_config": label_config(full_config, sj.sample_steps, spec.profile),
                     "resolved_recipe": recipe_name,
                     **{k: job_fields[k] for k in ("method", "label", "identifier", "class_noun_mode",
                                                   "num_inputs", "seed")}}
    # The raw overrides and recipe name are replaced by their typed, resolved result; the role says
    # where the label goes in the tables, not what the job makes (old folders keep their job ids).
    hashed = {k: v for k, v in job_fields.items() if k not in ("config", "recipe", "role")}
    payload = {**base, "kind": "subject", "job": hashed, "resolved_config": full_config,
               "resolved_recipe": recipe_name, "prompts": [[p.template, p.category] for p in prompts],
               "class_prompt": protocol.class_prompt}
    if method_cls.trains:  # how photos become training pixels (a new decoding re-trains)
        payload["photo_decode"] = photos.PHOTO_DECODE
    payload.update(identity)
    payload["inputs"] = subject_inputs(method_cls, sj.subject, deps, inputs)
    subject_spec = SubjectSpec(
        job=job_fields, prompts=spec.prompts, model=spec.model, protocol=protocol.name,
        keep_artifacts=spec.keep_artifacts, needs_model=bool(method_cls.needs_model), recipe=recipe_name, vae=spec.vae,
        label_key=content_hash(label_payload), label_settings=label_payload,
        protocol_content=list(protocol.content) if protocol.digest else None,
        keys=reuse_keys(payload, bool(method_cls.trains)))
    return Job(id=content_hash(payload), kind="subject", label=sj.label, subject=sj.subject,
               spec=subject_spec.to_dict(), deps=deps,
               images=len(prompts) * spec.images_per_prompt + sj.class_prompt_samples,
               train_steps=int(full_config.get("steps", 0) or 0) if method_cls.trains else 0)


def label_config(full_config: dict, sample_steps: int | None, profile: str) -> dict:
    """The config part of a label's settings: the resolved config less its runtime keys, with the sampler
    steps the job will use (``--sample-steps``, else the config's, else the profile's default, as
    :func:`build_job_config` resolves them) written 0 when they are the profile's default (what the config
    says when nothing is set, so folders made before keep their label key)."""
    out = {k: v for k, v in full_config.items() if k not in RUNTIME_KEYS}
    if "sample_steps" in out:
        default = get_profile(profile).sample_steps_default
        used = int(sample_steps or out["sample_steps"] or default)
        out["sample_steps"] = 0 if used == default else used
    return out


def run(worker: Worker, job: dict, log: Log) -> tuple[dict, int]:
    spec = spec_of(SubjectSpec, job["spec"])
    sj = SubjectJob(**spec.job)
    # The driver sends the protocol files' content: a worker elsewhere (another directory, another
    # node) then runs exactly the protocol that was planned and hashed.
    content = spec.protocol_content
    base = protocol_from_content(spec.protocol, *content) if content else load_protocol(spec.protocol)
    protocol = truncated_protocol(base, spec.prompts)
    comps = worker.components(sj.profile, spec.model, spec.vae) if spec.needs_model else None
    if comps is not None:
        worker.mark_dirty()
    remade: list = []
    layout = ResultsLayout(worker.results_dir)
    rows = run_subject_job(sj, protocol, comps, worker.data_dir, worker.results_dir, device=worker.ctx.device,
                           keep_artifacts=spec.keep_artifacts, progress=worker.ctx.progress, log=log,
                           keys=spec.keys, remade=remade)
    artifacts = {"images": str(layout.subject_images(sj.label, sj.subject)), **worker.remade_record(remade, log)}
    art = layout.artifact_dir(sj.label, sj.subject)
    if art.is_dir():
        artifacts["artifact"] = str(art)
    return artifacts, len(rows)


def output_problems(results: Path, row: dict) -> list[tuple[str, str]]:
    """What of a done subject job's outputs cannot be trusted, as (path in the results folder, why): the
    manifest part missing; an image it lists missing or not a complete PNG
    (:func:`dreambench.verify.png_problem`); images, or a kept artifact, recorded under other input keys
    than the job's (another run wrote this folder since) or broken. Headers only: no pixel is decoded."""
    spec = row.get("spec") or {}
    label, subject = row["label"], row["subject"]
    images = ResultsLayout(results).images
    folder = images / label / subject
    listed = manifest_paths(folder / MANIFEST)
    if listed is None:
        return [(f"{IMAGES}/{label}/{subject}/{MANIFEST}", "missing")]
    if not (images / label / METHOD_INFO).is_file():  # how the label was made: the tables and scoring read it
        return [(f"{IMAGES}/{label}/{METHOD_INFO}", "missing")]
    keys = spec.get("keys") or {}
    problems = []
    if "images" in keys:
        try:
            recorded = json.loads((folder / JOB_INFO).read_text()).get("inputs_key")
        except (OSError, ValueError, AttributeError):
            recorded = None
        if recorded != keys["images"]:
            problems.append((f"{IMAGES}/{label}/{subject}", "made from other inputs"))
    for rel in listed:
        why = png_problem(images / rel)
        if why is not None:
            problems.append((f"{IMAGES}/{rel}", why))
    if "train" in keys and spec.get("keep_artifacts", True):
        bad = stored_artifact_problem(results, label, subject, keys["train"])
        if bad is not None:
            problems.append((Path(bad[0]).relative_to(results).as_posix(), bad[1]))
    return problems


def current(results: Path, row: dict, data_dir: Path | None = None) -> bool:
    return not output_problems(results, row)


def seconds(job: Job, rates: dict, sample_s: float) -> float:
    """Training at the label's (else the method's, else the reference loop's) measured rate, then
    sampling its images when it needs the model."""
    train = rates["train_per_method"]
    rate = train.get(job.label) or train.get(job.spec["job"]["method"]) or rates["train_steps_per_s"]
    return job.train_steps / rate + (job.images * sample_s if job.spec.get("needs_model", True) else 0.0)


KIND = JobKind("subject", SubjectSpec, run, current, seconds, writes_label=True, makes_images=True)
