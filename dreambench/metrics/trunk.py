"""The LPIPS trunk's label: which weights DIV's features come from, decided without importing torch.

Part of every DIV row's content key (:mod:`dreambench.metrics.keys`), so a resumed run computes it for
each group it re-checks; the trunk itself is built by :func:`dreambench.metrics.embed.build_lpips`.
"""

from __future__ import annotations

from pathlib import Path

from ..models.digest import file_digest
from ..models.hub_cache import trunk_weights_cached
from .profiles import DivSpec


def lpips_trunk_label(spec: DivSpec, pretrained_trunk: bool, trunk_file: str | Path | None = None) -> str:
    """``"<net>:file@<digest>"`` for a trunk weights file, ``"<net>:imagenet"`` when the trunk's ImageNet
    weights will be used (asked for, and torchvision's checkpoint is in torch's hub cache), else
    ``"<net>:random-init"``."""
    if trunk_file is not None:
        return f"{spec.net}:file@{file_digest(trunk_file)}"
    if not pretrained_trunk:
        return f"{spec.net}:random-init"

    return f"{spec.net}:{'imagenet' if trunk_weights_cached(spec.net) is not None else 'random-init'}"


def trunk_is_pretrained(label: str) -> bool:
    """Whether an LPIPS trunk label names trained weights (ImageNet from the cache, or a file)."""
    return not label.endswith(":random-init")
