"""Fixtures of the human-study tests (builders live in study_fixtures.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from study_fixtures import StudyEnv, make_env


@pytest.fixture
def study_env(tmp_path: Path) -> StudyEnv:
    return make_env(tmp_path)
