"""Metric profiles: named scoring conventions as data (backbones, image transforms, pairing, scales).

A metric profile fixes everything that changes a number without changing what is measured: which DINO
and CLIP architectures embed the images, how images are resized, cropped and normalized before each
backbone, which real photos a generated image is compared with, how the LPIPS diversity is computed,
and how a raw cosine is turned into the reported figure. Adding a profile is adding an entry to the
registry; no scoring code branches on a profile's name.

CLIP architectures are open_clip's ``*-quickgelu`` configs: OpenAI trained CLIP with QuickGELU, and
open_clip 3 no longer switches the activation on for the ``openai`` tag of ``ViT-B-32`` (it only
warns). The state dict keys are those of ``ViT-B-32``, so an open_clip ViT-B-32 state dict loads.

Registered profiles (docs/metrics.md states each definition and its source):

- ``paper`` (default): DINO ViT-S/16, CLIP ViT-B/32 (OpenAI), raw cosines, every real photo, DIV at
  256 px (DreamBooth, Ruiz et al. CVPR 2023).
- ``x100``: the same, every cosine-based metric (DINO, CLIP-I, CLIP-T, PRES, the copy check and the
  Real Images row) multiplied by 100. DIV (an LPIPS distance, not a cosine) is unchanged.
- ``clipscore``: the same as ``paper`` except CLIP-T = 2.5 * max(cos, 0) per image (Hessel et al. 2021,
  CLIPScore with w = 2.5; custom-diffusion's evaluation). Other metrics raw.
- ``paper-vitl14``: ``paper`` with CLIP ViT-L/14 (OpenAI) for CLIP-I and CLIP-T.
- ``paper-div-native``: ``paper`` with DIV at the images' native resolution (no resize).
- ``dreambench-plus``: DreamBench++ (Peng et al., ICLR 2025; yuangpeng/dreambench_plus,
  ``dreambench_plus/metrics/dino_score.py`` and ``clip_score.py``): DINO ViT-S/8, CLIP ViT-B/32,
  100 * cos, each generated image against one reference photo.
- ``torchmetrics`` / ``torchmetrics-vitl14``: CLIP-T as torchmetrics' ``CLIPScore``
  (Lightning-AI/torchmetrics ``src/torchmetrics/multimodal/clip_score.py``): ``max(mean(100 * cos), 0)``,
  the floor applied to the mean (``compute()``), not per image; ViT-B/32, or ViT-L/14 (its default).
- ``kosmos-g``: the Kosmos-G evaluation (microsoft/unilm ``kosmos-g/sample_kosmosg_dreambench.py``,
  ``kosmos-g/eval/dino_score.py``, ``kosmos-g/eval/clip_score.py``; OmniGen reports its numbers):
  DINO ViT-S/16, CLIP ViT-B/32, ``max(mean(100 * cos), 0)`` for all three, one reference photo.
- ``imagenhub``: ImagenHub's subject-driven metrics (TIGER-AI-Lab/ImagenHub
  ``src/imagen_hub/metrics/dreambooth_metric.py``): paper backbones and raw cosines, one reference photo.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from ..registry import Registry
from .registry import get_metric

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
    [-1, 1]. ``size=None``: native resolution, no resize or crop (the images of a prompt must share a
    size)."""

    net: str = "alex"
    size: int | None = 256
    interpolation: str = "bicubic"


@dataclass(frozen=True)
class Scale:
    """How a raw per-image cosine becomes the reported value.

    Per image, before any averaging: ``factor * max(cos, floor)`` (no clipping when ``floor`` is None).
    ``mean_floor``: a floor applied to every reported *mean* (and its interval bounds) instead, as
    torchmetrics' ``compute()`` does: ``max(mean(factor * cos), mean_floor)``. Per-image and per-subject
    values stay unclipped under it (they are what is averaged)."""

    factor: float = 1.0
    floor: float | None = None
    mean_floor: float | None = None

    def apply(self, x: np.ndarray | float) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if self.floor is not None:
            x = np.maximum(x, self.floor)
        return self.factor * x

    def value_range(self) -> tuple[float, float]:
        """The possible per-image (and so per-subject and mean) values of a scaled cosine (in [-1, 1]):
        ``factor * [max(-1, floor), 1]``. ``mean_floor`` is not part of it: it is applied after averaging."""
        lo = self.factor * (-1.0 if self.floor is None else max(-1.0, self.floor))
        return lo, self.factor * 1.0

    def finish(self, mean: float) -> float:
        """A reported mean (or interval bound) after ``mean_floor``; NaN stays NaN."""
        if self.mean_floor is None or np.isnan(mean):
            return mean
        return max(float(mean), self.mean_floor)


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
        pairing: which real photos a generated image is compared with for DINO, CLIP-I and PRES:
            ``"all"`` (the mean cosine to every real photo of the subject) or ``"one"`` (the cosine to one
            reference photo: the manifest's ``reference`` column, a file name in the subject's folder,
            else the subject's first photo in sorted order). The copy check and Real Images always use
            every photo.
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
    pairing: str = "all"

    def scale(self, kind: str) -> Scale:
        return self.scales.get(kind, IDENTITY)

    def value_range(self, metric: str) -> tuple[float, float]:
        """The possible values of an aggregated ``metric`` (intervals are clipped to it), as its
        declaration says (:meth:`dreambench.metrics.registry.Metric.value_range`): the scaled cosine range
        (:meth:`Scale.value_range`) of a scaled metric, else its declared bounds (DIV: [0, inf))."""
        return get_metric(metric).value_range(self)

    def metric_scale(self, metric: str) -> Scale:
        """The scale of an aggregated metric (its declaration's ``scale``: DINO and PRES are on the DINO
        scale; an unscaled metric such as DIV has the identity)."""
        kind = get_metric(metric).scale
        return IDENTITY if kind is None else self.scale(kind)

    def to_dict(self) -> dict:
        """JSON-ready description (written to score_meta.json)."""
        d = asdict(self)
        d["dino"]["transform_id"] = self.dino.transform.id
        d["clip"]["transform_id"] = self.clip.transform.id
        d["scales"] = {k: asdict(self.scale(k)) for k in ("dino", "clip_i", "clip_t")}
        return d


COPY_REFERENCES = {"max": np.max, "mean": np.mean}
PAIRINGS = ("all", "one")

METRIC_PROFILES: Registry[MetricProfile] = Registry("metric profile")


def register_metric_profile(profile: MetricProfile) -> MetricProfile:
    """Add a metric profile to the registry (plug-ins may add their own)."""
    if profile.copy_reference not in COPY_REFERENCES:
        raise ValueError(f"copy_reference must be one of {sorted(COPY_REFERENCES)}")
    if profile.pairing not in PAIRINGS:
        raise ValueError(f"pairing must be one of {PAIRINGS}")
    METRIC_PROFILES.register(profile.name, profile)
    return profile


def get_metric_profile(name: str) -> MetricProfile:
    """The metric profile registered under ``name``; unknown names list the valid ones."""
    return METRIC_PROFILES.get(name)


def list_metric_profiles() -> list[MetricProfile]:
    """Every metric profile, in registration order."""
    return METRIC_PROFILES.values()


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
register_metric_profile(MetricProfile(
    "paper-div-native", "paper with DIV (LPIPS) at the images' native resolution, no resize",
    div=DivSpec(size=None),
))
# yuangpeng/dreambench_plus, dreambench_plus/metrics/dino_score.py (torch.hub dino_vits8: resize 256
# bicubic, crop 224, ImageNet norm, final-norm class token) and clip_score.py (HF openai/clip-vit-base-patch32):
# score = 100 * cos per (generated, source image) pair, summed and divided by the number of pairs.
register_metric_profile(MetricProfile(
    "dreambench-plus", "DreamBench++: DINO ViT-S/8, CLIP ViT-B/32, 100*cos, one reference photo per image",
    dino=BackboneSpec("vit_small_patch8_224.dino", DINO_TRANSFORM),
    scales={"dino": _X100, "clip_i": _X100, "clip_t": _X100}, pairing="one",
))
# Lightning-AI/torchmetrics, src/torchmetrics/multimodal/clip_score.py: update() sums 100 * cos per image,
# compute() returns max(sum / n_samples, 0) (functional clip_score: max(score.mean(0), 0)).
_TM = Scale(100.0, None, 0.0)
register_metric_profile(MetricProfile(
    "torchmetrics", "paper backbones; CLIP-T as torchmetrics CLIPScore max(mean(100*cos), 0); others raw",
    scales={"clip_t": _TM},
))
register_metric_profile(MetricProfile(
    "torchmetrics-vitl14", "torchmetrics with its default CLIP ViT-L/14 (openai/clip-vit-large-patch14)",
    clip=BackboneSpec("ViT-L-14-quickgelu", CLIP_TRANSFORM, "openai"), scales={"clip_t": _TM},
))
# microsoft/unilm, kosmos-g/sample_kosmosg_dreambench.py with kosmos-g/eval/dino_score.py (dino_vits16) and
# kosmos-g/eval/clip_score.py (openai/clip-vit-base-patch32): each generated image against the one real photo
# it was generated from; every metric is torchmetrics-style max(mean(100 * cos), 0).
register_metric_profile(MetricProfile(
    "kosmos-g", "Kosmos-G/OmniGen eval: DINO S/16, CLIP B/32, max(mean(100*cos),0), one reference photo",
    scales={"dino": _TM, "clip_i": _TM, "clip_t": _TM}, pairing="one",
))
# TIGER-AI-Lab/ImagenHub, src/imagen_hub/metrics/dreambooth_metric.py (MetricDINO / MetricCLIP_I take one
# real and one generated image; dino_vits16, clip ViT-B/32; raw cosine).
register_metric_profile(MetricProfile(
    "imagenhub", "ImagenHub subject-driven: paper backbones, raw cosines, one reference photo per image",
    pairing="one",
))
