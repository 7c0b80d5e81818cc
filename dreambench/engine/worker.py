"""What one worker does: hold the base model once, run jobs on it, restore pristine weights between jobs.

A worker (a local process or a Ray actor) builds the SD parts of the model profile the first time a job
needs them and keeps a pristine CPU copy. Methods may change the parts in place (fine-tuned weights,
added tokens, injected adapters); before the next job the worker restores them from that in-memory copy,
by copying tensors in place when the structure is unchanged (no reallocation, no disk) and by cloning
the pristine module otherwise. Workers never touch the state database: they return a result dict.
"""

from __future__ import annotations

import copy
import os
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DreambenchError, EnvironmentFailure
from ..io import confined, write_roots
from ..layout import ResultsLayout
from .kinds import get_kind

_PARTS = ("unet", "vae", "text_encoder")


@dataclass
class WorkerContext:
    """Settings shared by every worker of a run (JSON-ready, crosses process boundaries)."""

    results_dir: str
    data_dir: str
    device: str = "cpu"
    threads: int | None = None
    progress: bool = False


class PristineCopy:
    """A CPU copy of SD parts taken before any job touched them, and the way back to it."""

    def __init__(self, components: Any):
        self.modules = {n: copy.deepcopy(getattr(components, n)).to("cpu") for n in _PARTS}
        self.requires_grad = {n: {k: p.requires_grad for k, p in m.named_parameters()}
                              for n, m in self.modules.items()}
        self.training = {n: getattr(components, n).training for n in _PARTS}
        self.signatures = {n: _signature(m) for n, m in self.modules.items()}
        self.tokenizer = copy.deepcopy(components.tokenizer)
        self.tokenizer_len = len(components.tokenizer)
        self.scheduler_config = copy.deepcopy(components.scheduler_config)

    def restore(self, components: Any, device: str) -> None:
        """Put ``components`` back to the pristine weights, flags and tokenizer, on ``device``."""
        import torch

        for name, pristine in self.modules.items():
            current = getattr(components, name)
            cur_sd = current.state_dict()
            ref_sd = pristine.state_dict()
            same = (type(current) is type(pristine) and _signature(current) == self.signatures[name]
                    and cur_sd.keys() == ref_sd.keys()
                    and all(cur_sd[k].shape == v.shape and cur_sd[k].dtype == v.dtype for k, v in ref_sd.items()))
            if same:
                with torch.no_grad():
                    for k, v in ref_sd.items():
                        cur_sd[k].copy_(v)
                module = current
            else:  # adapters injected or embeddings resized: start again from a clone
                module = copy.deepcopy(pristine).to(device)
                setattr(components, name, module)
            for k, p in module.named_parameters():
                p.requires_grad_(self.requires_grad[name].get(k, True))
                p.grad = None
            module.train(self.training[name])
        if len(components.tokenizer) != self.tokenizer_len:
            components.tokenizer = copy.deepcopy(self.tokenizer)
        components.scheduler_config = copy.deepcopy(self.scheduler_config)


def _signature(module: Any) -> tuple:
    """Submodule types and (diffusers) attention-processor types: a change in either (adapters, swapped
    processors) means restoring weights in place would not give the pristine module back."""
    procs = getattr(module, "attn_processors", None)
    proc_types = tuple(sorted((k, type(v).__name__) for k, v in procs.items())) if isinstance(procs, dict) else ()
    return tuple(type(m).__name__ for m in module.modules()), proc_types


class Worker:
    """Runs jobs (dicts made from :class:`dreambench.engine.jobs.Job`) on their kind's ``run``
    (:mod:`dreambench.engine.kinds`) and returns result dicts."""

    def __init__(self, ctx: WorkerContext, name: str = "worker-0"):
        self.ctx = ctx
        self.name = name
        self.results_dir = Path(ctx.results_dir)
        self.data_dir = Path(ctx.data_dir)
        self._components: Any = None
        self._pristine: PristineCopy | None = None
        self._model_key: tuple | None = None
        self._dirty = False
        self._towers: dict | None = None  # metric backbones shared by this worker's score jobs
        if ctx.threads:
            import torch

            torch.set_num_threads(int(ctx.threads))

    @property
    def device_name(self) -> str:
        """The device in words, e.g. ``cuda:0 (NVIDIA H100 80GB HBM3)`` or ``cpu``."""
        if self.ctx.device.startswith("cuda"):
            import torch

            visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
            return f"cuda[{visible or 0}] ({torch.cuda.get_device_name(0)})"
        return self.ctx.device

    def components(self, profile: str, model: str | None, vae: str | None = None) -> Any:
        """The SD parts of ``profile`` (built once per worker), pristine, on the worker's device."""
        from ..models import get_profile, load_sd  # heavy: torch (only when a job needs the SD model)

        key = (profile, model, vae)
        if self._model_key != key:
            self._components = self._pristine = None
            comps = load_sd(get_profile(profile), model, vae=vae)
            self._pristine = PristineCopy(comps)
            self._components = comps.to(self.ctx.device)
            self._model_key = key
            self._dirty = False
        elif self._dirty:
            assert self._pristine is not None
            self._pristine.restore(self._components, self.ctx.device)
            self._dirty = False
        return self._components

    def run(self, job: dict) -> dict:
        """Run one job; never raises. Returns ``{id, ok, seconds, error, deterministic, artifacts, images,
        worker, device}``; ``deterministic`` is true when the job raised a :class:`DreambenchError`
        (bad data, config or weights), which the driver does not retry."""
        t0 = time.time()
        log_path = ResultsLayout(self.results_dir).job_log(job["id"])
        result = {"id": job["id"], "ok": False, "error": None, "artifacts": {}, "images": 0,
                  "worker": self.name, "device": self.device_name, "log": str(log_path)}
        try:
            confined(self.results_dir, log_path.parent).mkdir(parents=True, exist_ok=True)
            logf = open(confined(self.results_dir, log_path), "a", buffering=1)  # noqa: SIM115
        except (OSError, DreambenchError) as e:
            result.update(error=f"{type(e).__name__}: {e}", seconds=time.time() - t0)
            return result
        try:
            # Every write of the job must resolve inside the results folder (see dreambench.io).
            with logf, write_roots(self.results_dir):

                def log(msg: str) -> None:
                    logf.write(f"[{time.strftime('%Y-%m-%d %H:%M:%S')}] {msg}\n")

                log(f"job {job['id']} kind={job['kind']} label={job['label']} subject={job['subject']} "
                    f"worker={self.name} device={self.device_name}")
                try:
                    kind = get_kind(job["kind"])
                    if kind is None:
                        raise DreambenchError(f"job kind {job['kind']!r} is unknown to this release")
                    artifacts, images = kind.run(self, job, log)
                    result.update(ok=True, artifacts=artifacts, images=images)
                    log(f"done in {time.time() - t0:.1f} s ({images} images)")
                except BaseException as e:  # a job's failure is data for the driver, not a worker crash
                    if isinstance(e, (KeyboardInterrupt, SystemExit)):  # the worker is stopped, not the job failed
                        raise
                    result["error"] = f"{type(e).__name__}: {e}".strip()
                    if isinstance(e, OSError) and e.errno is not None:  # the driver stops on a full disk
                        result["os_error"] = [e.errno, e.strerror or os.strerror(e.errno), e.filename]
                    # Bad data, bad config, missing weights: the same job fails the same way again (a full disk
                    # or another machine failure may not).
                    result["deterministic"] = isinstance(e, DreambenchError) and not isinstance(e, EnvironmentFailure)
                    log("FAILED\n" + traceback.format_exc())
        except OSError as e:  # the job's log could not be written or closed (a full disk): a failed job for the
            # driver (a job's own failure stands), never a traceback from the worker process
            result["ok"] = False
            if result["error"] is None:
                result.update(error=f"{type(e).__name__}: {e}".strip(), deterministic=False)
                if e.errno is not None:
                    result["os_error"] = [e.errno, e.strerror or os.strerror(e.errno), e.filename or str(log_path)]
        result["seconds"] = time.time() - t0
        return result

    # -- what job kinds use (dreambench.engine.kinds) -------------------------------------------------------
    def mark_dirty(self) -> None:
        """A job used the SD parts: restore them before the next job."""
        self._dirty = True

    @property
    def towers(self) -> dict:
        """Metric backbones shared by this worker's score jobs (built on first use)."""
        if self._towers is None:
            self._towers = {}
        return self._towers

    def remade_record(self, remade: list, log: Any) -> dict:
        """``{"remade": ["<path in the results folder>: <why>", ...]}`` for the outputs a job found broken,
        missing or made from other inputs and made again (the driver prints them); empty when none."""
        lines = []
        for path, why in remade:
            try:
                where = Path(path).relative_to(self.results_dir).as_posix()
            except ValueError:
                where = str(path)
            lines.append(f"{where}: {why}")
            log(f"remade {where}: {why}")
        return {"remade": lines} if lines else {}
