"""Metric backbones: DINO (timm) and CLIP (open_clip), pretrained, random-init, tiny or from files.

A backbone is named by the metric profile (architecture and pretrained tag) and built according to the
model profile: pretrained weights (``sd15``), the same architecture random-init (``sd15-random``), or a
tiny version of it (``tiny``). A local weights file replaces any download: safetensors or a
``torch.load(weights_only=True)`` file in any layout of :mod:`.weights_formats` (timm, DINO checkpoint,
transformers ViT/CLIP, open_clip); TorchScript and other pickles of code are refused.
"""

from __future__ import annotations

import hashlib
import logging
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import ModelLoadError
from .digest import file_digest as _file_digest
from .digest import tensor_digest
from .hub_cache import hub_weights
from .profiles import ModelProfile
from .weights_formats import convert_weights, read_weights, weights_path


@dataclass
class Backbone:
    """A built image (and for CLIP, text) tower plus a fingerprint of its weights for caches.

    ``where`` is how the weights were found (``file``, ``hub cache``, ``random-init``) and ``digest`` the
    short digest of the weights file (hub cache: of the cached file; random-init: of the tensors)."""

    name: str
    model: Any
    weights_id: str
    tokenizer: Any = None
    where: str = ""
    digest: str | None = None


def load_state_dict_file(path: str | Path, kind: str | None = None, flag: str = "weights file"
                         ) -> dict[str, torch.Tensor]:
    """A state dict from a weights file (see :mod:`.weights_formats`), converted to the keys of the
    ``kind`` backbone (``"dino"`` | ``"clip"``) when given; never unpickles code."""
    p = Path(path).expanduser()
    raw = read_weights(p, flag)
    if kind is None:
        return {k: v for k, v in raw.items() if isinstance(v, torch.Tensor)} or _no_tensors(p, flag)
    return convert_weights(raw, kind, p, flag)[0]


def _no_tensors(p: Path, flag: str):
    raise ModelLoadError(f"{flag} {p}: holds no tensors, expected a state dict (name -> tensor)")


def file_digest(path: str | Path) -> str:
    """sha256 of a file's bytes (first 16 hex digits), used to key caches by weights (cached per file)."""
    return _file_digest(Path(path).expanduser())


def _apply_weights(model: torch.nn.Module, path: str | Path, what: str, kind: str, flag: str) -> str:
    p = weights_path(path, flag)
    sd, layout = convert_weights(read_weights(p, flag), kind, p, flag)
    own = model.state_dict()
    # A state dict saved from the classifier (timm's default num_classes) carries head.* weights that the
    # embedding tower (num_classes=0) does not have and never uses.
    sd = {k: v for k, v in sd.items() if not (k.startswith("head.") and k not in own)}
    missing, unexpected = sorted(set(own) - set(sd)), sorted(set(sd) - set(own))
    if missing or unexpected:
        raise ModelLoadError(f"{flag} {p}: {what} weights ({layout} layout) do not match the architecture: "
                             f"{len(missing)} missing key(s) {missing[:5]}, {len(unexpected)} unexpected key(s) "
                             f"{unexpected[:5]}")
    shapes = [f"{k} {tuple(sd[k].shape)} vs {tuple(v.shape)}" for k, v in own.items() if sd[k].shape != v.shape]
    if shapes:
        raise ModelLoadError(f"{flag} {p}: {what} weights ({layout} layout) do not match the architecture "
                             f"(another size or model?): {len(shapes)} tensor(s) of another shape, e.g. "
                             f"{'; '.join(shapes[:3])} (file vs expected)")
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in sd.items()}, strict=True)
    return f"file:{file_digest(p)}"


def build_dino(
    profile: ModelProfile, arch: str = "vit_small_patch16_224.dino", weights_file: str | Path | None = None,
    flag: str = "--dino-weights",
) -> Backbone:
    """DINO ViT image tower from timm with ``num_classes=0`` (forward returns the final-norm class token)."""
    import timm

    overrides = profile.backbone_overrides.get("dino", {})
    base = arch.split(".")[0]
    pretrained = profile.pretrained_weights and weights_file is None and not overrides
    try:
        model = _seeded(
            lambda: timm.create_model(arch if pretrained else base, pretrained=pretrained, num_classes=0, **overrides)
        )
    except Exception as e:
        raise ModelLoadError(
            f"profile {profile.name}: cannot load DINO {arch!r} ({type(e).__name__}: not in the hub cache "
            f"{_hub_cache()}); pass {flag} FILE (a timm {base} state dict, a DINO checkpoint or a transformers "
            f"ViTModel file) or a random-init profile (sd15-random, tiny)"
        ) from e
    if weights_file is not None:
        weights_id = _apply_weights(model, weights_file, f"DINO {base}", "dino", flag)
    elif pretrained:
        weights_id = f"timm:{arch}"
    else:
        weights_id = f"random:{profile.name}:{_fingerprint(model)}"
    hub = hub_weights(getattr(model, "pretrained_cfg", {}) or {}) if pretrained else None
    return Backbone(arch, model.eval(), weights_id, None, *_origin(model, weights_file, pretrained, hub))


def build_clip(
    profile: ModelProfile,
    arch: str = "ViT-B-32",
    tag: str = "openai",
    weights_file: str | Path | None = None,
    flag: str = "--clip-weights",
) -> Backbone:
    """CLIP image and text towers from open_clip; the tokenizer is open_clip's (CLIP's real BPE)."""
    import open_clip

    overrides = profile.backbone_overrides.get("clip")
    tokenizer = open_clip.get_tokenizer(arch)
    pretrained = profile.pretrained_weights and weights_file is None and overrides is None
    try:
        if overrides is not None:
            from open_clip.model import CLIP

            model = _seeded(lambda: CLIP(**overrides))
        else:
            with _quiet_random_init(weights_file is not None):
                model = _seeded(lambda: open_clip.create_model(arch, pretrained=tag if pretrained else None))
    except Exception as e:
        raise ModelLoadError(
            f"profile {profile.name}: cannot load CLIP {arch}/{tag} ({type(e).__name__}: not in the hub cache "
            f"{_hub_cache()}); pass {flag} FILE (an open_clip {arch} state dict or a transformers CLIPModel "
            f"file) or a random-init profile (sd15-random, tiny)"
        ) from e
    if weights_file is not None:
        weights_id = _apply_weights(model, weights_file, f"CLIP {arch}", "clip", flag)
    elif pretrained:
        weights_id = f"open_clip:{arch}:{tag}"
    else:
        weights_id = f"random:{profile.name}:{_fingerprint(model)}"
    hub = hub_weights(open_clip.get_pretrained_cfg(arch, tag) or {}) if pretrained else None
    return Backbone(f"{arch}:{tag}", model.eval(), weights_id, tokenizer,
                    *_origin(model, weights_file, pretrained, hub))


def _origin(model: torch.nn.Module, weights_file, pretrained: bool, hub_file: Path | None) -> tuple[str, str | None]:
    """(where, digest) of a backbone's weights."""
    if weights_file is not None:
        return "file", _file_digest(weights_path(weights_file, ""))
    if pretrained:
        return "hub cache", _file_digest(hub_file) if hub_file is not None else None
    return "random-init", tensor_digest(model)


def load_lpips_trunk(net: torch.nn.Module, path: str | Path, arch: str = "alex",
                     flag: str = "--lpips-weights") -> str:
    """Load a torchvision checkpoint of the LPIPS trunk (``alexnet-owt-7be5be79.pth`` for ``alex``:
    ``features.N.*`` keys; the classifier is ignored) into ``lpips``'s ``sliceK.N.*`` modules. Returns
    the file's short digest."""
    p = weights_path(path, flag)
    raw = {k: v for k, v in read_weights(p, flag).items() if isinstance(v, torch.Tensor)}
    own = net.state_dict()
    # lpips keeps torchvision's module indices: slice2.3.weight is features.3.weight
    want = {k: "features." + k.split(".", 1)[1] for k in own}
    missing = sorted(v for v in want.values() if v not in raw)
    if missing:
        sample = ", ".join(sorted(raw)[:3]) or "no tensors"
        raise ModelLoadError(f"{flag} {p}: not a torchvision {arch} checkpoint for the LPIPS trunk (expected "
                             f"{len(want)} features.* tensors, missing {missing[:3]}; found {sample} ...)")
    bad = [f"{v} {tuple(raw[v].shape)} vs {tuple(own[k].shape)}" for k, v in want.items()
           if raw[v].shape != own[k].shape]
    if bad:
        raise ModelLoadError(f"{flag} {p}: not the {arch} trunk (another architecture?): {'; '.join(bad[:3])} "
                             f"(file vs expected)")
    net.load_state_dict({k: raw[v].float() for k, v in want.items()}, strict=True)
    return file_digest(p)


class _DropOpenClipNoise(logging.Filter):
    def __init__(self, random_init: bool):
        super().__init__()
        self.random_init = random_init

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return not ((self.random_init and "initialized randomly" in msg) or "Failed to download weights" in msg)


@contextmanager
def _quiet_random_init(active: bool):
    """open_clip warns "Model initialized randomly" when built without pretrained weights; when a weights
    file is loaded right after (``active``), the warning is false, so it is dropped. Its "Failed to
    download weights" error is dropped too: the one-line ModelLoadError raised instead says what to do.
    (Root logger, where open_clip logs.)"""
    f = _DropOpenClipNoise(active)
    root = logging.getLogger()
    root.addFilter(f)
    try:
        yield
    finally:
        root.removeFilter(f)


def _hub_cache() -> str:
    try:
        from huggingface_hub import constants

        return str(constants.HF_HUB_CACHE)
    except ImportError:
        return "(huggingface_hub missing)"


def _fingerprint(model: torch.nn.Module) -> str:
    """A short fingerprint of a model's weights (names, shapes, sums and leading values of each tensor)."""
    h = hashlib.sha256()
    # module types too: the same weights under another activation (GELU vs QuickGELU) embed differently
    h.update(",".join(type(m).__name__ for m in model.modules()).encode())
    with torch.no_grad():
        for name, t in sorted(model.state_dict().items()):
            h.update(name.encode())
            h.update(str(tuple(t.shape)).encode())
            flat = t.detach().flatten().double()
            h.update(flat[:64].numpy().tobytes())
            h.update(flat.sum().numpy().tobytes())
    return h.hexdigest()[:12]


def _seeded(build, seed: int = 0):
    """Run a model builder under a fixed seed without touching the caller's random state.

    Random-init backbones must be identical across processes (cache keys, resumed runs, Ray workers)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()
