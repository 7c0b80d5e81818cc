"""The digest of seeded random-init SD parts, answered from the digest cache without importing torch.

The same (config files, seed, torch/diffusers/transformers versions) always build the same tensors, so
their digest (:func:`dreambench.models.digest.tensor_digest`) is computed once per machine and then read
from the cache by this key (:func:`dreambench.models.sd_configs.random_sd_key`). A resumed run's
provenance and preflight key need nothing else.
"""

from __future__ import annotations

from .digest import memo
from .sd_configs import CONFIG_DIR, random_sd_key  # noqa: F401  (CONFIG_DIR: re-exported, its old home)


def random_sd_digest(config_name: str, seed: int = 0) -> str:
    """The digest :func:`dreambench.models.sd.build_random_sd` gives these parts: from the cache, or
    (when it is cold) by building them once."""

    def build() -> str:
        from .sd import build_random_sd  # here: sd imports torch, needed only when the cache is cold

        return build_random_sd(config_name, 64, seed).digest

    return memo(random_sd_key(config_name, seed), build)
