"""The plan of a run: which jobs it expands into, their content-hash ids and their order.

A *run* is (protocol, method labels with configs, subjects, model profile, seed). It expands into jobs:

- ``class_images``: prior-preservation images for one class noun (shared by every subject and label of
  that class; scheduled before the subject jobs that need them);
- ``subject``: train + generate for one (label, subject), calling
  :func:`dreambench.methods.job.run_subject_job`;
- ``score``: one per (label, subject), after its subject job: scores that manifest part into
  ``<results>/scores/parts/<label>/<subject>`` (:func:`dreambench.metrics.scoring.score_folder` with ``only``);
- ``score_merge``: the combined score files from the current parts (:func:`dreambench.metrics.scoring.merge_scores`);
  runs even when some parts failed, which it lists in ``scores/missing.csv``;
- ``tables``: Tables 1-6 from the scores (:func:`dreambench.tables.write_tables`).

A job's id is the first 16 hex digits of the sha256 of the canonical JSON of everything that affects its
output (method, label, normalized config, recipe, subject, ablation settings, model profile and source,
seed, steps, prompts, package version, the method's provider, version and code:
:mod:`dreambench.methods.identity`), so the same job is never run twice and a changed config or method
makes a new job. A subject job's payload also holds its ``inputs`` (:func:`subject_inputs`): the bytes of the
subject's photos (for methods that read them), the class-image sets it trains with and the SD weights
digest, hashed by the driver when it plans (:class:`InputDigests`), so a changed photo or weights file
re-runs exactly the jobs that read it. Its spec carries the ``keys`` under which the job's artifact and
images may be reused (:func:`reuse_keys`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import DreambenchError
from ..protocol import Protocol

#: Job kinds, in the order they are scheduled.
KINDS = ("class_images", "subject", "score", "score_merge", "tables")
#: Subjects of the number-of-inputs ablation (paper Tables 5 and 6).
NUM_INPUTS_SUBJECTS = ("backpack", "dog")
#: Class-prompt samples per (label, subject) in the paper plan: the PRES metric's images.
PAPER_CLASS_PROMPT_SAMPLES = 4


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace: equal content gives equal text."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def content_hash(payload: Any) -> str:
    """First 16 hex digits of the sha256 of ``canonical_json(payload)``."""
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()[:16]


@dataclass
class MethodRun:
    """One method label of a run.

    Attributes:
        label: folder name under ``images/`` (e.g. ``"dreambooth-noppl"``).
        method: registry name.
        config: config overrides (strings accepted); normalized against the method's Config for hashing.
        recipe: named training recipe, or None for the method's default.
        class_noun_mode: ``correct`` | ``none`` | ``wrong`` (Table 4).
        num_inputs: instance images used (Tables 5/6), None = all.
        class_prompt_samples: extra "a [class noun]" images per subject (PRES, Table 3).
        subjects: restrict this label to these subjects (Tables 5/6), None = the run's subjects.
        table: which paper table asked for this label (shown by ``--dry-run``).
        role: the label's place in the tables, recorded in its method.json (:func:`role`); None = derived
            from the ablation settings (:func:`dreambench.methods.job.default_role`: main unless the class
            noun or the number of inputs is ablated).
    """

    label: str
    method: str
    config: dict = field(default_factory=dict)
    recipe: str | None = None
    class_noun_mode: str = "correct"
    num_inputs: int | None = None
    class_prompt_samples: int = 0
    subjects: list[str] | None = None
    table: str = ""
    role: dict | None = None


def role(table: str = "main", axis: str | None = None, value: Any = None) -> dict:
    """A label role: ``{"table": "main"}`` or ``{"table": "ablation", "axis": A, "value": V}`` with
    ``A`` one of ``ppl`` | ``class_noun`` | ``num_inputs`` (see :mod:`dreambench.tables.select`)."""
    if table == "main":
        return {"table": "main"}
    if table != "ablation" or axis not in ("ppl", "class_noun", "num_inputs"):
        raise DreambenchError(f"role {table!r}/{axis!r}: use main, or ablation with axis ppl, class_noun or "
                              "num_inputs")
    return {"table": "ablation", "axis": axis, "value": value}


@dataclass
class RunSpec:
    """Everything a ``dreambench run`` invocation asks for."""

    methods: list[MethodRun]
    subjects: list[str] | None = None
    profile: str = "tiny"
    model: str | None = None
    seed: int = 0
    steps: int | None = None
    sample_steps: int | None = None
    images_per_prompt: int = 4
    prompts: int | None = None
    identifier: str = "sks"
    protocol: str = "dreambooth"
    metric_profile: str = "paper"
    keep_artifacts: bool = True
    score: bool = True
    tables: bool = True
    #: Metric weights files (``{"dino"|"clip"|"lpips": absolute path}``) the score job passes to scoring.
    metric_weights: dict = field(default_factory=dict)


@dataclass
class Job:
    """One unit of work. ``spec`` is JSON-ready and is all a worker needs; ``deps`` are job ids that must
    be done first; ``images`` and ``train_steps`` size the job for estimates."""

    id: str
    kind: str
    label: str
    subject: str
    spec: dict
    deps: list[str] = field(default_factory=list)
    images: int = 0
    train_steps: int = 0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class Plan:
    """The jobs of a run in dependency order, plus the spec it came from."""

    spec: RunSpec
    jobs: list[Job]

    def by_kind(self, kind: str) -> list[Job]:
        return [j for j in self.jobs if j.kind == kind]

    @property
    def images(self) -> int:
        return sum(j.images for j in self.jobs)

    def labels(self) -> list[str]:
        return list(dict.fromkeys(j.label for j in self.jobs if j.kind == "subject"))


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
            from ..data.check import subject_images
            from ..io import sha256_file

            try:
                self._photos[subject] = [[p.name, sha256_file(p)] for p in subject_images(self.data_dir, subject)]
            except (DreambenchError, OSError):
                self._photos[subject] = None
        return self._photos[subject]


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
    from ..methods.job import RUNTIME_KEYS

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


def resolved_config(method: str, recipe: str | None, overrides: dict, steps: int | None = None
                    ) -> tuple[dict, str | None]:
    """(full config, recipe name) as the method will see them: class defaults < recipe < overrides <
    steps, typed, so ``"20"`` and ``20`` hash alike and a changed recipe default makes a new job."""
    from ..methods.base import get_method
    from ..methods.recipes import resolve_config

    cfg, name = resolve_config(get_method(method), recipe, overrides, steps)
    return cfg.to_dict(), name


def _at_least(option: str, value: int | None, low: int) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
        raise DreambenchError(f"{option} {value!r}: must be an integer >= {low}")


def validate_spec(spec: RunSpec, protocol: Protocol) -> None:
    """Check everything in ``spec`` that needs no file or model: counts, names (methods, model and metric
    profiles, subjects), duplicate labels, roles. Raises :class:`DreambenchError` naming the option and
    what it allows; nothing is touched before it passes. (Each method config is checked as the plan
    resolves it: :func:`checked_config`.)"""
    from ..methods.base import get_method
    from ..metrics.profiles import get_metric_profile
    from ..models.profiles import get_profile

    if not spec.methods:
        raise DreambenchError("nothing to run: give --method NAME (repeatable) or --tables paper")
    labels = [m.label for m in spec.methods]
    dupes = sorted({x for x in labels if labels.count(x) > 1})
    if dupes:
        raise DreambenchError(f"method label(s) {', '.join(dupes)} given twice")
    for option, value, low in (("--steps", spec.steps, 1), ("--sample-steps", spec.sample_steps, 1),
                               ("--images-per-prompt", spec.images_per_prompt, 1), ("--prompts", spec.prompts, 1),
                               ("--seed", spec.seed, 0)):
        _at_least(option, value, low)
    for option, call in (("--profile", lambda: get_profile(spec.profile)),
                         ("--metric-profile", lambda: get_metric_profile(spec.metric_profile)),
                         ("--subjects", lambda: protocol.select(spec.subjects))):
        try:
            call()
        except DreambenchError as e:
            raise DreambenchError(f"{option}: {e}") from None
    for mr in spec.methods:
        try:
            get_method(mr.method)
        except DreambenchError as e:
            raise DreambenchError(f"--method: {e}") from None
        _at_least(f"--class-samples (label {mr.label})", mr.class_prompt_samples, 0)
        if mr.num_inputs is not None:
            _at_least(f"num_inputs (label {mr.label})", mr.num_inputs, 1)
        if mr.class_noun_mode not in ("correct", "none", "wrong"):
            raise DreambenchError(f"class_noun_mode {mr.class_noun_mode!r} (label {mr.label}): use correct, none "
                                  "or wrong")
        if mr.role is not None:
            role(mr.role.get("table", ""), mr.role.get("axis"), mr.role.get("value"))


def checked_config(mr: MethodRun, recipe: str | None, steps: int | None) -> tuple[dict, str | None]:
    """:func:`resolved_config` for one label, its errors naming the option that set the bad value
    (``--steps``, ``--set KEY=V``, ``--recipe``) and what the field allows."""
    from ..errors import ConfigError, UnknownNameError

    try:
        return resolved_config(mr.method, recipe, mr.config, steps)
    except ConfigError as e:
        f = e.field
        if f == "steps" and steps is not None:
            option = "--steps"
        elif f in mr.config:
            option = f"--set {f}={mr.config[f]}"
        else:
            option = f"recipe {recipe or 'default'}"
        raise ConfigError(f"{option}: method {mr.method} (label {mr.label}) {e}", field=f) from None
    except UnknownNameError as e:
        option = f"--recipe {recipe}" if e.what.startswith("recipe") else "--set"
        raise DreambenchError(f"{option}: {e}") from None


def parse_method_label(item: str) -> tuple[str, str]:
    """``--method LABEL=METHOD`` -> ``(label, method)``; a plain ``--method M`` is ``(M, M)``. The label
    becomes a folder name, so it must be a valid name (:func:`dreambench.protocol.name_problem`)."""
    from ..protocol import name_problem

    label, _, method = item.partition("=")
    label, method = label.strip(), (method.strip() if method else label.strip())
    if not label or not method:
        raise DreambenchError(f"--method {item!r}: expected METHOD or LABEL=METHOD")
    problem = name_problem(label)
    if problem:
        raise DreambenchError(f"--method {item!r}: label {problem}")
    return label, method


def parse_sets(items: list[str] | tuple[str, ...], labels: list[str] | dict[str, str]) -> dict[str, dict[str, str]]:
    """``--set key=value`` (every label whose method has the field) or ``--set PREFIX.key=value`` -> overrides
    per label. ``PREFIX`` is a label, or else a method name (every label of that method). ``labels`` maps
    label -> method (a list means label = method)."""
    methods = dict(labels) if isinstance(labels, dict) else {m: m for m in labels}
    out: dict[str, dict[str, str]] = {label: {} for label in methods}
    for item in items:
        if "=" not in item:
            raise DreambenchError(f"--set {item!r}: expected key=value or LABEL.key=value")
        key, value = item.split("=", 1)
        key = key.strip()
        if "." in key:
            prefix, k = key.split(".", 1)
            takers = [prefix] if prefix in methods else [lb for lb, m in methods.items() if m == prefix]
            if not takers:
                raise DreambenchError(f"--set {item!r}: {prefix!r} is neither a label nor a method of the run "
                                      f"(labels: {', '.join(methods) or 'none'})")
            for label in takers:
                if k not in _field_names(methods[label]):
                    which = "" if label == methods[label] else f" (label {label})"
                    raise DreambenchError(f"--set {item!r}{which}: method {methods[label]} has no config field "
                                          f"{k!r}; fields: {', '.join(sorted(_field_names(methods[label])))}")
                out[label][k] = value
        else:
            # A bare key goes to every label whose method's config has that field (real has no learning rate).
            takers = [lb for lb, m in methods.items() if key in _field_names(m)]
            if not takers:
                fields = sorted(set().union(*(_field_names(m) for m in methods.values()))) if methods else []
                raise DreambenchError(f"--set {item!r}: no method among {sorted(set(methods.values()))} has a "
                                      f"config field {key!r}; fields: {', '.join(fields) or '(none)'}")
            for label in takers:
                out[label][key] = value
    return out


def _field_names(method: str) -> set[str]:
    from ..methods.base import get_method

    return {f.name for f in dataclasses.fields(get_method(method).Config)}


def _ppl_field(method: str) -> str | None:
    """The config field that switches prior preservation on, if the method has one."""
    names = _field_names(method)
    for candidate in ("prior_preservation", "with_prior_preservation", "ppl"):
        if candidate in names:
            return candidate
    return None


def paper_method_runs(overrides: dict[str, dict] | None = None, class_prompt_samples: int = PAPER_CLASS_PROMPT_SAMPLES,
                      num_inputs: tuple[int, ...] = (1, 2, 3, 4, 5)) -> list[MethodRun]:
    """The labels the paper's tables need.

    Table 1: dreambooth, textual-inversion, real (upper bound), pretrained (lower bound, when registered).
    Table 3: dreambooth with and without prior preservation, with class-prompt samples (PRES) and
    4 images per prompt (DIV). Table 4: class noun correct / none / wrong. Tables 5/6: 1..5 instance
    images on backpack and dog.
    """
    from ..methods.base import list_methods

    registered = list_methods()
    overrides = overrides or {}

    def need(name: str) -> None:
        if name not in registered:
            raise DreambenchError(f"--tables paper needs method {name!r}, which is not registered "
                                  f"(registered: {', '.join(registered) or 'none'})")

    for name in ("dreambooth", "textual-inversion", "real"):
        need(name)
    db = dict(overrides.get("dreambooth", {}))
    ppl = _ppl_field("dreambooth")
    if ppl is None:
        raise DreambenchError("--tables paper: the dreambooth config has no prior-preservation switch "
                              "(prior_preservation / with_prior_preservation / ppl) for Table 3")
    main = role()
    runs = [
        MethodRun("dreambooth", "dreambooth", {**db, ppl: True}, class_prompt_samples=class_prompt_samples,
                  table="1,3,4", role=main),
        MethodRun("textual-inversion", "textual-inversion", dict(overrides.get("textual-inversion", {})),
                  table="1", role=main),
        MethodRun("real", "real", dict(overrides.get("real", {})), table="1", role=main),
    ]
    if "pretrained" in registered:
        runs.append(MethodRun("pretrained", "pretrained", dict(overrides.get("pretrained", {})), table="1",
                              role=main))
    runs.append(MethodRun("dreambooth-noppl", "dreambooth", {**db, ppl: False},
                          class_prompt_samples=class_prompt_samples, table="3", role=role("ablation", "ppl", False)))
    for mode in ("none", "wrong"):
        runs.append(MethodRun(f"dreambooth-noun-{mode}", "dreambooth", {**db, ppl: True}, class_noun_mode=mode,
                              table="4", role=role("ablation", "class_noun", mode)))
    for k in num_inputs:
        runs.append(MethodRun(f"dreambooth-n{k}", "dreambooth", {**db, ppl: True}, num_inputs=k,
                              subjects=list(NUM_INPUTS_SUBJECTS), table="5,6", role=role("ablation", "num_inputs", k)))
    return runs


def truncated_protocol(protocol: Protocol, prompts: int | None) -> Protocol:
    """The protocol with at most ``prompts`` prompts per kind (quick runs); itself for None."""
    if prompts is None:
        return protocol
    if prompts < 1:
        raise DreambenchError(f"--prompts {prompts}: must be at least 1")
    return dataclasses.replace(protocol, prompts={k: v[:prompts] for k, v in protocol.prompts.items()})


def _model_source(profile_name: str, model: str | None) -> str:
    from ..models.profiles import get_profile

    profile = get_profile(profile_name)
    return model or profile.sd_model


def build_plan(spec: RunSpec, protocol: Protocol, inputs: InputDigests | None = None) -> Plan:
    """Expand ``spec`` into jobs: class images, subject jobs, then score and tables. ``inputs``: the
    photos and weights the ids are made from (None: neither is; a plan only shown, or a test's)."""
    from ..methods import job as jobmod
    from ..methods.base import get_method
    from ..methods.identity import identity_payload, method_identity
    from ..methods.photos import PHOTO_DECODE

    validate_spec(spec, protocol)
    source = _model_source(spec.profile, spec.model)
    proto = truncated_protocol(protocol, spec.prompts)
    run_subjects = [s.name for s in protocol.select(spec.subjects)]
    base = {"version": __version__, "profile": spec.profile, "model": source, "protocol": protocol.name,
            "seed": spec.seed}
    if protocol.digest:  # the protocol files' content, not only their name, decides the jobs
        base["protocol_digest"] = protocol.digest

    class_needs: dict[str, dict] = {}
    subject_jobs: list[Job] = []
    for mr in spec.methods:
        method_cls = get_method(mr.method)
        recipe = mr.recipe or _profile_recipe(method_cls, spec.profile)
        full_config, recipe_name = checked_config(mr, recipe, spec.steps)
        # Provider, version and code of the method: changed code re-runs its jobs, and only them. Not a
        # label setting: the runner re-makes a label whose method.json names another identity.
        identity = identity_payload(method_identity(method_cls))
        names = [n for n in run_subjects if mr.subjects is None or n in mr.subjects]
        for name in names:
            subject = protocol.subject(name)
            sj = jobmod.SubjectJob(
                method=mr.method, label=mr.label, config=dict(mr.config), recipe=recipe, subject=name,
                identifier=spec.identifier, class_noun_mode=mr.class_noun_mode, num_inputs=mr.num_inputs,
                images_per_prompt=spec.images_per_prompt, seed=spec.seed,
                class_prompt_samples=mr.class_prompt_samples, steps=spec.steps, sample_steps=spec.sample_steps,
                profile=spec.profile,
                role=mr.role or jobmod.default_role(mr.class_noun_mode, mr.num_inputs),
            )
            job_fields = dataclasses.asdict(sj)
            deps = []
            for need in class_image_needs(sj, protocol):
                # One job per class-image set; count is not part of the cache key, so take the largest.
                key = canonical_json({k: v for k, v in need.items() if k != "count"})
                if key in class_needs:
                    class_needs[key]["count"] = max(class_needs[key]["count"], need["count"])
                else:
                    class_needs[key] = need
                deps.append(key)
            prompts = proto.prompts_for(subject)
            images = len(prompts) * spec.images_per_prompt + mr.class_prompt_samples
            label_payload = {"model": source, "profile": spec.profile, "protocol": protocol.name,
                             **({"protocol_digest": protocol.digest} if protocol.digest else {}),
                             "resolved_config": {k: v for k, v in full_config.items() if k not in jobmod.RUNTIME_KEYS},
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
                payload["photo_decode"] = PHOTO_DECODE
            payload.update(identity)
            payload["inputs"] = subject_inputs(method_cls, name, sorted(set(deps)), inputs)
            subject_jobs.append(Job(
                id=content_hash(payload), kind="subject", label=mr.label, subject=name,
                spec={"job": job_fields, "prompts": spec.prompts, "model": spec.model, "protocol": protocol.name,
                      "keep_artifacts": spec.keep_artifacts, "needs_model": bool(method_cls.needs_model),
                      "recipe": recipe_name, "label_key": content_hash(label_payload),
                      "label_settings": label_payload,
                      "protocol_content": list(protocol.content) if protocol.digest else None,
                      "keys": reuse_keys(payload, bool(method_cls.trains))},
                deps=sorted(set(deps)), images=images,
                train_steps=int(full_config.get("steps", 0) or 0) if method_cls.trains else 0,
            ))
    class_jobs = {key: _class_job(need, base, spec, inputs) for key, need in class_needs.items()}
    for j in subject_jobs:
        j.deps = sorted(class_jobs[d].id for d in j.deps)
    jobs = list(class_jobs.values()) + subject_jobs
    if spec.score and subject_jobs:
        merge = _score_jobs(subject_jobs, base, spec)
        jobs += merge
        if spec.tables:
            payload = {"version": __version__, "kind": "tables", "score": merge[-1].id}
            jobs.append(Job(content_hash(payload), "tables", "", "", {}, deps=[merge[-1].id]))
    return Plan(spec, jobs)


def _weights_payload(metric_weights: dict) -> dict:
    """What of the metric weights files changes scores: their digests (none given: nothing, so plans
    without weights files keep their ids)."""
    if not metric_weights:
        return {}
    from ..models.digest import file_digest
    from ..models.weights_formats import weights_path

    return {"metric_weights": {k: file_digest(weights_path(v, f"--{k}-weights")) if Path(v).exists() else v
                               for k, v in sorted(metric_weights.items())}}


def _score_jobs(subject_jobs: list[Job], base: dict, spec: RunSpec) -> list[Job]:
    """One score job per (label, subject), run as soon as its subject job is done, then the merge job
    that writes the combined score files from the current parts (it runs even when some parts failed,
    and lists them as missing). Whether a done score job's inputs changed since is checked by the
    runner from content keys (:func:`dreambench.metrics.scoring.inputs_current`), not by the id."""
    scoring = {"metric_profile": spec.metric_profile, "model_profile": spec.profile,
               "metric_weights": dict(spec.metric_weights)}
    weights = _weights_payload(spec.metric_weights)
    parts = []
    for sj in subject_jobs:
        payload = {**base, "kind": "score", "metric_profile": spec.metric_profile, "subject_job": sj.id, **weights}
        parts.append(Job(content_hash(payload), "score", sj.label, sj.subject,
                         {**scoring, "label": sj.label, "subject": sj.subject}, deps=[sj.id], images=sj.images))
    pairs = sorted([p.label, p.subject] for p in parts)
    payload = {**base, "kind": "score_merge", "metric_profile": spec.metric_profile,
               "parts": sorted(p.id for p in parts), **weights}
    merge = Job(content_hash(payload), "score_merge", "", "",
                {**scoring, "parts": pairs, "run_if_deps_failed": True}, deps=sorted(p.id for p in parts))
    return parts + [merge]


def class_image_needs(sj: Any, protocol: Protocol) -> list[dict]:
    """The class-image set a subject job will read, as keyword arguments of
    :func:`dreambench.methods.priors.ensure_class_images` (minus components, cache root, device).

    Mirrors :func:`dreambench.methods.job.train_or_load`: prior preservation on, a class noun (the
    ablation's one: none means no prior), ``num_class_images`` images with the config's seed and sampler.
    A mismatch would only cost time (the job then makes its own), never change results."""
    from ..methods import job as jobmod
    from ..methods.base import get_method

    method_cls = get_method(sj.method)
    if not method_cls.trains:
        return []
    cfg, _ = jobmod.build_job_config(sj, method_cls)
    count = int(getattr(cfg, "num_class_images", 0) or 0)
    if not getattr(cfg, "with_prior_preservation", False) or count <= 0 or sj.class_noun_mode == "none":
        return []
    subject = protocol.subject(sj.subject)
    noun = jobmod.wrong_class_noun(protocol, subject, sj.seed) if sj.class_noun_mode == "wrong" \
        else subject.class_noun
    if not noun:
        return []
    return [{"class_noun": noun, "count": count, "seed": int(cfg.seed),
             "sample_steps": int(cfg.class_sample_steps or cfg.sample_steps),
             "batch_size": int(cfg.sample_batch_size), "sampler": cfg.sampler,
             "guidance_scale": float(cfg.guidance_scale)}]


def _class_job(need: dict, base: dict, spec: RunSpec, inputs: InputDigests | None = None) -> Job:
    payload = {**base, "kind": "class_images", "need": need}
    if inputs is not None and inputs.sd_digest is not None:  # the images are the weights' samples
        payload["sd_digest"] = inputs.sd_digest
    return Job(content_hash(payload), "class_images", "", str(need.get("class_noun", "")),
               {"need": need, "model": spec.model, "profile": spec.profile}, images=int(need.get("count", 0)))


def _profile_recipe(method_cls: type, profile: str) -> str | None:
    """A recipe named after the model profile (``tiny``) when the method has one: the paper's 1000 class
    images at 50 steps make no sense for a CPU demo. Otherwise None (the method's default recipe)."""
    from ..methods.recipes import recipes_for

    return profile if profile in recipes_for(method_cls) else None


def tables_available() -> bool:
    """Whether the tables job can run: :mod:`dreambench.tables` and the libraries it loads are installed.
    Found, not imported (pandas and matplotlib cost a no-op resume about 0.4 s)."""
    import importlib.util

    return all(importlib.util.find_spec(m) is not None
               for m in ("dreambench.tables", "pandas", "matplotlib", "scipy", "jinja2"))
