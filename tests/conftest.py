"""Shared test settings: offline hub, a per-session cache folder, the dataset fixture.

Builders shared by several test modules live in builders.py (``tests/`` is on ``sys.path`` through
``pythonpath`` in pyproject.toml).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def dataset_dir() -> Path:
    """The official DreamBooth dataset ($DREAMBENCH_DATA or ../shared/dreambooth-dataset); skips if absent."""
    from dreambench.paths import default_data_dir

    d = default_data_dir()
    if not (d / "prompts_and_classes.txt").is_file():
        pytest.skip(f"DreamBooth dataset not found at {d} (set DREAMBENCH_DATA)")
    return d
