"""Model profiles and builders (SD pipeline parts, DINO and CLIP backbones).

The builders import torch, diffusers, timm and open_clip; the profiles are plain data. Names resolve on
first use (PEP 562) so that ``from dreambench.models import list_profiles`` costs no heavy import: the
light commands (``--help``, ``tables``, ``report``, ``status``, ``study``) must never load torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_exports

_HOMES = {
    "Backbone": "backbones",
    "build_clip": "backbones",
    "build_dino": "backbones",
    "load_state_dict_file": "backbones",
    "ModelProfile": "profiles",
    "get_profile": "profiles",
    "list_profiles": "profiles",
    "register_profile": "profiles",
    "SDComponents": "components",
    "build_random_sd": "sd",
    "load_sd": "sd",
}

__all__ = [
    "Backbone",
    "ModelProfile",
    "SDComponents",
    "build_clip",
    "build_dino",
    "build_random_sd",
    "get_profile",
    "list_profiles",
    "load_sd",
    "load_state_dict_file",
    "register_profile",
]

if TYPE_CHECKING:
    from .backbones import Backbone, build_clip, build_dino, load_state_dict_file
    from .components import SDComponents
    from .profiles import ModelProfile, get_profile, list_profiles, register_profile
    from .sd import build_random_sd, load_sd


__getattr__ = lazy_exports(__name__, _HOMES)
