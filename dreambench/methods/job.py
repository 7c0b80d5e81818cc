"""Moved: the subject job is the engine's (:mod:`dreambench.engine.subject_job`; a method knows nothing of
jobs). This name stays importable for plug-ins and scripts written against earlier releases."""

from __future__ import annotations

from ..engine.subject_job import *
from ..engine.subject_job import (  # noqa: F401  (names outside __all__ that callers used)
    ARTIFACT_INFO,
    JOB_INFO,
    MAX_IDENTIFIER_TOKENS,
    RUNTIME_KEYS,
    SEED_BLOCK,
)
