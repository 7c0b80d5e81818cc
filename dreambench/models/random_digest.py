"""The digest of seeded random-init SD parts, answered from the digest cache without importing torch.

The same (config files, seed, torch/diffusers/transformers versions) always build the same tensors, so
their digest (:func:`dreambench.models.digest.tensor_digest`) is computed once per machine and then read
from the cache by this key. A resumed run's provenance and preflight key need nothing else.
"""

from __future__ import annotations

import hashlib
from importlib import metadata
from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


def random_sd_key(config_name: str, seed: int) -> str:
    """The cache key of the random-init parts of config ``config_name`` drawn with ``seed``."""
    # Versions from the installed metadata: importing diffusers and transformers for them cost seconds
    # on every resume.
    versions = "|".join(metadata.version(d) for d in ("torch", "diffusers", "transformers"))
    texts = "".join(_config_text(config_name, part) for part in ("unet", "vae", "text_encoder"))
    return "random-sd|" + hashlib.sha256(f"{texts}|{seed}|{versions}".encode()).hexdigest()


def _config_text(name: str, part: str) -> str:
    path = CONFIG_DIR / f"{name}_{part}.json"
    return path.read_text() if path.is_file() else ""


def random_sd_digest(config_name: str, seed: int = 0) -> str:
    """The digest :func:`dreambench.models.sd.build_random_sd` gives these parts: from the cache, or
    (when it is cold) by building them once."""
    from .digest import memo

    def build() -> str:
        from .sd import build_random_sd

        return build_random_sd(config_name, 64, seed).digest

    return memo(random_sd_key(config_name, seed), build)
