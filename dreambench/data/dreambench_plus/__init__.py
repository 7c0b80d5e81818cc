"""The DreamBench++ data (Peng et al., ICLR 2025): its pinned source and fetch (:mod:`.source`), its folder
layout and subjects (:mod:`.layout`), and the full check (:mod:`.check`).

Names resolve on first use (PEP 562): the CLI's help must not load PIL or huggingface_hub.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...lazy import lazy_exports

_HOMES = {
    "CATEGORY_DIRS": "layout",
    "N_PROMPTS": "layout",
    "PROMPT_GROUPS": "layout",
    "PUBLISHED_COUNTS": "layout",
    "DbpSubject": "layout",
    "by_collection_id": "layout",
    "category_of": "layout",
    "category_counts": "layout",
    "collection_id": "layout",
    "is_complete": "layout",
    "prompt_group": "layout",
    "read_layout": "layout",
    "scan_layout": "layout",
    "DbpCheck": "check",
    "check_folder": "check",
    "SOURCE": "source",
    "PinnedZip": "source",
    "fetch": "source",
    "verify_zip": "source",
    "write_subject_folders": "subject_folders",
}

__all__ = [
    "CATEGORY_DIRS",
    "N_PROMPTS",
    "PROMPT_GROUPS",
    "PUBLISHED_COUNTS",
    "SOURCE",
    "DbpCheck",
    "DbpSubject",
    "PinnedZip",
    "by_collection_id",
    "category_counts",
    "category_of",
    "check_folder",
    "collection_id",
    "fetch",
    "is_complete",
    "prompt_group",
    "read_layout",
    "scan_layout",
    "verify_zip",
    "write_subject_folders",
]

if TYPE_CHECKING:
    from .check import DbpCheck, check_folder
    from .layout import (
        CATEGORY_DIRS,
        N_PROMPTS,
        PROMPT_GROUPS,
        PUBLISHED_COUNTS,
        DbpSubject,
        by_collection_id,
        category_counts,
        category_of,
        collection_id,
        is_complete,
        prompt_group,
        read_layout,
        scan_layout,
    )
    from .source import SOURCE, PinnedZip, fetch, verify_zip
    from .subject_folders import write_subject_folders

__getattr__ = lazy_exports(__name__, _HOMES)
