"""Metric profiles: named scoring conventions as data (backbones, image transforms, scales).

A metric profile fixes everything that changes a number without changing what is measured: which DINO
and CLIP architectures embed the images, how images are resized, cropped and normalized before each
backbone, how the LPIPS diversity is computed, and how a raw cosine is turned into the reported figure.
Adding a profile is adding an entry to the registry; no scoring code branches on a profile's name.

CLIP architectures are open_clip's ``*-quickgelu`` configs: OpenAI trained CLIP with QuickGELU, and
open_clip 3 no longer switches the activation on for the ``openai`` tag of ``ViT-B-32`` (it only
warns). The state dict keys are those of ``ViT-B-32``, so an open_clip ViT-B-32 state dict loads.

Registered profiles (see docs/metrics.md):

- ``paper`` (default): DINO ViT-S/16, CLIP ViT-B/32 (OpenAI), raw cosines (DINO ~0.67, CLIP-T ~0.30).
- ``x100``: the same, every cosine-based metric (DINO, CLIP-I, CLIP-T, PRES, the copy check and the
  Real Images row) multiplied by 100. DIV (an LPIPS distance, not a cosine) is unchanged.
- ``clipscore``: the same as ``paper`` except CLIP-T = 2.5 * max(cos, 0) per image (Hessel et al. 2021,
  CLIPScore with w = 2.5). Other metrics raw.
- ``paper-vitl14``: ``paper`` with CLIP ViT-L/14 (OpenAI) for CLIP-I and CLIP-T.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from ..errors import UnknownNameError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class Transform:
    """Image preprocessing before a backbone, applied to the decoded RGB image.

    Resize the short side to ``resize`` pixels (``interpolation``, antialiased as PIL does), center-crop
    ``crop`` x ``crop``, scale to [0, 1] (divide by 255), then subtract ``mean`` and divide by ``std``
    per channel."""

    resize: int
    crop: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bicubic"

    @property
    def id(self) -> str:
        """A stable text key of the transform (part of embedding cache keys)."""
        m = ",".join(f"{v:g}" for v in self.mean)
        s = ",".join(f"{v:g}" for v in self.std)
        return f"resize{self.resize}-{self.interpolation}-crop{self.crop}-mean{m}-std{s}"


DINO_TRANSFORM = Transform(256, 224, IMAGENET_MEAN, IMAGENET_STD)
CLIP_TRANSFORM = Transform(224, 224, CLIP_MEAN, CLIP_STD)


@dataclass(frozen=True)
class BackboneSpec:
    """A metric backbone: architecture name (timm for DINO, open_clip for CLIP), pretrained tag, transform."""

    arch: str
    transform: Transform
    tag: str | None = None


@dataclass(frozen=True)
class DivSpec:
    """LPIPS diversity: ``lpips`` package network ``net`` with its shipped linear weights; every image is
    resized (short side, ``interpolation``) and center-cropped to ``size`` x ``size``, then mapped to
    [-1, 1]."""

    net: str = "alex"
    size: int = 256
    interpolation: str = "bicubic"


@dataclass(frozen=True)
class Scale:
    """How a raw per-image cosine becomes the reported value: ``factor * max(cos, floor)``
    (no clipping when ``floor`` is None). Applied per image, before any averaging."""

    factor: float = 1.0
    floor: float | None = None

    def apply(self, x: np.ndarray | float) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if self.floor is not None:
            x = np.maximum(x, self.floor)
        return self.factor * x


IDENTITY = Scale()


@dataclass(frozen=True)
class MetricProfile:
    """A named scoring convention.

    Attributes:
        name: registry name, written into every result file (``metric_profile`` column).
        description: one line.
        dino: DINO backbone (DINO, PRES, the copy check, Real Images DINO).
        clip: CLIP backbone (CLIP-I, CLIP-T, Real Images CLIP-I).
        div: LPIPS settings for DIV.
        scales: per cosine kind, the :class:`Scale` applied per image: ``"dino"`` (DINO, PRES,
            max_dino_real, Real Images DINO), ``"clip_i"`` (CLIP-I, Real Images CLIP-I), ``"clip_t"``.
            A missing key means raw cosine. DIV is never scaled.
        copy_reference: which real-vs-real DINO statistic of a subject a generated image's highest DINO
            cosine to a real image must exceed to be flagged as a copy: ``"max"`` (the closest pair of
            distinct real photos) or ``"mean"`` (the Real Images DINO value).
    """

    name: str
    description: str
    dino: BackboneSpec = BackboneSpec("vit_small_patch16_224.dino", DINO_TRANSFORM)
    clip: BackboneSpec = BackboneSpec("ViT-B-32-quickgelu", CLIP_TRANSFORM, "openai")
    div: DivSpec = DivSpec()
    scales: dict[str, Scale] = field(default_factory=dict)
    copy_reference: str = "max"

    def scale(self, kind: str) -> Scale:
        return self.scales.get(kind, IDENTITY)

    def to_dict(self) -> dict:
        """JSON-ready description (written to score_meta.json)."""
        d = asdict(self)
        d["dino"]["transform_id"] = self.dino.transform.id
        d["clip"]["transform_id"] = self.clip.transform.id
        d["scales"] = {k: asdict(self.scale(k)) for k in ("dino", "clip_i", "clip_t")}
        return d


COPY_REFERENCES = {"max": np.max, "mean": np.mean}

_METRIC_PROFILES: dict[str, MetricProfile] = {}


def register_metric_profile(profile: MetricProfile) -> MetricProfile:
    """Add a metric profile to the registry (plug-ins may add their own)."""
    if profile.copy_reference not in COPY_REFERENCES:
        raise ValueError(f"copy_reference must be one of {sorted(COPY_REFERENCES)}")
    _METRIC_PROFILES[profile.name] = profile
    return profile


def get_metric_profile(name: str) -> MetricProfile:
    """The metric profile registered under ``name``; unknown names list the valid ones."""
    try:
        return _METRIC_PROFILES[name]
    except KeyError:
        raise UnknownNameError("metric profile", name, _METRIC_PROFILES) from None


def list_metric_profiles() -> list[MetricProfile]:
    return list(_METRIC_PROFILES.values())


_X100 = Scale(100.0)
register_metric_profile(MetricProfile("paper", "DreamBooth paper: DINO ViT-S/16, CLIP ViT-B/32, raw cosines"))
register_metric_profile(MetricProfile(
    "x100", "paper backbones; cosine metrics x100 (DIV unchanged)",
    scales={"dino": _X100, "clip_i": _X100, "clip_t": _X100},
))
register_metric_profile(MetricProfile(
    "clipscore", "paper backbones; CLIP-T as CLIPScore 2.5*max(cos,0); other metrics raw",
    scales={"clip_t": Scale(2.5, 0.0)},
))
register_metric_profile(MetricProfile(
    "paper-vitl14", "paper with CLIP ViT-L/14 (OpenAI) for CLIP-I and CLIP-T; raw cosines",
    clip=BackboneSpec("ViT-L-14-quickgelu", CLIP_TRANSFORM, "openai"),
))
