"""What a plan is made of: :class:`Job` (one unit of work, its id a content hash) and :class:`Plan`.

A job's id is :func:`content_hash` of its *payload*: everything that affects its output (see the kind
modules under :mod:`dreambench.engine.kinds`, which build the payloads). The same payload gives the same
id, so a job done once is never run again and a changed input makes a new job.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .runspec import RunSpec


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace: equal content gives equal text."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def content_hash(payload: Any) -> str:
    """First 16 hex digits of the sha256 of ``canonical_json(payload)``."""
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()[:16]


@dataclass
class Job:
    """One unit of work. ``spec`` is the JSON-ready form of its kind's typed spec
    (:attr:`dreambench.engine.kinds.JobKind.spec`) and is all a worker needs; ``deps`` are job ids that
    must be done first; ``images`` and ``train_steps`` size the job for estimates."""

    id: str
    kind: str
    label: str
    subject: str
    spec: dict
    deps: list[str] = field(default_factory=list)
    images: int = 0
    train_steps: int = 0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class Plan:
    """The jobs of a run in dependency order, plus the spec it came from."""

    spec: RunSpec
    jobs: list[Job]

    def by_kind(self, kind: str) -> list[Job]:
        return [j for j in self.jobs if j.kind == kind]

    @property
    def images(self) -> int:
        return sum(j.images for j in self.jobs)

    def labels(self) -> list[str]:
        return list(dict.fromkeys(j.label for j in self.jobs if j.kind == "subject"))
