"""The SD architecture config sets shipped in ``dreambench/models/configs`` (``<name>_<part>.json``).

Torch-free: where the files are, reading one, and :func:`random_sd_key`, the cache key of random-init
parts built from a set (so a resumed run's provenance reads their digest from the cache without torch).
"""

from __future__ import annotations

import hashlib
import json
from importlib import metadata
from pathlib import Path

from ..errors import ModelLoadError

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


def read_config(name: str, part: str) -> dict:
    """The config ``configs/<name>_<part>.json`` (``part``: unet, vae, text_encoder, text_encoder_2, scheduler)."""
    path = CONFIG_DIR / f"{name}_{part}.json"
    if not path.is_file():
        raise ModelLoadError(f"no model config {path.name} in {CONFIG_DIR}")
    return json.loads(path.read_text())


#: The parts of a config set per model family (a set with ``text_encoder_2`` is SDXL-shaped).
FAMILY_PARTS = {"sd15": ("unet", "vae", "text_encoder"), "sdxl": ("unet", "vae", "text_encoder", "text_encoder_2")}


def config_family(name: str) -> str:
    """``"sdxl"`` for a config set with a second text encoder (``<name>_text_encoder_2.json``), else ``"sd15"``."""
    return "sdxl" if (CONFIG_DIR / f"{name}_text_encoder_2.json").is_file() else "sd15"


def random_sd_key(config_name: str, seed: int) -> str:
    """The cache key of the random-init parts of config ``config_name`` drawn with ``seed``."""
    # Versions from the installed metadata: importing diffusers and transformers for them cost seconds
    # on every resume.
    versions = "|".join(metadata.version(d) for d in ("torch", "diffusers", "transformers"))
    texts = "".join(_config_text(config_name, part) for part in FAMILY_PARTS[config_family(config_name)])
    return "random-sd|" + hashlib.sha256(f"{texts}|{seed}|{versions}".encode()).hexdigest()


def _config_text(name: str, part: str) -> str:
    path = CONFIG_DIR / f"{name}_{part}.json"
    return path.read_text() if path.is_file() else ""
