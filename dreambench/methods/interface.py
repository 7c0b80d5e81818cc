"""The one interface every personalization method implements (the registry is :mod:`.registry`).

A method takes a subject (its instance images, class noun, identifier), SD parts from a model profile
and a config, and produces (a) a trained artifact (safetensors, or nothing for training-free methods)
and (b) images for (prompt, seed) requests. It knows nothing of jobs, GPUs, SQLite or tables.

Configs are dataclasses: every field has a default, a type and ``metadata={"help": ...}``; the config
is recorded with results. Third-party methods register through the ``dreambench.methods`` entry-point
group (``name = "package.module:MethodClass"``, :mod:`dreambench.methods.registry`) and then appear in
``dreambench methods list``.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import ConfigError, UnknownNameError
from ..protocol import Protocol, Subject
from .config_rules import allowed, check_fields

if TYPE_CHECKING:  # training imports this module; at run time the annotation stays a string
    import torch

    from .training import TrainStats


@dataclass
class SubjectData:
    """What a method is given about one subject.

    Attributes:
        subject: the protocol subject (name, true class noun, kind).
        images: the instance images used for training (after the number-of-inputs ablation).
        identifier: the rare-token identifier, e.g. ``"sks"``.
        class_noun: the class noun used in prompts (equals ``subject.class_noun`` except in the
            class-noun ablation, where it may be empty or a wrong class).
        class_images: prior-preservation class images (see :mod:`dreambench.methods.priors`); empty when
            the caller did not prepare them (a method needing them then makes its own).
        protocol: the protocol the subject belongs to (its prompt conventions; None: the DreamBooth
            protocol's, as for a subject built by hand).

    ``len(images)`` is how many photos the subject has (DreamBench++: one).
    """

    subject: Subject
    images: list[Path]
    identifier: str = "sks"
    class_noun: str | None = None
    class_images: list[Path] = field(default_factory=list)
    protocol: Protocol | None = None

    def __post_init__(self) -> None:
        if self.class_noun is None:
            self.class_noun = self.subject.class_noun

    def training_prompt(self, token: str, learns_token: bool = False) -> str:
        """The protocol's training prompt for a method whose prompt token is ``token``, e.g. ``"a sks dog"``
        (DreamBooth protocol, token ``sks``), ``"a <sks> dog"`` (textual inversion) or ``"a photo of dog"``
        (DreamBench++, where prompts carry no identifier; textual inversion: ``"a photo of <sks>"``)."""
        protocol = self.protocol or Protocol("", [], {})
        return protocol.instance_prompt_for(*protocol.wording(token, learns_token, self.class_noun or ""))


@dataclass(frozen=True)
class GenerationRequest:
    """One image to make: the prompt as given to the model, its protocol index, and its seed."""

    prompt: str
    prompt_index: int
    seed: int


@dataclass
class MethodConfig:
    """Base of every method config. Subclasses add fields with ``metadata={"help": ...}`` and may declare
    range rules there (``min``, ``gt``, ``max``, ``lt``, ``choices``: :mod:`dreambench.methods.config_rules`)."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> None:
        """Raise :class:`dreambench.errors.ConfigError` for a value of the wrong type or out of its declared
        range. Override (calling ``super().validate()``) for rules across fields."""
        check_fields(self)


def config_fields(config_cls: type) -> list[dict[str, Any]]:
    """Name, type, default and help of each config field (for ``dreambench methods list``)."""
    out = []
    for f in dataclasses.fields(config_cls):
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None  # type: ignore[misc]
        )
        out.append({"name": f.name, "type": getattr(f.type, "__name__", str(f.type)), "default": default,
                    "help": f.metadata.get("help", "")})
    return out


def make_config(config_cls: type, overrides: dict[str, Any] | None = None) -> Any:
    """A config instance from string or typed overrides, with clear errors for unknown fields/values."""
    overrides = dict(overrides or {})
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise UnknownNameError(f"option for {config_cls.__name__}", unknown[0], fields)
    typed: dict[str, Any] = {}
    for k, v in overrides.items():
        typed[k] = _coerce(v, fields[k], config_cls)
    config = config_cls(**typed)
    if hasattr(config, "validate"):
        config.validate()
    return config


def _coerce(value: Any, f: dataclasses.Field, config_cls: type) -> Any:
    if not isinstance(value, str):
        return value
    default = f.default if f.default is not dataclasses.MISSING else None
    kind = type(default) if default is not None else str
    try:
        if kind is bool:
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        return kind(value)
    except ValueError:
        raise ConfigError(f"{f.name}={value!r}: must be {allowed(f)}", field=f.name) from None


class Method(ABC):
    """A personalization method. Subclasses set ``name``, ``description`` and ``Config``.

    Lifecycle, as the engine drives it for one subject::

        m = MethodCls(config, components, device)   # components: SD parts, pristine weights
        artifact = m.train(data, workdir)            # no-op returning None when trains is False
        images = m.generate(data, requests)          # list of PIL images, one per request, in order

    ``load_artifact(path)`` restores a trained state saved by ``train`` (so generation can resume after a
    crash without retraining). Methods may modify ``components`` in place; the engine restores pristine
    weights between subjects.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    Config: ClassVar[type] = MethodConfig
    trains: ClassVar[bool] = True
    #: Whether the method needs SD parts at all (``real`` does not).
    needs_model: ClassVar[bool] = True
    #: A built-in's behaviour revision: bump it when a change makes other images or artifacts, so its jobs
    #: re-run (:mod:`dreambench.methods.identity`). Plug-ins are identified by their code digest instead.
    revision: ClassVar[int] = 1
    #: Whether the method reads the subject's photos (``SubjectData.images``): their names and bytes are
    #: then part of its jobs' ids, so a changed photo re-runs them. True unless a method says otherwise
    #: (``pretrained`` does): one that may read them must not reuse outputs made from other photos.
    uses_photos: ClassVar[bool] = True
    #: Whether :meth:`prompt_identifier` is a token the method learns (textual inversion). In a protocol
    #: whose prompts carry no identifier (DreamBench++) such a token takes the subject noun's place.
    learns_token: ClassVar[bool] = False
    #: The model families (:data:`dreambench.models.profiles.FAMILIES`) the method runs on; None = every
    #: family (it conditions the UNet through :mod:`dreambench.methods.conditioning`, or needs no model).
    #: A run on another family is refused before any job, with ``family_refusals[family]`` as the reason.
    families: ClassVar[tuple[str, ...] | None] = None
    family_refusals: ClassVar[dict[str, str]] = {}

    #: The :class:`~dreambench.methods.training.TrainStats` of the last :meth:`train` call; None for
    #: methods that do not train or do not report.
    stats: TrainStats | None = None
    #: Show progress bars (set by the job runner).
    progress: bool = True

    def __init__(self, config: Any, components: Any, device: torch.device | str = "cpu"):
        self.config = config
        self.components = components
        import torch  # here, not at the top: the registry and configs are read by light commands

        self.device = torch.device(device)

    @abstractmethod
    def train(self, data: SubjectData, workdir: Path) -> Path | None:
        """Fit to the subject; save the artifact (safetensors) under ``workdir`` and return its path."""

    def load_artifact(self, path: Path) -> None:
        """Restore the state saved by :meth:`train` (default: nothing to restore)."""

    def prompt_identifier(self, identifier: str) -> str:
        """The text that replaces ``{V}`` in prompts given to this method (default: the identifier;
        textual inversion: its placeholder token; the pretrained baseline: nothing)."""
        return identifier

    def close(self) -> None:
        """Undo structural changes made to ``components`` (added adapters, tokens); weights are the
        caller's to restore. Default: nothing to undo."""

    @abstractmethod
    def generate(self, data: SubjectData, requests: list[GenerationRequest]) -> list:
        """One PIL image per request, in order; the same seed gives the same image on the same device."""


__all__ = ["GenerationRequest", "Method", "MethodConfig", "SubjectData", "config_fields", "field", "make_config"]
