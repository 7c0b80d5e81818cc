"""The DreamBooth dataset: fetching and verifying it (:mod:`.fetch`), checking subject folders (:mod:`.check`)."""

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
