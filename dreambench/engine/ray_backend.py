"""Ray backend: the same jobs as calls on Ray actors, one actor per worker slot.

Each actor holds a :class:`dreambench.engine.worker.Worker` (the base model loaded once) and asks Ray for
``1 / jobs_per_gpu`` GPUs (0 on CPU). Results land in the same results folder, which every node must see
at the same path (a shared file system); the state database is written only by the driver, from the
result dicts the actors return. ``address`` connects to an existing cluster (``ray start --head``);
without it a local Ray instance is started.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import asdict

from ..errors import DreambenchError
from .local import cpu_threads_choice, log_line
from .worker import Worker, WorkerContext

#: Environment variables passed to actors on a remote cluster (local actors inherit the driver's).
FORWARDED_ENV = ("HF_HUB_OFFLINE", "HF_HOME", "DREAMBENCH_DATA", "TOKENIZERS_PARALLELISM")


class _ActorImpl:
    def __init__(self, ctx: dict, name: str):
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        self.worker = Worker(WorkerContext(**ctx), name)

    def run(self, job: dict) -> dict:
        return self.worker.run(job)


class RayBackend:
    """Worker slots as Ray actors. Same interface as :class:`dreambench.engine.local.LocalBackend`."""

    name = "ray"

    def __init__(self, ctx: WorkerContext, workers: int | None = None, jobs_per_gpu: int = 1,
                 address: str | None = None, num_cpus: int | None = None, threads: int | None = None):
        try:
            import ray
        except ImportError:
            raise DreambenchError("--backend ray needs Ray: pip install 'dreambench[ray]'") from None
        self.ray = ray
        self.ctx = ctx
        self.jobs_per_gpu = max(1, int(jobs_per_gpu))
        self.address = address
        self.num_cpus = num_cpus
        self.n_workers = workers
        self.threads = threads
        self._started_ray = False
        self._actors: dict[str, object] = {}
        self._busy: dict[str, tuple[object, dict]] = {}
        self.slots: list[str] = []

    def start(self) -> None:
        ray = self.ray
        if not ray.is_initialized():
            env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
            kwargs: dict = {"include_dashboard": False, "log_to_driver": True}
            if self.address:
                kwargs.update(address=self.address, runtime_env={"env_vars": env})
            else:
                kwargs.update(num_cpus=self.num_cpus)
            ray.init(**kwargs)
            self._started_ray = True
        gpus = self.ctx.device.startswith("cuda")
        if self.n_workers is None:
            total_gpus = int(ray.cluster_resources().get("GPU", 0))
            self.n_workers = max(1, total_gpus * self.jobs_per_gpu) if gpus else 1

        total_cpus = int(ray.cluster_resources().get("CPU", 1))
        cpus = max(1, total_cpus // self.n_workers)
        # The same thread count as a local CPU worker on this machine, so both backends compute alike.
        threads = None
        if not gpus:
            threads, line = cpu_threads_choice(self.n_workers, self.threads, total_cpus)
            log_line(line)
        actor_cls = ray.remote(_ActorImpl).options(num_gpus=(1.0 / self.jobs_per_gpu) if gpus else 0,
                                                   num_cpus=0 if gpus else cpus)
        self._actor_cls = actor_cls
        self._ctx_dict = {**asdict(self.ctx), "threads": threads}
        for k in range(self.n_workers):
            name = f"ray-{k}"
            self.slots.append(name)
            self._actors[name] = actor_cls.remote(self._ctx_dict, name)

    def free_slots(self) -> list[str]:
        return [s for s in self.slots if s not in self._busy]

    def describe(self, slot: str) -> str:
        return f"ray:{self.ctx.device}"

    def submit(self, slot: str, job: dict) -> None:
        self._busy[slot] = (self._actors[slot].run.remote(job), job)

    def wait(self, timeout: float = 1.0) -> list[dict]:
        ray = self.ray
        if not self._busy:
            return []
        refs = {ref: slot for slot, (ref, _) in self._busy.items()}
        ready, _ = ray.wait(list(refs), num_returns=1, timeout=timeout)
        out = []
        for ref in ready:
            slot = refs[ref]
            _, job = self._busy.pop(slot)
            try:
                out.append(ray.get(ref))
            except Exception as e:  # noqa: BLE001  the actor died (OOM, node lost): fail the job, replace the actor
                out.append({"id": job["id"], "ok": False, "worker": slot, "device": self.describe(slot),
                            "error": f"Ray actor failed: {type(e).__name__}: {e}"[:2000], "seconds": None,
                            "artifacts": {}, "images": 0})
                self._actors[slot] = self._actor_cls.remote(self._ctx_dict, slot)
        return out

    def close(self) -> None:
        for actor in self._actors.values():
            with contextlib.suppress(Exception):  # already dead: nothing to kill
                self.ray.kill(actor)
        if self._started_ray:
            self.ray.shutdown()
