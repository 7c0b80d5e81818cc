"""Training throughput for ``dreambench bench``: the plain reference loop of ``/work/shared/perf/README.md``, each
method's own loop, and several packed jobs sharing one device (K processes, or K jobs in one process)."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

import torch

from ..engine.local import cpu_threads, usable_cores
from ..engine.runspec import profile_recipe
from ..methods.base import get_method
from ..methods.conditioning import is_sdxl
from ..methods.recipes import recipes_for, resolve_config
from ..models import get_profile, load_sd
from .fixtures import bench_subject
from .measure import count_flops, peak_gb, reset_peak, sync
from .packing import train_packed
from .sdxl_reference import sdxl_lora_reference_step_fn


def reference_step_fn(components: Any, device: torch.device, seed: int = 0):
    """One step of the plain reference loop, as a closure; its optimizer lives in the closure. On SDXL:
    the diffusers SDXL LoRA script's step (:mod:`.sdxl_reference`)."""
    if is_sdxl(components):
        return sdxl_lora_reference_step_fn(components, device, seed)
    c = components
    gen = torch.Generator("cpu").manual_seed(seed)
    res = c.resolution
    pixels = (torch.rand(2, 3, res, res, generator=gen) * 2 - 1).to(device)
    ids = c.tokenizer(["a sks dog", "a dog"], padding="max_length", max_length=c.tokenizer.model_max_length,
                      truncation=True, return_tensors="pt").input_ids.to(device)
    sched = c.noise_scheduler()
    c.vae.requires_grad_(False)
    c.text_encoder.requires_grad_(False)
    c.unet.requires_grad_(True)
    c.unet.train()
    params = [p for p in c.unet.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=5e-6, foreach=True)
    # bf16 autocast on CUDA as in the calibration loop; CPUs without bf16 units emulate it slowly.
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()

    def step() -> None:
        with autocast:
            with torch.no_grad():
                latents = c.vae.encode(pixels).latent_dist.sample() * c.vae.config.scaling_factor
                context = c.text_encoder(ids)[0]
            noise = torch.randn_like(latents)
            t = torch.randint(0, sched.config.num_train_timesteps, (latents.shape[0],), device=device)
            noisy = sched.add_noise(latents, noise, t)
            pred = c.unet(noisy, t, encoder_hidden_states=context).sample
        loss = torch.nn.functional.mse_loss(pred.float(), noise.float())
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def bench_reference(components: Any, device: torch.device, steps: int) -> dict:
    step = reference_step_fn(components, device)
    flops = count_flops(step)  # also the warm-up step (allocator, kernels)
    sync(device)
    reset_peak(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    s = time.perf_counter() - t0
    getattr(step, "close", lambda: None)()
    kind = "diffusers train_dreambooth_lora_sdxl.py step (LoRA rank 4)" if is_sdxl(components) else \
        "full UNet fine-tune, VAE and text encoder every step"
    return {"steps": steps, "s_per_step": s / steps, "train_steps_per_s": steps / s, "peak_mem_GB": peak_gb(device),
            "flops_per_step": flops, "autocast": "bf16" if device.type == "cuda" else "none (fp32 on CPU)",
            "loop": kind}


def _train_once(name: str, profile: str, components: Any, device: torch.device, data: Any, n_steps: int,
                workdir: Path, overrides: dict[str, str] | None = None) -> tuple[float, Any]:
    """Seconds of one ``Method.train`` call of ``n_steps`` steps, and the method (for its stats)."""
    cls = get_method(name)
    recipe = profile_recipe(cls, profile)
    few = {"num_class_images": 2} if _has_field(cls, "num_class_images") else {}
    cfg, _ = resolve_config(cls, recipe, {**few, **(overrides or {})}, steps=n_steps,
                            family=get_profile(profile).family)
    method = cls(cfg, components, device)
    method.progress = False
    sync(device)
    t0 = time.perf_counter()
    method.train(data, workdir)
    sync(device)
    seconds = time.perf_counter() - t0
    method.close()
    return seconds, method


def bench_method(name: str, components: Any, pristine: Any, device: torch.device, steps: int, profile: str,
                 data_dir: Path, workdir: Path, overrides: dict[str, str] | None = None) -> dict:
    """A method's own training loop on the first subject of the protocol with real instance images."""
    cls = get_method(name)
    if not cls.trains:
        return {"trains": False}
    data = bench_subject(data_dir, workdir, components.resolution)

    def train(n_steps: int, tag: str, over: dict[str, str] | None) -> tuple[float, Any]:
        pristine.restore(components, str(device))
        return _train_once(name, profile, components, device, data, n_steps, workdir / tag, over)

    # FLOPs per step = FLOPs(2 steps) - FLOPs(1 step): the setup (caching latents, class images) cancels.
    # Counted eagerly: the FLOPs are the math's, and compiling under the counter's dispatch mode could
    # leave the UNet's frame marked uncompilable for the timed run.
    eager = {**(overrides or {}), "compile": "no"}
    f1 = count_flops(lambda: train(1, "flops1", eager))
    f2 = count_flops(lambda: train(2, "flops2", eager))
    train(2, "warmup", overrides)  # compile, autotuning, allocator: outside the timed run
    reset_peak(device)
    seconds, method = train(steps, "timed", overrides)
    stats = method.stats
    if stats is not None and stats.seconds > 0:
        rate, basis = stats.steps_per_s, "timed inside the training loop"
    else:
        rate, basis = steps / seconds, "whole train() call, setup included"
    peak = peak_gb(device)
    flops = f2 - f1
    pristine.restore(components, str(device))
    return {"trains": True, "recipe": profile_recipe(cls, profile), "steps": steps,
            "train_steps_per_s": rate, "rate_basis": basis, "train_seconds_total": seconds, "peak_mem_GB": peak,
            "flops_per_step": flops, "default_steps": _default_steps(cls), "overrides": overrides or {},
            "config": _config_dict(method)}


def _packed_worker(rank: int, job: dict, barrier: Any, queue: Any) -> None:
    """One packed training job (a spawned process): load the model, warm up, wait for the others, train."""
    try:
        if job["threads"]:
            torch.set_num_threads(job["threads"])
        device = torch.device(job["device"])
        components = load_sd(get_profile(job["profile"])).to(device)
        workdir = Path(job["workdir"]) / f"worker{rank}"
        data = bench_subject(Path(job["data_dir"]), workdir, components.resolution)
        # Warm-up (compile, allocator, kernels) outside the timed window; the model then trains on from its
        # warmed-up weights, which costs the same per step.
        _train_once(job["method"], job["profile"], components, device, data, 2, workdir / "warmup",
                    job["overrides"])
        reset_peak(device)
        barrier.wait(timeout=job["timeout"])
        _, method = _train_once(job["method"], job["profile"], components, device, data, job["steps"],
                                workdir / "timed", job["overrides"])
        st = method.stats
        queue.put({"rank": rank, "steps": len(st.instance_loss), "started": st.started, "seconds": st.seconds,
                   "peak_mem_GB": peak_gb(device)})
    except Exception as e:  # noqa: BLE001 - reported to the parent, which raises it with the rank
        barrier.abort()
        queue.put({"rank": rank, "error": f"{type(e).__name__}: {e}"})


def mps_running() -> bool:
    """Whether NVIDIA's Multi-Process Service seems to run (its pipe directory exists): with it, packed
    workers' kernels run concurrently; without it the GPU time-slices between them."""
    import os

    return Path(os.environ.get("CUDA_MPS_PIPE_DIRECTORY", "/tmp/nvidia-mps")).is_dir()


def bench_packing(name: str, profile: str, device: torch.device, k: int, steps: int, data_dir: Path,
                  workdir: Path, threads: int | None = None, timeout: float = 1800.0,
                  overrides: dict[str, str] | None = None) -> dict:
    """Aggregate training throughput of ``k`` concurrent jobs of method ``name`` on one device.

    ``aggregate_steps_per_s`` = (sum of the jobs' steps) / (first start to last end of their timed loops);
    ``per_job_steps_per_s`` are the jobs' own rates while sharing the device."""
    import multiprocessing as mp
    import queue as queue_mod

    ctx = mp.get_context("spawn")  # CUDA cannot be used in forked children
    barrier, queue = ctx.Barrier(k), ctx.Queue()
    job = {"method": name, "profile": profile, "device": str(device), "steps": steps, "data_dir": str(data_dir),
           "overrides": overrides or {},
           "workdir": str(workdir), "timeout": timeout,
           "threads": cpu_threads(usable_cores(), k, threads) if device.type == "cpu" else None}
    procs = [ctx.Process(target=_packed_worker, args=(r, job, barrier, queue), daemon=True) for r in range(k)]
    for p in procs:
        p.start()
    rows: list[dict] = []
    deadline = time.monotonic() + timeout
    try:
        while len(rows) < k:
            try:
                rows.append(queue.get(timeout=2.0))
            except queue_mod.Empty:
                # A worker killed outright (out of host memory, a segfault) reports nothing: notice it.
                done = {r["rank"] for r in rows}
                dead = [f"worker {r} exited with code {p.exitcode}" for r, p in enumerate(procs)
                        if r not in done and p.exitcode not in (None, 0)]
                if dead or time.monotonic() > deadline:
                    raise RuntimeError("packing bench: " + ("; ".join(dead) or f"no result after {timeout:.0f} s"))
    finally:
        for p in procs:
            p.join(timeout=10 if len(rows) == k else 0.1)
            if p.is_alive():
                p.kill()
    errors = [r for r in rows if "error" in r]
    if errors:
        raise RuntimeError("packing bench: " + "; ".join(f"worker {r['rank']}: {r['error']}" for r in errors))
    rows.sort(key=lambda r: r["rank"])
    start = min(r["started"] for r in rows)
    end = max(r["started"] + r["seconds"] for r in rows)
    mems = [r["peak_mem_GB"] for r in rows if r["peak_mem_GB"] is not None]
    return {"method": name, "jobs": k, "steps_per_job": steps, "window_s": end - start,
            "aggregate_steps_per_s": sum(r["steps"] for r in rows) / (end - start),
            "per_job_steps_per_s": [r["steps"] / r["seconds"] for r in rows],
            "peak_mem_GB_per_job": mems or None}


def bench_packing_inprocess(name: str, components: Any, pristine: Any, device: torch.device, k: int, steps: int,
                            profile: str, data_dir: Path, workdir: Path,
                            overrides: dict[str, str] | None = None) -> dict:
    """Aggregate training throughput of ``k`` DreamBooth jobs in THIS process
    (:func:`dreambench.bench.packing.train_packed`: interleaved steps, one CUDA stream per job).

    ``aggregate_steps_per_s`` = k * steps / (seconds of the interleaved loop), as for process packing.
    Only full-UNet DreamBooth packs this way; another method reports ``{"supported": False}``."""
    if name != "dreambooth":
        return {"method": name, "jobs": k, "supported": False, "why": "in-process packing trains DreamBooth only"}
    cls = get_method(name)
    recipe = profile if profile in recipes_for(cls) else None
    data = bench_subject(data_dir, workdir, components.resolution)

    def run(n_steps: int, tag: str) -> float:
        cfg, _ = resolve_config(cls, recipe, {"num_class_images": 2, **(overrides or {})}, steps=n_steps)
        pristine.restore(components, str(device))
        jobs, seconds = train_packed(components, [data] * k, [cfg] * k, device, workdir / tag)
        del jobs
        return seconds

    run(2, "warmup")  # compile, autotuning, allocator: outside the timed run
    reset_peak(device)
    seconds = run(steps, "timed")
    peak = peak_gb(device)
    with contextlib.suppress(AttributeError):
        torch.cuda.empty_cache()
    return {"method": name, "jobs": k, "supported": True, "steps_per_job": steps, "window_s": seconds,
            "aggregate_steps_per_s": k * steps / seconds, "peak_mem_GB_total": peak,
            "streams": "one CUDA stream per job" if device.type == "cuda" else "none (CPU: jobs run in turn)"}


def _config_dict(method: Any) -> dict:
    """The speed-relevant config a method trained with, as recorded in bench.json."""
    import dataclasses

    keys = ("steps", "batch_size", "with_prior_preservation", "mixed_precision", "compile", "compile_mode", "channels_last",
            "gradient_checkpointing", "cache_latents", "train_text_encoder", "rank")
    cfg = dataclasses.asdict(method.config)
    return {k: cfg[k] for k in keys if k in cfg}


def _has_field(cls: Any, name: str) -> bool:
    import dataclasses

    return any(f.name == name for f in dataclasses.fields(cls.Config))


def _default_steps(cls: Any) -> int | None:
    """Training steps of the method's default recipe (what a protocol run uses)."""
    cfg, _ = resolve_config(cls, None, {})
    return getattr(cfg, "steps", None)
