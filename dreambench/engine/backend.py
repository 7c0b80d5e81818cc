"""The interface the driver runs jobs through: a :class:`Backend` (local worker processes,
:class:`dreambench.engine.local.LocalBackend`; Ray actors, :class:`dreambench.engine.ray_backend.RayBackend`)."""

from __future__ import annotations

from typing import Any, Protocol


class Backend(Protocol):
    """Where jobs run. A *slot* is one place a job can run now (a worker process, an actor); job and
    result dicts are those of :class:`dreambench.engine.worker.Worker`."""

    def start(self) -> None:
        """Start the workers (before the first job)."""

    def free_slots(self) -> list[Any]:
        """Slots that can take a job now."""

    def describe(self, slot: Any) -> str:
        """The slot in words (recorded as the job's worker)."""

    def submit(self, slot: Any, job: dict) -> None:
        """Start ``job`` (``Job.to_dict()``) on ``slot``."""

    def wait(self, timeout: float) -> list[dict]:
        """Results of jobs finished within ``timeout`` seconds (possibly none)."""

    def close(self) -> None:
        """Stop the workers after the last job. (A backend may also have ``kill()``: stop them now, when
        the driver was interrupted or failed; the driver calls ``close`` where it has none.)"""
