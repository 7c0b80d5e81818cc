"""``dreambench bench``: measured throughput of training, sampling and scoring on one device.

Everything reported is measured in the same process on the same device; nothing is looked up except the
datasheet bf16 peak of known GPUs (dense, no sparsity), which ``--peak-tflops`` overrides. Figures:

- ``matmul``: a large bf16 matrix product, the device's *achieved* peak (TFLOP/s), measured here;
- ``reference``: the plain DreamBooth training loop of ``/work/shared/perf/README.md`` (fp32 master
  weights, bf16 autocast on CUDA, VAE and text encoder run every step, AdamW ``foreach``; 1 instance + 1
  class image per step): steps/s, peak memory, FLOPs per step;
- ``methods``: each method's own training loop (``Method.train``) on a real subject: steps/s (timed inside
  the loop when the method reports it), peak memory, FLOPs per step;
- ``packing``: ``pack`` worker processes on the one device, each loading the model and training the first
  listed method as ``dreambench run --jobs-per-gpu K`` does: aggregate steps/s over the window in which
  they all ran (each loop times itself; ``TrainStats.started`` puts them on one clock) and its ratio to
  the reference loop;
- ``sampling``: the suite's sampler (``methods.sampling.sample_images``, CFG, profile's sampler steps):
  images/s and FLOPs per image;
- ``scoring``: DINO + CLIP image embeddings of the metric profile at 224 px: images/s and FLOPs per image;
- ``score_folder``: ``dreambench score`` end to end on ``score_images`` PNGs at the profile's resolution
  in the protocol layout (decode pool, real-image embeddings, LPIPS, tables): seconds and images/s.

FLOPs are counted with ``torch.utils.flop_counter.FlopCounterMode`` over one step (one image); a rate
times FLOPs gives achieved TFLOP/s and its fraction of the peak. ``estimate`` is the wall time of the full
protocol (30 subjects x 25 prompts x 4 images per method, class images, scoring) on one such device.
Peak memory is measured on CUDA only (``null`` on CPU).
"""

from __future__ import annotations

import contextlib
import json
import platform
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..io import write_text_atomic

#: Dense bf16 tensor-core peaks from NVIDIA datasheets (TFLOP/s, no sparsity), by device-name substring.
DATASHEET_BF16_TFLOPS = {
    "H100 80GB HBM3": 989.4,   # H100 SXM5
    "H100 SXM": 989.4,
    "H100 PCIe": 756.0,
    "H100 NVL": 835.0,
    "H200": 989.4,
    "A100": 312.0,
    "L40S": 362.05,
    "L4": 121.0,
}
BENCH_FILE = "bench.json"


@dataclass
class BenchOptions:
    """What to measure. ``steps``: timed training steps per measurement (after one warm-up step).
    ``batch``: sampling batch (the protocol's ``sample_batch_size`` default). ``pack``: concurrent
    training jobs on the device for the packing figure (default 4 on CUDA, 0 = not measured, on CPU).
    ``score_images``: PNGs scored end to end by ``dreambench score`` (default 3000 on CUDA, 0 on CPU).
    ``overrides``: config overrides per method (``--set``), e.g. ``{"dreambooth": {"compile": "no"}}``."""

    profile: str = "sd15-random"
    device: str | None = None
    steps: int = 20
    methods: list[str] = field(default_factory=lambda: ["dreambooth"])
    batch: int = 25
    score_batch: int = 64
    pack: int | None = None
    score_images: int | None = None
    overrides: dict[str, dict[str, str]] = field(default_factory=dict)
    peak_tflops: float | None = None
    subjects: int = 30
    data_dir: str | None = None
    metric_profile: str = "paper"
    threads: int | None = None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _peak_gb(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 1e9 if device.type == "cuda" else None


def count_flops(fn: Any) -> int:
    """FLOPs of one call of ``fn`` as counted by ``FlopCounterMode`` (matmuls, convolutions, attention)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return int(counter.get_total_flops())


def datasheet_peak(device_name: str) -> float | None:
    for key, value in DATASHEET_BF16_TFLOPS.items():
        if key in device_name:
            return value
    return None


def measure_matmul(device: torch.device, n: int | None = None, reps: int = 10) -> dict:
    """Achieved bf16 matmul TFLOP/s (n x n x n products): the practical peak of this device."""
    n = n or (8192 if device.type == "cuda" else 512)
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    a @ b
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    _sync(device)
    s = time.perf_counter() - t0
    return {"n": n, "reps": reps, "tflops": 2 * n**3 * reps / s / 1e12}


def _fractions(flops: float | None, rate: float, peaks: dict) -> dict:
    """Achieved TFLOP/s for ``rate`` units/s of ``flops`` each, and its fraction of each peak."""
    if not flops or not rate:
        return {"achieved_tflops": None, "fraction_of_datasheet_peak": None, "fraction_of_measured_matmul": None}
    achieved = flops * rate / 1e12
    return {
        "achieved_tflops": achieved,
        "fraction_of_datasheet_peak": achieved / peaks["datasheet_tflops"] if peaks.get("datasheet_tflops") else None,
        "fraction_of_measured_matmul": achieved / peaks["matmul"]["tflops"],
    }


# ---------------------------------------------------------------------------------------------- training
def reference_step_fn(components: Any, device: torch.device, seed: int = 0):
    """One step of the plain reference loop, as a closure; its optimizer lives in the closure."""
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
    _sync(device)
    _reset_peak(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    s = time.perf_counter() - t0
    return {"steps": steps, "s_per_step": s / steps, "train_steps_per_s": steps / s, "peak_mem_GB": _peak_gb(device),
            "flops_per_step": flops, "autocast": "bf16" if device.type == "cuda" else "none (fp32 on CPU)"}


def _noise_images(folder: Path, n: int, size: int, seed: int) -> list[Path]:
    from PIL import Image

    gen = torch.Generator("cpu").manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        arr = torch.randint(0, 256, (size, size, 3), generator=gen, dtype=torch.uint8).numpy()
        p = folder / f"{i:03d}.png"
        Image.fromarray(arr).save(p)
        paths.append(p)
    return paths


def _bench_subject(data_dir: Path, workdir: Path, resolution: int) -> Any:
    """The first protocol subject with its real photos, and two noise class images: a step uses one
    class image, so how many exist does not change its cost."""
    from ..images import list_images
    from ..methods.base import SubjectData
    from ..protocol import load_protocol

    subject = load_protocol("dreambooth").subjects[0]
    class_images = _noise_images(workdir / "class", 2, resolution, seed=1)
    return SubjectData(subject, list_images(data_dir / subject.name), "sks", subject.class_noun,
                       class_images=class_images)


def _train_once(name: str, profile: str, components: Any, device: torch.device, data: Any, n_steps: int,
                workdir: Path, overrides: dict[str, str] | None = None) -> tuple[float, Any]:
    """Seconds of one ``Method.train`` call of ``n_steps`` steps, and the method (for its stats)."""
    from ..methods.base import get_method
    from ..methods.recipes import recipes_for, resolve_config

    cls = get_method(name)
    recipe = profile if profile in recipes_for(cls) else None
    few = {"num_class_images": 2} if _has_field(cls, "num_class_images") else {}
    cfg, _ = resolve_config(cls, recipe, {**few, **(overrides or {})}, steps=n_steps)
    method = cls(cfg, components, device)
    method.progress = False
    _sync(device)
    t0 = time.perf_counter()
    method.train(data, workdir)
    _sync(device)
    seconds = time.perf_counter() - t0
    method.close()
    return seconds, method


def bench_method(name: str, components: Any, pristine: Any, device: torch.device, steps: int, profile: str,
                 data_dir: Path, workdir: Path, overrides: dict[str, str] | None = None) -> dict:
    """A method's own training loop on the first subject of the protocol with real instance images."""
    from ..methods.base import get_method
    from ..methods.recipes import recipes_for

    cls = get_method(name)
    if not cls.trains:
        return {"trains": False}
    data = _bench_subject(data_dir, workdir, components.resolution)

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
    _reset_peak(device)
    seconds, method = train(steps, "timed", overrides)
    stats = method.stats
    if stats is not None and stats.seconds > 0:
        rate, basis = stats.steps_per_s, "timed inside the training loop"
    else:
        rate, basis = steps / seconds, "whole train() call, setup included"
    peak = _peak_gb(device)
    flops = f2 - f1
    pristine.restore(components, str(device))
    return {"trains": True, "recipe": profile if profile in recipes_for(cls) else None, "steps": steps,
            "train_steps_per_s": rate, "rate_basis": basis, "train_seconds_total": seconds, "peak_mem_GB": peak,
            "flops_per_step": flops, "default_steps": _default_steps(cls), "overrides": overrides or {},
            "config": _config_dict(method)}


def _packed_worker(rank: int, job: dict, barrier: Any, queue: Any) -> None:
    """One packed training job (a spawned process): load the model, warm up, wait for the others, train."""
    try:
        from ..models import get_profile, load_sd

        if job["threads"]:
            torch.set_num_threads(job["threads"])
        device = torch.device(job["device"])
        components = load_sd(get_profile(job["profile"])).to(device)
        workdir = Path(job["workdir"]) / f"worker{rank}"
        data = _bench_subject(Path(job["data_dir"]), workdir, components.resolution)
        # Warm-up (compile, allocator, kernels) outside the timed window; the model then trains on from its
        # warmed-up weights, which costs the same per step.
        _train_once(job["method"], job["profile"], components, device, data, 2, workdir / "warmup",
                    job["overrides"])
        _reset_peak(device)
        barrier.wait(timeout=job["timeout"])
        _, method = _train_once(job["method"], job["profile"], components, device, data, job["steps"],
                                workdir / "timed", job["overrides"])
        st = method.stats
        queue.put({"rank": rank, "steps": len(st.instance_loss), "started": st.started, "seconds": st.seconds,
                   "peak_mem_GB": _peak_gb(device)})
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
           "threads": threads or (max(1, torch.get_num_threads() // k) if device.type == "cpu" else None)}
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
    from ..methods.recipes import resolve_config

    cfg, _ = resolve_config(cls, None, {})
    return getattr(cfg, "steps", None)


# ----------------------------------------------------------------------------------- sampling, scoring
def bench_sampling(components: Any, device: torch.device, batch: int, steps: int,
                   overrides: dict[str, str] | None = None) -> dict:
    """The suite's sampler at ``batch`` images; ``overrides`` of sampling options (``--set``) apply."""
    import dataclasses

    from ..methods.base import make_config
    from ..methods.sampling import SamplingConfig, sample_images

    fields = {f.name for f in dataclasses.fields(SamplingConfig)}
    cfg = make_config(SamplingConfig, {"sample_batch_size": batch,
                                       **{k: v for k, v in (overrides or {}).items() if k in fields}})
    # FLOPs of one image, counted eagerly (see bench_method).
    eager = dataclasses.replace(cfg, sample_compile="no")
    flops = count_flops(lambda: sample_images(components, ["a photo of a dog"], [0], eager, steps, device))
    # Warm-up at the timed batch size (a compiled UNet specializes on it), outside the timed run.
    sample_images(components, ["a photo of a dog"] * batch, list(range(batch)), cfg, steps, device)
    _sync(device)
    t0 = time.perf_counter()
    n = 2 * batch
    sample_images(components, ["a photo of a dog"] * n, list(range(n)), cfg, steps, device)
    _sync(device)
    s = time.perf_counter() - t0
    return {"batch": batch, "sample_steps": steps, "images": n, "images_per_s": n / s, "flops_per_image": flops,
            "precision": cfg.sample_precision, "channels_last": cfg.channels_last, "compile": cfg.sample_compile}


def bench_scoring(profile: Any, metric_profile: str, device: torch.device, batch: int) -> dict:
    from ..metrics.embed import ImageEncoder
    from ..metrics.profiles import get_metric_profile
    from ..models.backbones import build_clip, build_dino

    mp = get_metric_profile(metric_profile)
    encoders = [ImageEncoder("dino", build_dino(profile, mp.dino.arch), mp.dino.transform, device),
                ImageEncoder("clip", build_clip(profile, mp.clip.arch, mp.clip.tag or ""), mp.clip.transform, device)]
    gen = torch.Generator("cpu").manual_seed(0)
    out: dict = {"batch": batch, "towers": {}}
    total_s = 0.0
    flops = 0
    for enc in encoders:
        crop = enc.transform.crop
        images = torch.randint(0, 256, (batch, 3, crop, crop), generator=gen, dtype=torch.uint8)
        f = count_flops(lambda enc=enc, images=images: enc.embed(images[:1], 1))  # also the warm-up
        _sync(device)
        n = 2 * batch
        t0 = time.perf_counter()
        enc.embed(torch.cat([images, images]), batch)
        _sync(device)
        s = time.perf_counter() - t0
        out["towers"][enc.kind] = {"arch": enc.backbone.name, "images_per_s": n / s, "flops_per_image": f}
        total_s += s / n
        flops += f
    out["images_per_s"] = 1.0 / total_s  # both towers per image, in sequence
    out["flops_per_image"] = flops
    return out


def _photo_like(size: int, seed: int):
    """A smooth random RGB image (upsampled 16x16 colours plus mild noise): compresses and decodes like a
    generated image, unlike pure noise."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    small = Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).resize((size, size), Image.BICUBIC)
    arr = np.asarray(small, np.int16) + rng.integers(-6, 7, (size, size, 3))
    return Image.fromarray(arr.clip(0, 255).astype(np.uint8))


def write_protocol_folder(images_dir: Path, n: int, size: int, distinct: int = 100) -> int:
    """``n`` PNGs of ``size`` px laid out as the protocol's first ``n`` (subject, prompt, seed) images of a
    method ``bench`` (4 per prompt, subjects in protocol order), with the manifest. ``distinct`` images
    are encoded and the rest are byte copies of them (each file is still decoded and scored). Returns n."""
    import shutil

    from ..manifest import write_part
    from ..protocol import load_protocol

    proto = load_protocol("dreambooth")
    sources: list[Path] = []
    rows: dict[str, list[dict]] = {}
    i = 0
    for subject in proto.subjects:
        for prompt in proto.prompts_for(subject):
            for k in range(4):
                if i >= n:
                    break
                rel = Path("bench") / subject.name / f"{prompt.index:02d}_{k}.png"
                path = images_dir / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                if len(sources) < distinct:
                    _photo_like(size, seed=i).save(path)
                    sources.append(path)
                else:
                    shutil.copyfile(sources[i % distinct], path)
                rows.setdefault(subject.name, []).append(
                    {"method": "bench", "subject": subject.name, "prompt_index": prompt.index,
                     "prompt": prompt.render("sks", subject.class_noun),
                     "prompt_plain": prompt.render_plain(subject.class_noun), "seed": k, "path": str(rel)})
                i += 1
    for subject, part in rows.items():
        write_part(part, images_dir, "bench", subject)
    return i


def bench_score_folder(profile: Any, metric_profile: str, device: torch.device, n: int, batch: int,
                       data_dir: Path, workdir: Path) -> dict:
    """``dreambench score`` end to end on ``n`` protocol-sized PNGs: building the backbones, decoding
    (worker pool), embedding the real photos (empty cache, as on a first run), DINO, CLIP-I, CLIP-T,
    LPIPS diversity and every output table. ``seconds`` is the whole call."""
    from ..metrics.scoring import score_folder

    images = workdir / "images"
    n = write_protocol_folder(images, n, profile.resolution)
    _sync(device)
    t0 = time.perf_counter()
    res = score_folder(images, data_dir, workdir / "scores", metric_profile=metric_profile,
                       model_profile=profile.name, device=str(device), batch_size=batch,
                       cache_dir=workdir / "cache", progress=False)
    _sync(device)
    seconds = time.perf_counter() - t0
    if res.errors:
        raise RuntimeError(f"score bench: {len(res.errors)} image(s) failed, first: {res.errors[0]}")
    return {"images": n, "size": profile.resolution, "batch": batch, "seconds": seconds,
            "images_per_s": n / seconds, "loop_images_per_s": res.meta.get("images_per_s"),
            "loop_timings_s": res.meta.get("loop_timings_s"), "decode_workers": res.meta.get("workers")}


# ------------------------------------------------------------------------------------------ estimate
def estimate_protocol(result: dict, subjects: int, prompts: int = 25, per_prompt: int = 4) -> dict:
    """Wall time of the full protocol per method on one device, from the measured rates."""
    from ..methods.base import get_method
    from ..methods.recipes import resolve_config
    from ..protocol import load_protocol

    proto = load_protocol("dreambooth")
    classes = len({s.class_noun for s in proto.subjects[:subjects]})
    sample_rate = result["sampling"]["images_per_s"]
    images = subjects * prompts * per_prompt
    packing = result.get("packing") or {}
    per_method = {}
    for name, m in result["methods"].items():
        steps = m.get("default_steps") or 0
        packed = packing.get("method") == name and packing["aggregate_steps_per_s"] > m["train_steps_per_s"]
        rate = packing["aggregate_steps_per_s"] if packed else m.get("train_steps_per_s")
        train_s = subjects * steps / rate if m.get("trains") else 0.0
        cfg, _ = resolve_config(get_method(name), None, {})
        class_images = classes * int(getattr(cfg, "num_class_images", 0) or 0) \
            if getattr(cfg, "with_prior_preservation", False) else 0
        class_steps = getattr(cfg, "class_sample_steps", 0) or result["sampling"]["sample_steps"]
        class_s = class_images / sample_rate * class_steps / result["sampling"]["sample_steps"]
        gen_s = images / sample_rate
        per_method[name] = {"train_steps_per_subject": steps, "train_s": train_s,
                            "train_rate": (f"{packing['jobs']} packed jobs" if packed else "one job")
                            if m.get("trains") else None, "class_images": class_images,
                            "class_images_s": class_s, "images": images, "generate_s": gen_s,
                            "total_s": train_s + class_s + gen_s,
                            "total_h": (train_s + class_s + gen_s) / 3600}
    whole = result.get("score_folder")
    score_rate = whole["images_per_s"] if whole else result["scoring"]["images_per_s"]
    score_s = images * max(1, len(per_method)) / score_rate
    total = sum(v["total_s"] for v in per_method.values()) + score_s
    return {"subjects": subjects, "prompts": prompts, "images_per_prompt": per_prompt, "classes": classes,
            "per_method": per_method, "score_s": score_s, "total_s": total, "total_h": total / 3600,
            "note": "one device; training at the packed aggregate rate when packing beat one job, else one job "
                    "at a time; sampling and scoring in sequence at the measured batch sizes and sampler steps"}


# -------------------------------------------------------------------------------------------- driver
def run_bench(opts: BenchOptions, results_dir: Path) -> dict:
    """Measure everything listed in the module docstring; write ``<results>/bench.json``; return it."""
    previous = torch.get_num_threads()
    if opts.threads:
        torch.set_num_threads(int(opts.threads))
    try:
        with tempfile.TemporaryDirectory(prefix="dreambench-data-") as scratch:
            return _run_bench(opts, results_dir, Path(scratch))
    finally:
        torch.set_num_threads(previous)


def synthetic_dataset(folder: Path, photos: int = 5, size: int = 768) -> Path:
    """A stand-in for the dataset where it is absent (a GPU machine the 107 MB dataset cannot travel to):
    ``photos`` photo-like JPEGs per protocol subject. Throughput does not depend on what the photos show."""
    from ..protocol import load_protocol

    for k, subject in enumerate(load_protocol("dreambooth").subjects):
        (folder / subject.name).mkdir(parents=True, exist_ok=True)
        for i in range(photos):
            _photo_like(size, seed=1000 * k + i).save(folder / subject.name / f"{i:02d}.jpg", quality=90)
    return folder


def _run_bench(opts: BenchOptions, results_dir: Path, scratch: Path) -> dict:
    from ..models import get_profile, load_sd
    from ..paths import default_data_dir
    from .worker import PristineCopy

    device = torch.device(opts.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    profile = get_profile(opts.profile)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else (platform.processor() or "cpu")
    peaks = {"datasheet_tflops": opts.peak_tflops or (datasheet_peak(name) if device.type == "cuda" else None),
             "datasheet_source": "--peak-tflops" if opts.peak_tflops else "NVIDIA datasheet, dense bf16",
             "matmul": measure_matmul(device)}
    components = load_sd(profile)
    pristine = PristineCopy(components)
    components.to(device)
    result: dict = {"profile": profile.name, "weights": profile.weights_label, "device": device.type,
                    "device_name": name, "torch": torch.__version__, "dreambench": __version__,
                    "cpu_threads": torch.get_num_threads(),
                    "resolution": profile.resolution, "options": asdict(opts), "peak": peaks}
    ref = bench_reference(components, device, opts.steps)
    ref.update(_fractions(ref["flops_per_step"], ref["train_steps_per_s"], peaks))
    result["reference"] = ref
    data_dir = Path(opts.data_dir) if opts.data_dir else default_data_dir()
    result["data"] = str(data_dir)
    if not data_dir.is_dir():
        data_dir = synthetic_dataset(scratch / "data")
        result["data"] = f"synthetic stand-in: 5 photo-like JPEGs per subject (no dataset at {result['data']})"
    result["methods"] = {}
    with tempfile.TemporaryDirectory(prefix="dreambench-bench-") as tmp:
        for m in opts.methods:
            r = bench_method(m, components, pristine, device, opts.steps, profile.name, data_dir, Path(tmp) / m,
                             opts.overrides.get(m))
            if r.get("trains"):
                r.update(_fractions(r["flops_per_step"], r["train_steps_per_s"], peaks))
            result["methods"][m] = r
    pristine.restore(components, str(device))
    with torch.no_grad():
        samp = bench_sampling(components, device, opts.batch, profile.sample_steps_default,
                              opts.overrides.get(opts.methods[0]) if opts.methods else None)
    samp.update(_fractions(samp["flops_per_image"], samp["images_per_s"], peaks))
    result["sampling"] = samp
    del components, pristine
    with contextlib.suppress(AttributeError):
        torch.cuda.empty_cache()
    pack = opts.pack if opts.pack is not None else (4 if device.type == "cuda" else 0)
    trained = [m for m, r in result["methods"].items() if r.get("trains")]
    result["packing"] = None
    result["cuda_mps"] = device.type == "cuda" and mps_running()
    if pack > 0 and trained:
        with tempfile.TemporaryDirectory(prefix="dreambench-pack-") as tmp:
            pk = bench_packing(trained[0], profile.name, device, pack, opts.steps, data_dir, Path(tmp),
                               threads=opts.threads and max(1, opts.threads // pack),
                               overrides=opts.overrides.get(trained[0]))
        pk["speedup_vs_reference"] = pk["aggregate_steps_per_s"] / ref["train_steps_per_s"]
        pk["speedup_vs_one_job"] = pk["aggregate_steps_per_s"] / result["methods"][trained[0]]["train_steps_per_s"]
        pk.update(_fractions(result["methods"][trained[0]]["flops_per_step"], pk["aggregate_steps_per_s"], peaks))
        result["packing"] = pk
    sc = bench_scoring(profile, opts.metric_profile, device, opts.score_batch)
    sc.update(_fractions(sc["flops_per_image"], sc["images_per_s"], peaks))
    result["scoring"] = sc
    n_score = opts.score_images if opts.score_images is not None else (3000 if device.type == "cuda" else 0)
    result["score_folder"] = None
    if n_score > 0:
        with tempfile.TemporaryDirectory(prefix="dreambench-score-") as tmp:
            result["score_folder"] = bench_score_folder(profile, opts.metric_profile, device, n_score,
                                                        opts.score_batch, data_dir, Path(tmp))
    result["estimate"] = estimate_protocol(result, opts.subjects)
    results_dir = Path(results_dir)
    write_text_atomic(results_dir / BENCH_FILE, json.dumps(result, indent=1, default=str))
    return result


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def format_bench(r: dict) -> str:
    """A table of the measured figures (what ``dreambench bench`` prints)."""
    p = r["peak"]
    lines = [f"bench: profile {r['profile']} ({r['weights']}), {r['device_name']} [{r['device']}], torch {r['torch']}",
             (f"bf16 matmul measured: {p['matmul']['tflops']:.2f} TFLOP/s; datasheet peak: "
             f"{p['datasheet_tflops'] if p['datasheet_tflops'] else 'unknown'}"),
             f"photos: {r.get('data')}",
             f"{'work':<28}{'rate':>16}{'peak mem':>10}{'TFLOP/unit':>12}{'TFLOP/s':>10}{'% sheet':>9}{'% matmul':>9}"]

    def row(label: str, rate: float, unit: str, mem: float | None, flops: float | None, d: dict) -> None:
        lines.append(f"{label:<28}{rate:>11.3f} {unit:<4}{('-' if mem is None else f'{mem:.1f} GB'):>10}"
                     f"{('-' if flops is None else f'{flops / 1e12:.4f}'):>12}{(d.get('achieved_tflops') or 0):>10.3f}"
                     f"{_pct(d.get('fraction_of_datasheet_peak')):>9}{_pct(d.get('fraction_of_measured_matmul')):>9}")

    ref = r["reference"]
    row("train: reference loop", ref["train_steps_per_s"], "st/s", ref["peak_mem_GB"], ref["flops_per_step"], ref)
    for m, v in r["methods"].items():
        if v.get("trains"):
            row(f"train: {m}", v["train_steps_per_s"], "st/s", v["peak_mem_GB"], v["flops_per_step"], v)
    pk = r.get("packing")
    if pk:
        row(f"train: {pk['method']} x{pk['jobs']} packed", pk["aggregate_steps_per_s"], "st/s",
            max(pk["peak_mem_GB_per_job"]) if pk["peak_mem_GB_per_job"] else None, None, pk)
        lines.append(f"  packing: {pk['speedup_vs_reference']:.2f}x the reference loop, "
                     f"{pk['speedup_vs_one_job']:.2f}x one job (peak mem is per job; CUDA MPS "
                     f"{'running' if r.get('cuda_mps') else 'not running'})")
    s = r["sampling"]
    row(f"sample: b{s['batch']} x{s['sample_steps']} steps", s["images_per_s"], "im/s", None, s["flops_per_image"], s)
    sc = r["scoring"]
    row(f"score: dino+clip b{sc['batch']}", sc["images_per_s"], "im/s", None, sc["flops_per_image"], sc)
    sf = r.get("score_folder")
    if sf:
        lines.append(f"score: dreambench score on {sf['images']} PNGs ({sf['size']} px): {sf['seconds']:.1f} s, "
                     f"{sf['images_per_s']:.1f} im/s end to end")
    e = r["estimate"]
    lines.append(f"estimated full protocol ({e['subjects']} subjects x {e['prompts']} prompts x "
                 f"{e['images_per_prompt']} images) on this device: {e['total_h']:.2f} h")
    for m, v in e["per_method"].items():
        lines.append(f"  {m}: {v['total_h']:.2f} h (train {v['train_s'] / 3600:.2f} h"
                     f"{' at ' + v['train_rate'] if v['train_rate'] else ''}, {v['class_images']} class images "
                     f"{v['class_images_s'] / 3600:.2f} h, generate {v['generate_s'] / 3600:.2f} h)")
    lines.append(f"  scoring: {e['score_s'] / 3600:.3f} h")
    if r["weights"] == "random-init":
        lines.append("(random-init weights: throughput figures only, not quality)")
    return "\n".join(lines)
