"""One subject job: train (or load) a method for one subject, generate its missing images, record them.

This is what the engine's ``subject`` job kind runs (:mod:`dreambench.engine.kinds.subject`) and
``dreambench train/generate`` run; methods know nothing of it. Layout (:class:`dreambench.layout.ResultsLayout`,
:mod:`dreambench.schema`)::

    <results>/artifacts/<label>/<subject>/     the method's safetensors + artifact.json (written last)
    <results>/images/<label>/<subject>/<prompt-index>_<seed>.png, manifest.csv, job.json
    <results>/images/<label>/method.json        how the label was made (schema.METHOD_INFO_KEYS + extras)
    <results>/class_images/<key>/              shared prior-preservation images (methods.priors)

Seeds: image ``k`` (0-based) of every prompt of a job with seed ``s`` uses seed ``s * 1000 + k``, so the
same (job seed, prompt, k) always gives the same image and every method sees the same initial noise for
the same (prompt, k) (paired comparisons). Class-prompt samples (prompt index -1, for PRES) use the same
rule. Training uses the config's own ``seed``.

Ablations handled here (recorded in method.json, the manifest rows and job.json):

- prior preservation on/off: the config's ``with_prior_preservation`` (off automatically with no class
  noun: there is no class prior to preserve);
- class noun ``correct`` | ``none`` (prompts "a sks in the jungle") | ``wrong`` (drawn from the other
  class nouns of the protocol with ``random.Random(f"{seed}:{subject}")``);
- number of input images: ``num_inputs`` photos drawn with ``random.Random(f"{seed}:{subject}:inputs")``
  (clamped to the photos available), sorted by name.

Reuse: a planned job carries the keys of its inputs (:func:`dreambench.engine.kinds.subject.reuse_keys`). The
artifact is loaded only when ``artifact.json`` records the ``train`` key as its ``inputs_key``, and the
images on disk are kept only when ``job.json`` records the ``images`` key; otherwise they were made from
other photos, class images, weights or config and are deleted and made again. An image that is not a
complete PNG (:func:`dreambench.verify.png_problem`) is made again with its batch.
"""

from __future__ import annotations

import json
import random
import shutil
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data.check import load_subject_image, subject_images
from ..errors import DataError, DreambenchError
from ..io import save_image_atomic, write_text_atomic, writes_under
from ..layout import ARTIFACT_INFO, JOB_INFO, ResultsLayout
from ..methods.base import GenerationRequest, Method, SubjectData, get_method
from ..methods.identity import identity_text, method_identity, same_identity
from ..methods.photos import keep as keep_photo
from ..methods.priors import (
    class_image_need,
    class_images_key,
    class_prompt,
    ensure_class_images,
    prior_preservation,
)
from ..methods.recipes import resolve_config
from ..models import get_profile
from ..protocol import CLASS_PROMPT_INDEX, Protocol, Subject
from ..provenance import components_provenance
from ..schema import MANIFEST, METHOD_INFO, image_relpath
from ..verify import artifact_problem, manifest_paths, png_problem

CLASS_NOUN_MODES = ("correct", "none", "wrong")
SEED_BLOCK = 1000
#: Identifiers longer than this many tokens draw a warning (the paper uses 1-3 rare tokens).
MAX_IDENTIFIER_TOKENS = 3
#: Config keys that change speed or memory but not results; a label may be resumed with other values.
RUNTIME_KEYS = {"sample_batch_size", "compile", "compile_mode", "sample_compile", "channels_last",
                "gradient_checkpointing", "cache_latents"}


class IdentifierWarning(UserWarning):
    """An identifier that the tokenizer splits into many tokens (weak, or not rare, as a [V])."""


@dataclass
class SubjectJob:
    """One (method label, subject) unit of work. See the module docstring for seeds and ablations."""

    method: str
    label: str
    config: dict = field(default_factory=dict)
    recipe: str | None = None
    subject: str = ""
    identifier: str = "sks"
    class_noun_mode: str = "correct"
    num_inputs: int | None = None
    images_per_prompt: int = 4
    seed: int = 0
    class_prompt_samples: int = 0
    steps: int | None = None
    sample_steps: int | None = None
    profile: str = "tiny"
    #: The label's place in the tables (see :mod:`dreambench.tables.select`); None = :func:`default_role`.
    role: dict | None = None


def default_role(class_noun_mode: str = "correct", num_inputs: int | None = None) -> dict:
    """The role of a label planned without one: a class-noun or number-of-inputs ablation when those
    settings are not the defaults, else main. (A prior-preservation-off ablation is only ever planned
    explicitly: one label with prior preservation off is a main label.)"""
    if class_noun_mode != "correct":
        return {"table": "ablation", "axis": "class_noun", "value": class_noun_mode}
    if num_inputs is not None:
        return {"table": "ablation", "axis": "num_inputs", "value": int(num_inputs)}
    return {"table": "main"}


def ppl_setting(method_cls: type[Method], config: Any) -> bool | None:
    """Prior preservation on (True) or off (False) for a training method with the switch
    (:func:`dreambench.methods.priors.prior_preservation`); None when it does not apply (training-free, or
    no such switch)."""
    return prior_preservation(config) if method_cls.trains else None


def image_seed(seed: int, k: int) -> int:
    """Seed of image ``k`` of a prompt in a job with seed ``seed``."""
    return int(seed) * SEED_BLOCK + int(k)


def wrong_class_noun(protocol: Protocol, subject: Subject, seed: int) -> str:
    """A class noun of another class of the protocol, drawn reproducibly from (seed, subject)."""
    others = sorted({s.class_noun for s in protocol.subjects if s.class_noun and s.class_noun != subject.class_noun})
    if not others:
        raise DataError(f"class_noun_mode wrong: protocol {protocol.name!r} has no other class than "
                        f"{subject.class_noun!r}")
    return random.Random(f"{seed}:{subject.name}").choice(others)


def choose_inputs(images: list[Path], num_inputs: int | None, seed: int, subject: str,
                  log: Callable[[str], None] | None = None) -> list[Path]:
    """``num_inputs`` of ``images`` drawn reproducibly (all for ``None``), in name order."""
    if num_inputs is None:
        return list(images)
    if num_inputs < 1:
        raise DreambenchError(f"num_inputs must be at least 1 (got {num_inputs})")
    if num_inputs > len(images):
        if log:
            log(f"{subject}: num_inputs={num_inputs} but only {len(images)} images; using all")
        return list(images)
    return sorted(random.Random(f"{seed}:{subject}:inputs").sample(list(images), num_inputs))


def identifier_tokens(tokenizer: Any, identifier: str) -> list[str]:
    return tokenizer.tokenize(identifier) if identifier else []


def prepare_subject_data(job: SubjectJob, protocol: Protocol, data_dir: str | Path, tokenizer: Any = None,
                         log: Callable[[str], None] | None = None, resolution: int | None = None) -> SubjectData:
    """Validate the job's inputs and build its :class:`SubjectData`, before any model work.

    Every photo is decoded once here (:func:`dreambench.methods.photos.decode_photo`, reduced for a
    training ``resolution`` when given); the chosen ones are kept for training's ``load_pixels``.

    Raises :class:`DataError` for an unknown subject, a subject folder with no images or with an
    unreadable image (named), a missing class noun (unless ``class_noun_mode`` is ``none``), and a bad
    ``class_noun_mode``; warns (:class:`IdentifierWarning`) when ``tokenizer`` splits the identifier into
    more than ``MAX_IDENTIFIER_TOKENS`` tokens."""
    if job.class_noun_mode not in CLASS_NOUN_MODES:
        raise DreambenchError(f"class_noun_mode {job.class_noun_mode!r} is not one of {', '.join(CLASS_NOUN_MODES)}")

    subject = protocol.subject(job.subject)
    images = subject_images(Path(data_dir), subject.name)
    if not images:
        raise DataError(f"{Path(data_dir) / subject.name}: no images for subject {subject.name!r}")

    photos = {}
    for p in images:  # decode every photo once, checked as `data check` does: a bad, animated or too small
        with warnings.catch_warnings():  # file must fail before training, naming the file
            warnings.simplefilter("ignore")
            photos[p] = load_subject_image(p, short_side=resolution)
    if job.class_noun_mode == "none":
        noun = ""
    elif not subject.class_noun.strip():
        raise DataError(f"subject {subject.name!r} has no class noun in protocol {protocol.name!r} "
                        "(add it to the subjects file, or use class_noun_mode none)")
    elif job.class_noun_mode == "wrong":
        noun = wrong_class_noun(protocol, subject, job.seed)
    else:
        noun = subject.class_noun
    if tokenizer is not None and job.identifier:
        toks = identifier_tokens(tokenizer, job.identifier)
        if len(toks) > MAX_IDENTIFIER_TOKENS:
            warnings.warn(f"identifier {job.identifier!r} is {len(toks)} tokens ({' '.join(toks)}); the paper uses "
                          f"1-{MAX_IDENTIFIER_TOKENS} rare tokens such as 'sks'", IdentifierWarning, stacklevel=2)
    chosen = choose_inputs(images, job.num_inputs, job.seed, subject.name, log)
    if resolution:
        for p in chosen:
            keep_photo(photos[p], resolution)
    return SubjectData(subject, chosen, job.identifier, noun, protocol=protocol)


def artifact_dir(results_dir: str | Path, label: str, subject: str) -> Path:
    """``<results>/artifacts/<label>/<subject>`` (:meth:`dreambench.layout.ResultsLayout.artifact_dir`)."""
    return ResultsLayout(results_dir).artifact_dir(label, subject)


def stored_artifact_problem(results_dir: str | Path, label: str, subject: str, key: str | None = None
                            ) -> tuple[Path, str] | None:
    """None when a usable artifact is on disk: ``artifact.json`` naming a complete file
    (:func:`dreambench.verify.artifact_problem`) and, when ``key`` is given, recording it as its
    ``inputs_key``; else (the file at fault, why): ``missing`` when there is no ``artifact.json``."""
    info_path = artifact_dir(results_dir, label, subject) / ARTIFACT_INFO
    if not info_path.is_file():
        return info_path, "missing"
    try:
        info = json.loads(info_path.read_text())
        path = info_path.parent / str(info["file"])
    except (OSError, ValueError, KeyError, TypeError):
        return info_path, "unreadable"
    if key is not None and info.get("inputs_key") != key:
        return info_path.parent, "trained from other inputs"
    problem = artifact_problem(path)
    return None if problem is None else (path, problem)


def has_artifact(results_dir: str | Path, label: str, subject: str, key: str | None = None) -> bool:
    """Whether a complete artifact (``artifact.json`` and the whole file it names; made under ``key``
    when given) is on disk."""
    return stored_artifact_problem(results_dir, label, subject, key) is None


def _weights_label(method_cls: type[Method], job: SubjectJob, components: Any) -> str:
    if not method_cls.needs_model:
        return "real"
    if components is not None:
        return "pretrained" if components.pretrained_weights else "random-init"

    return get_profile(job.profile).weights_label


def _sd_record(components: Any) -> dict:
    """``sd_source`` and ``sd_digest`` of the SD weights that made the images (empty for real images)."""
    if components is None:
        return {}

    prov = components_provenance(components)
    return {"sd_source": prov["sd_source"], "sd_digest": prov["sd_digest"]}


def _sd_details(components: Any) -> dict:
    """For ``method.json``: the model family (SDXL) and a ``--vae`` VAE's source and digest, when any (SD 1.5
    without ``--vae`` records nothing more, so its files are unchanged)."""
    if components is None:
        return {}
    prov = components_provenance(components)
    return {k: prov[k] for k in ("sd_family", "vae_source", "vae_digest") if k in prov}


def _method_info(job: SubjectJob, method_cls: type[Method], config: Any, recipe: str | None, ppl: bool | None,
                 weights: str) -> dict:
    return {
        "method": method_cls.name, "config": config.to_dict(), "recipe": recipe, "ppl": ppl,
        "role": job.role or default_role(job.class_noun_mode, job.num_inputs),
        "class_noun_mode": job.class_noun_mode, "num_inputs": job.num_inputs, "profile": job.profile,
        "weights": weights, "identifier": job.identifier, "label": job.label, "seed": job.seed,
        "images_per_prompt": job.images_per_prompt, "class_prompt_samples": job.class_prompt_samples,
        "seed_rule": f"image k of a prompt uses seed seed*{SEED_BLOCK}+k",
        "method_identity": method_identity(method_cls),
    }


def _write_method_info(path: Path, info: dict) -> None:
    if path.is_file():
        old = json.loads(path.read_text())
        strip = lambda d: {k: v for k, v in (d or {}).items() if k not in RUNTIME_KEYS}
        for key in ("method", "recipe", "ppl", "class_noun_mode", "num_inputs", "profile", "identifier", "seed"):
            # Older releases wrote ppl false where it does not apply (null now): the same setting.
            same = bool(old.get(key)) == bool(info.get(key)) if key == "ppl" else old.get(key) == info.get(key)
            if not same:
                raise DreambenchError(f"{path}: label {info['label']!r} was made with {key}={old.get(key)!r}, "
                                      f"this job has {info.get(key)!r}; use another label")
        if not same_identity(old.get("method_identity"), info["method_identity"]):
            # `dreambench run` moves such a label aside and re-makes it (its label key holds the identity);
            # writing into it here would mix images of two versions of the method.
            raise DreambenchError(
                f"{path}: label {info['label']!r} was made by {identity_text(old.get('method_identity'))}, this "
                f"job runs {identity_text(info['method_identity'])}; `dreambench run` re-makes the label, or use "
                "another label")
        if strip(old.get("config")) != strip(info["config"]):
            diff = sorted(k for k in set(strip(old.get("config"))) | set(strip(info["config"]))
                          if strip(old.get("config")).get(k) != strip(info["config"]).get(k))
            raise DreambenchError(f"{path}: label {info['label']!r} was made with another config "
                                  f"({', '.join(diff)}); use another label")
        if old == info:
            return
    write_text_atomic(path, json.dumps(info, indent=1, default=str))


def _job_info(data: SubjectData, protocol: Protocol, wording: tuple[str, str], n_images: int,
              keys: dict | None) -> dict[str, Any]:
    """What job.json records of the job's inputs and wording."""
    info: dict[str, Any] = {"subject": data.subject.name, "inputs": [p.name for p in data.images],
                            "class_noun": data.class_noun, "identifier_in_prompts": wording[0], "n_images": n_images}
    if not protocol.identifier:  # the subject is named by its noun, or by the token of a method that learns one
        info["noun_in_prompts"] = wording[1]
    if keys is not None:
        info["inputs_key"] = keys["images"]
    return info


def _plan(job: SubjectJob, protocol: Protocol, data: SubjectData, wording: tuple[str, str], extra: dict
          ) -> list[tuple[GenerationRequest, dict]]:
    subject = data.subject
    out = []
    for p in protocol.prompts_for(subject):
        text = p.render(*wording)
        for k in range(job.images_per_prompt):
            seed = image_seed(job.seed, k)
            row = {"method": job.label, "subject": subject.name, "prompt_index": p.index, "prompt": text,
                   "seed": seed, "path": image_relpath(job.label, subject.name, p.index, seed),
                   "prompt_plain": p.render_plain(subject.class_noun), "category": p.category, **extra}
            out.append((GenerationRequest(text, p.index, seed), row))
    # PRES samples: the personalized model prompted with the subject's true class ("a dog").
    text = protocol.class_prompt_for(subject.class_noun)
    for k in range(job.class_prompt_samples):
        seed = image_seed(job.seed, k)
        row = {"method": job.label, "subject": subject.name, "prompt_index": CLASS_PROMPT_INDEX, "prompt": text,
               "seed": seed, "path": image_relpath(job.label, subject.name, CLASS_PROMPT_INDEX, seed),
               "prompt_plain": text, "category": "class", **extra}
        out.append((GenerationRequest(text, CLASS_PROMPT_INDEX, seed), row))
    return out


def sample_batches(plan: list, batch_size: int) -> list[list]:
    """The job's full image plan cut into sampling batches of ``batch_size`` (the last may be shorter), in
    plan order. The batch an image is made in is part of its identity: batched kernels need not give
    bit-identical results for another batch composition, so a resumed job regenerates whole batches."""
    size = max(1, int(batch_size))
    return [plan[i:i + size] for i in range(0, len(plan), size)]


def build_job_config(job: SubjectJob, method_cls: type[Method]) -> tuple[Any, str | None]:
    """The job's config (recipe < config overrides < steps) with the sampler steps resolved from
    ``job.sample_steps`` or the model profile's default."""
    config, recipe = resolve_config(method_cls, job.recipe, job.config, job.steps, get_profile(job.profile).family)
    if hasattr(config, "sample_steps"):
        if job.sample_steps:
            config.sample_steps = int(job.sample_steps)
        elif not config.sample_steps:
            config.sample_steps = get_profile(job.profile).sample_steps_default
    return config, recipe


def train_or_load(method: Method, data: SubjectData, job: SubjectJob, components: Any, results_dir: Path,
                  progress: bool = True, log: Callable[[str], None] = lambda m: None, key: str | None = None) -> dict:
    """Load the job's artifact when complete on disk (and made under ``key``, when given), else delete
    what is there and train (preparing shared class images first).

    Returns the artifact record (``artifact.json``: file, training stats, class-images key, and the
    ``inputs_key`` it was trained under)."""
    adir = artifact_dir(results_dir, job.label, job.subject)
    info_path = adir / ARTIFACT_INFO
    problem = stored_artifact_problem(results_dir, job.label, job.subject, key)
    if problem is None:
        info = json.loads(info_path.read_text())
        log(f"{job.label}/{job.subject}: loading artifact {adir / info['file']}")
        method.load_artifact(adir / info["file"])
        return info
    if adir.exists():  # never load or mix with an artifact of other inputs, or a broken one
        log(f"{job.label}/{job.subject}: artifact not reused ({problem[0]}: {problem[1]}); training again")
        shutil.rmtree(adir)
    info: dict = {"class_images_key": None}
    need = class_image_need(method.config, data.class_noun)
    if need is not None:
        data.class_images = ensure_class_images(components, cache_root=ResultsLayout(results_dir).class_images,
                                                device=method.device, progress=progress, **need)
        info["class_images_key"] = class_images_key(components, class_prompt(need["class_noun"]), need["seed"],
                                                    need["sample_steps"] or 0, need["sampler"], need["guidance_scale"])
    log(f"{job.label}/{job.subject}: training {method.name}")
    t = time.perf_counter()
    path = method.train(data, adir)
    if path is None:
        raise DreambenchError(f"method {method.name} trains but returned no artifact")
    stats = method.stats
    info.update({"file": Path(path).relative_to(adir).as_posix(), "train_seconds": round(time.perf_counter() - t, 3),
                 "stats": stats.summary() if stats is not None else None,
                 "inputs": [p.name for p in data.images], "class_noun": data.class_noun})
    if key is not None:
        info["inputs_key"] = key
    write_text_atomic(info_path, json.dumps(info, indent=1))
    return info


@writes_under("results_dir")
def train_subject(job: SubjectJob, protocol: Protocol, components: Any, data_dir: Path, results_dir: Path,
                  device: str = "cpu", progress: bool = True, log: Callable[[str], None] | None = None) -> dict:
    """Train the job's method for its subject (``dreambench train``) unless its artifact is already on
    disk; returns the artifact record (``artifact.json``) with ``path`` added."""
    log = log or (lambda m: None)
    results_dir = Path(results_dir)
    method_cls = get_method(job.method)
    if not method_cls.trains:
        raise DreambenchError(f"method {method_cls.name} does not train; use `dreambench generate`")
    if components is None:
        raise DreambenchError(f"method {method_cls.name} needs model components (load_sd) and got none")
    config, _ = build_job_config(job, method_cls)
    data = prepare_subject_data(job, protocol, data_dir, components.tokenizer, log, components.resolution)
    if getattr(config, "with_prior_preservation", False) and not data.class_noun:
        config.with_prior_preservation = False
    if has_artifact(results_dir, job.label, job.subject):
        log(f"{job.label}/{job.subject}: artifact already in {artifact_dir(results_dir, job.label, job.subject)}")
        info = json.loads((artifact_dir(results_dir, job.label, job.subject) / ARTIFACT_INFO).read_text())
    else:
        method = method_cls(config, components, device)
        method.progress = progress
        try:
            info = train_or_load(method, data, job, components, results_dir, progress, log)
        finally:
            method.close()
    return {**info, "path": str(artifact_dir(results_dir, job.label, job.subject) / info["file"])}


def _drop_stale_images(subject_dir: Path, key: str, log: Callable[[str], None]) -> bool:
    """Delete ``subject_dir`` when it holds files but its ``job.json`` does not record ``key`` as the
    ``inputs_key`` they were made under (other inputs, or an older release that recorded none); True
    when it did."""
    if not subject_dir.is_dir() or not any(subject_dir.iterdir()):
        return False
    try:
        recorded = json.loads((subject_dir / JOB_INFO).read_text()).get("inputs_key")
    except (OSError, ValueError, AttributeError):
        recorded = None
    if recorded == key:
        return False
    log(f"{subject_dir}: images made from other inputs (key {recorded}, now {key}); making them again")
    shutil.rmtree(subject_dir)
    return True


def _broken_images(plan: list, images_dir: Path, subject_dir: Path) -> tuple[set[str], list[tuple[Path, str]]]:
    """(manifest paths of the plan's images that are not complete PNGs, those to report as remade:
    every broken file, and a missing one only when an earlier finished job listed it in its manifest)."""
    listed = set(manifest_paths(subject_dir / MANIFEST) or [])
    bad, remade = set(), []
    for _, row in plan:
        problem = png_problem(images_dir / row["path"])
        if problem is None:
            continue
        bad.add(row["path"])
        if problem != "missing" or row["path"] in listed:
            remade.append((images_dir / row["path"], problem))
    return bad, remade


@writes_under("results_dir")
def run_subject_job(job: SubjectJob, protocol: Protocol, components: Any, data_dir: Path, results_dir: Path,
                    device: str = "cpu", keep_artifacts: bool = True, progress: bool = True,
                    log: Callable[[str], None] | None = None, *, train_missing: bool = True,
                    keys: dict[str, str] | None = None, remade: list[tuple[Path, str]] | None = None) -> list[dict]:
    """Run one subject job (see the module docstring) and return its manifest rows.

    Images already on disk are kept, batch by batch (:func:`sample_batches`: a batch with any image
    missing or not a complete PNG is made again whole, so a resumed job gives the same pixels); a
    complete artifact in ``<results>/artifacts/<label>/<subject>/`` is loaded instead of training.
    ``keys`` (a planned job's :func:`dreambench.engine.plan.reuse_keys`): images and artifact on disk are
    reused only when made under them, and a kept artifact that is missing or broken is trained again.
    ``remade`` (when given) receives ``(path, why)`` for each output on disk that was broken, missing or
    made from other inputs and is now made again.
    ``keep_artifacts=False`` deletes the artifact after generation.
    ``train_missing=False`` (``dreambench generate``) raises instead of training when the artifact is
    missing. ``components`` must hold pristine weights (the method may modify them; the caller restores
    them)."""
    log = log or (lambda m: None)
    results_dir, data_dir = Path(results_dir), Path(data_dir)
    layout = ResultsLayout(results_dir)
    # 1. Check the job and resolve its config, before any model work.
    method_cls = get_method(job.method)
    config, recipe = _checked_job(job, method_cls, components)
    # 2. Read and check the subject's photos; no class noun means no prior to preserve.
    tokenizer = components.tokenizer if (components is not None and method_cls.needs_model) else None
    resolution = components.resolution if (components is not None and method_cls.trains) else None
    data = prepare_subject_data(job, protocol, data_dir, tokenizer, log, resolution)
    if getattr(config, "with_prior_preservation", False) and not data.class_noun:
        log(f"{job.label}/{job.subject}: no class noun, prior preservation off")
        config.with_prior_preservation = False
    # 3. Record how the label is made (method.json; refused when the label was made otherwise).
    weights = _weights_label(method_cls, job, components)
    sd_record = _sd_record(components if method_cls.needs_model else None)
    info = {**_method_info(job, method_cls, config, recipe, ppl_setting(method_cls, config), weights), **sd_record,
            **_sd_details(components if method_cls.needs_model else None)}
    _write_method_info(layout.label_images(job.label) / METHOD_INFO, info)
    # 4. Plan the job's images, in sampling batches.
    method = method_cls(config, components, device)
    method.progress = progress  # built-in methods show training progress bars when set
    wording = protocol.wording(method.prompt_identifier(job.identifier), method_cls.learns_token, data.class_noun)
    extra = {"class_noun": data.class_noun, "profile": job.profile, "weights": weights, **sd_record,
             "method_identity": identity_text(info["method_identity"])}
    plan = _plan(job, protocol, data, wording, extra)
    batches = sample_batches(plan, int(getattr(config, "sample_batch_size", 16)))
    subject_dir = layout.subject_images(job.label, data.subject.name)
    # 5. Find what on disk is missing, broken or made from other inputs.
    remade = remade if remade is not None else []
    todo_batches, stale_artifact = _outputs_to_make(job, method_cls, plan, batches, layout, subject_dir, keys,
                                                    keep_artifacts and train_missing, remade, log)
    todo = [item for b in todo_batches for item in b]
    job_info = _job_info(data, protocol, wording, len(plan), keys)
    # 6. Train (or load) and generate what is missing, then record the job (job.json).
    if todo or stale_artifact:
        if keys is not None:  # first: images written from here on are known to be made under this key
            write_text_atomic(subject_dir / JOB_INFO, json.dumps(job_info, indent=1, default=str))
        try:
            if method_cls.trains:
                job_info["artifact"] = _artifact(method, data, job, components, results_dir, progress, log,
                                                 (keys or {}).get("train"), train_missing)
            t_gen = _generate(method, data, todo_batches, layout.images, f"{job.label}/{job.subject}", progress)
        finally:
            method.close()
        job_info["generated"] = len(todo)
        job_info["generate_seconds"] = round(t_gen, 3)
        if method_cls.trains and not keep_artifacts:
            shutil.rmtree(artifact_dir(results_dir, job.label, job.subject), ignore_errors=True)
        write_text_atomic(subject_dir / JOB_INFO, json.dumps(job_info, indent=1, default=str))
    elif not (subject_dir / JOB_INFO).is_file():
        write_text_atomic(subject_dir / JOB_INFO, json.dumps(job_info, indent=1, default=str))
    # 7. Write the job's manifest part.
    rows = [row for _, row in plan]
    if rows:
        from ..manifest import write_part  # pandas: in the worker, not when a run is planned

        write_part(rows, layout.images, job.label, data.subject.name)
    log(f"{job.label}/{job.subject}: {len(todo)} generated, {len(plan) - len(todo)} already on disk")
    return rows


def _checked_job(job: SubjectJob, method_cls: type[Method], components: Any) -> tuple[Any, str | None]:
    """The job's (config, recipe name) after checking its label, counts and model components."""
    if not job.label:
        raise DreambenchError("job label is empty")
    if job.images_per_prompt < 0 or job.class_prompt_samples < 0:
        raise DreambenchError("images_per_prompt and class_prompt_samples must be >= 0")
    config, recipe = build_job_config(job, method_cls)
    if method_cls.needs_model and components is None:
        raise DreambenchError(f"method {method_cls.name} needs model components (load_sd) and got none")
    return config, recipe


def _outputs_to_make(job: SubjectJob, method_cls: type[Method], plan: list, batches: list, layout: ResultsLayout,
                     subject_dir: Path, keys: dict[str, str] | None, check_artifact: bool,
                     remade: list[tuple[Path, str]], log: Callable[[str], None]
                     ) -> tuple[list[list], tuple[Path, str] | None]:
    """(the sampling batches to make again, the kept artifact's problem or None). Images made under
    another key are deleted first; a batch with any image missing or broken is made again whole: its
    images then come from the same batch as in an uninterrupted run (same composition, same pixels;
    siblings are rewritten identically). A kept artifact is an output too: one missing, broken or of
    other inputs is trained again (``check_artifact``: kept and trained when missing). Appends what it
    finds broken to ``remade``."""
    if keys is not None and _drop_stale_images(subject_dir, keys["images"], log):
        remade.append((subject_dir, "made from other inputs"))
    bad, broken = _broken_images(plan, layout.images, subject_dir)
    remade.extend(broken)
    todo_batches = [b for b in batches if any(row["path"] in bad for _, row in b)]
    stale_artifact = None
    if method_cls.trains and check_artifact and keys is not None:
        stale_artifact = stored_artifact_problem(layout.root, job.label, job.subject, keys.get("train"))
        if stale_artifact is not None and (stale_artifact[1] != "missing" or not todo_batches):
            remade.append(stale_artifact)
    return todo_batches, stale_artifact


def _artifact(method: Method, data: SubjectData, job: SubjectJob, components: Any, results_dir: Path,
              progress: bool, log: Callable[[str], None], key: str | None, train_missing: bool) -> dict:
    """:func:`train_or_load`; with ``train_missing`` False (``dreambench generate``) a missing artifact
    is an error instead of trained."""
    if not train_missing and not has_artifact(results_dir, job.label, job.subject):
        raise DreambenchError(
            f"no trained artifact for {job.label}/{job.subject} in "
            f"{artifact_dir(results_dir, job.label, job.subject)}; run `dreambench train` first")
    return train_or_load(method, data, job, components, results_dir, progress, log, key=key)


def _generate(method: Method, data: SubjectData, todo_batches: list[list], images_dir: Path, desc: str,
              progress: bool) -> float:
    """Generate and save each batch of ``todo_batches``; returns the seconds spent."""
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=sum(len(b) for b in todo_batches), desc=desc, unit="img", leave=False)
    t = time.perf_counter()
    for part in todo_batches:
        images = method.generate(data, [req for req, _ in part])
        if len(images) != len(part):
            raise DreambenchError(f"method {method.name} returned {len(images)} images for {len(part)}")
        for (_, row), im in zip(part, images):
            save_image_atomic(im, images_dir / row["path"])
        if bar is not None:
            bar.update(len(part))
    seconds = time.perf_counter() - t
    if bar is not None:
        bar.close()
    return seconds


__all__ = [
    "CLASS_NOUN_MODES",
    "IdentifierWarning",
    "SubjectJob",
    "artifact_dir",
    "build_job_config",
    "choose_inputs",
    "default_role",
    "has_artifact",
    "image_seed",
    "ppl_setting",
    "prepare_subject_data",
    "run_subject_job",
    "sample_batches",
    "stored_artifact_problem",
    "train_or_load",
    "train_subject",
    "wrong_class_noun",
]
