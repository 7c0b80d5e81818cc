"""The DreamBooth dataset: fetching and verifying it (:mod:`.fetch`), checking subject folders (:mod:`.check`).

Names resolve on first use (PEP 562): checking images needs PIL and tqdm, which the CLI's help must not load.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_exports

_HOMES = {
    "CheckReport": "check",
    "check_dataset": "check",
    "subject_images": "check",
    "DEFAULT_URL": "fetch",
    "MANIFEST_PATH": "fetch",
    "REQUIRED_FILES": "fetch",
    "DatasetCounts": "fetch",
    "ExpectedDataset": "fetch",
    "fetch_dataset": "fetch",
    "load_hash_manifest": "fetch",
    "official_expected": "fetch",
    "verify_dataset": "fetch",
}

__all__ = [
    "DEFAULT_URL",
    "MANIFEST_PATH",
    "REQUIRED_FILES",
    "CheckReport",
    "DatasetCounts",
    "ExpectedDataset",
    "check_dataset",
    "fetch_dataset",
    "load_hash_manifest",
    "official_expected",
    "subject_images",
    "verify_dataset",
]

if TYPE_CHECKING:
    from .check import CheckReport, check_dataset, subject_images
    from .fetch import (
        DEFAULT_URL,
        MANIFEST_PATH,
        REQUIRED_FILES,
        DatasetCounts,
        ExpectedDataset,
        fetch_dataset,
        load_hash_manifest,
        official_expected,
        verify_dataset,
    )


__getattr__ = lazy_exports(__name__, _HOMES)
