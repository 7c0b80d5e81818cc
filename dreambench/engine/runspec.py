"""What a run asks for (:class:`RunSpec`, one :class:`MethodRun` per label) and the checks of it that
need no file or model (:func:`validate_spec`, :func:`checked_config`): the library twin of the ``run``
command's options. Messages name the CLI option that set the bad value.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError, DreambenchError, UnknownNameError
from ..methods.base import get_method
from ..methods.recipes import recipes_for, resolve_config
from ..metrics.profiles import get_metric_profile
from ..models.profiles import get_profile
from ..protocol import Protocol


def field_names(method: str) -> set[str]:
    """The config fields of a registered method (what ``--set`` may name)."""
    return {f.name for f in dataclasses.fields(get_method(method).Config)}


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
            from the ablation settings (:func:`dreambench.engine.subject_job.default_role`: main unless the class
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
    #: ``--vae``: a VAE replacing the model's (:mod:`dreambench.models.vae_source`), None = the model's own.
    vae: str | None = None

def resolved_config(method: str, recipe: str | None, overrides: dict, steps: int | None = None,
                    family: str | None = None) -> tuple[dict, str | None]:
    """(full config, recipe name) as the method will see them: class defaults < recipe (for the model
    ``family``) < overrides < steps, typed, so ``"20"`` and ``20`` hash alike and a changed recipe default
    makes a new job."""
    cfg, name = resolve_config(get_method(method), recipe, overrides, steps, family)
    return cfg.to_dict(), name

def _at_least(option: str, value: int | None, low: int) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
        raise DreambenchError(f"{option} {value!r}: must be an integer >= {low}")

def validate_spec(spec: RunSpec, protocol: Protocol) -> None:
    """Check everything in ``spec`` that needs no file or model: counts, names (methods, model and metric
    profiles, subjects), duplicate labels, roles. Raises :class:`DreambenchError` naming the option and
    what it allows; nothing is touched before it passes. (Each method config is checked as the plan
    resolves it: :func:`checked_config`.)"""
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
            method_cls = get_method(mr.method)
        except DreambenchError as e:
            raise DreambenchError(f"--method: {e}") from None
        problem = method_family_problem(method_cls, spec.profile)
        if problem:
            raise DreambenchError(f"--method {mr.method}: {problem}")
        _at_least(f"--class-samples (label {mr.label})", mr.class_prompt_samples, 0)
        if mr.num_inputs is not None:
            _at_least(f"num_inputs (label {mr.label})", mr.num_inputs, 1)
        if mr.class_noun_mode not in ("correct", "none", "wrong"):
            raise DreambenchError(f"class_noun_mode {mr.class_noun_mode!r} (label {mr.label}): use correct, none "
                                  "or wrong")
        if mr.role is not None:
            role(mr.role.get("table", ""), mr.role.get("axis"), mr.role.get("value"))

def checked_config(mr: MethodRun, recipe: str | None, steps: int | None, family: str | None = None
                   ) -> tuple[dict, str | None]:
    """:func:`resolved_config` for one label, its errors naming the option that set the bad value
    (``--steps``, ``--set KEY=V``, ``--recipe``) and what the field allows."""
    try:
        return resolved_config(mr.method, recipe, mr.config, steps, family)
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

def truncated_protocol(protocol: Protocol, prompts: int | None) -> Protocol:
    """The protocol with at most ``prompts`` prompts per kind and per subject (quick runs); itself for None."""
    if prompts is not None and prompts < 1:
        raise DreambenchError(f"--prompts {prompts}: must be at least 1")
    return protocol.truncated(prompts)


def model_source(profile_name: str, model: str | None) -> str:
    profile = get_profile(profile_name)
    return model or profile.sd_model

def profile_recipe(method_cls: type, profile: str) -> str | None:
    """The model profile's recipe (:attr:`~dreambench.models.profiles.ModelProfile.recipe`, else one named
    after the profile, e.g. ``tiny``) when the method has it: the paper's 1000 class images at 50 steps
    make no sense for a CPU demo. Otherwise None (the method's default recipe for the profile's family)."""
    prof = get_profile(profile)
    name = prof.recipe or profile
    return name if name in recipes_for(method_cls, prof.family) else None


def method_family_problem(method_cls: type, profile: str) -> str | None:
    """Why ``method_cls`` cannot run on model profile ``profile`` (its family is not among the method's
    ``families``), or None."""
    family = get_profile(profile).family
    families = getattr(method_cls, "families", None)
    if families is None or family in families:
        return None
    why = (getattr(method_cls, "family_refusals", {}) or {}).get(family, "")
    return (f"method {method_cls.name} does not run on model family {family} (profile {profile}; it runs on "
            f"{', '.join(families)})" + (f": {why}" if why else ""))

def tables_available() -> bool:
    """Whether the tables job can run: :mod:`dreambench.tables` and the libraries it loads are installed.
    Found, not imported (pandas and matplotlib cost a no-op resume about 0.4 s)."""
    import importlib.util

    return all(importlib.util.find_spec(m) is not None
               for m in ("dreambench.tables", "pandas", "matplotlib", "scipy", "jinja2"))
