"""Model profiles and builders (SD pipeline parts, DINO and CLIP backbones)."""

from .backbones import Backbone, build_clip, build_dino, load_state_dict_file
from .profiles import ModelProfile, get_profile, list_profiles, register_profile
from .sd import SDComponents, build_random_sd, load_sd

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
