"""``dreambench bench``: measured throughput of training, sampling and scoring on one device.

Everything reported is measured in the same process on the same device; nothing is looked up except the
datasheet bf16 peak of known GPUs (dense, no sparsity), which ``--peak-tflops`` overrides. Figures:

- ``matmul``: a large bf16 matrix product, the device's *achieved* peak (TFLOP/s), measured here;
- ``reference``: the plain DreamBooth training loop of ``/work/shared/perf/README.md`` (fp32 master
  weights, bf16 autocast on CUDA, VAE and text encoder run every step, AdamW ``foreach``; 1 instance + 1
  class image per step): steps/s, peak memory, FLOPs per step;
- ``methods``: each method's own training loop (``Method.train``) on a real subject: steps/s (timed inside
  the loop when the method reports it), peak memory, FLOPs per step;
- ``sampling``: the suite's sampler (``methods.sampling.sample_images``, CFG, profile's sampler steps):
  images/s and FLOPs per image;
- ``scoring``: DINO + CLIP image embeddings of the metric profile at 224 px: images/s and FLOPs per image.

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
    """What to measure. ``steps``: timed training steps per measurement (after one warm-up step)."""

    profile: str = "sd15-random"
    device: str | None = None
    steps: int = 20
    methods: list[str] = field(default_factory=lambda: ["dreambooth"])
    batch: int = 4
    score_batch: int = 64
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


def bench_method(name: str, components: Any, pristine: Any, device: torch.device, steps: int, profile: str,
                 data_dir: Path, workdir: Path) -> dict:
    """A method's own training loop on the first subject of the protocol with real instance images."""
    from ..images import list_images
    from ..methods.base import SubjectData, get_method
    from ..methods.recipes import recipes_for, resolve_config
    from ..protocol import load_protocol

    cls = get_method(name)
    if not cls.trains:
        return {"trains": False}
    recipe = profile if profile in recipes_for(cls) else None
    subject = load_protocol("dreambooth").subjects[0]
    images = list_images(data_dir / subject.name)
    # Few class images: a step uses one, so how many exist does not change its cost.
    class_images = _noise_images(workdir / "class", 2, components.resolution, seed=1)

    def train(n_steps: int, tag: str) -> tuple[float, Any]:
        pristine.restore(components, str(device))
        cfg, _ = resolve_config(cls, recipe, {"num_class_images": 2} if _has_field(cls, "num_class_images") else {},
                                steps=n_steps)
        method = cls(cfg, components, device)
        data = SubjectData(subject, images, "sks", subject.class_noun, class_images=class_images)
        _sync(device)
        t0 = time.perf_counter()
        method.train(data, workdir / tag)
        _sync(device)
        seconds = time.perf_counter() - t0
        method.close()
        return seconds, method

    # FLOPs per step = FLOPs(2 steps) - FLOPs(1 step): the setup (caching latents, class images) cancels.
    # The first of these runs is also the warm-up.
    f1 = count_flops(lambda: train(1, "flops1"))
    f2 = count_flops(lambda: train(2, "flops2"))
    _reset_peak(device)
    seconds, method = train(steps, "timed")
    stats = getattr(method, "stats", None)
    if stats is not None and getattr(stats, "seconds", 0) > 0:
        rate, basis = stats.steps_per_s, "timed inside the training loop"
    else:
        rate, basis = steps / seconds, "whole train() call, setup included"
    peak = _peak_gb(device)
    flops = f2 - f1
    pristine.restore(components, str(device))
    return {"trains": True, "recipe": recipe, "steps": steps, "train_steps_per_s": rate, "rate_basis": basis,
            "train_seconds_total": seconds, "peak_mem_GB": peak, "flops_per_step": flops,
            "default_steps": _default_steps(cls)}


def _has_field(cls: Any, name: str) -> bool:
    import dataclasses

    return any(f.name == name for f in dataclasses.fields(cls.Config))


def _default_steps(cls: Any) -> int | None:
    """Training steps of the method's default recipe (what a protocol run uses)."""
    from ..methods.recipes import resolve_config

    cfg, _ = resolve_config(cls, None, {})
    return getattr(cfg, "steps", None)


# ----------------------------------------------------------------------------------- sampling, scoring
def bench_sampling(components: Any, device: torch.device, batch: int, steps: int) -> dict:
    from ..methods.sampling import SamplingConfig, sample_images

    cfg = SamplingConfig(sample_batch_size=batch)
    # One image under the FLOP counter, which is also the warm-up.
    flops = count_flops(lambda: sample_images(components, ["a photo of a dog"], [0], cfg, steps, device))
    _sync(device)
    t0 = time.perf_counter()
    n = 2 * batch
    sample_images(components, ["a photo of a dog"] * n, list(range(n)), cfg, steps, device)
    _sync(device)
    s = time.perf_counter() - t0
    return {"batch": batch, "sample_steps": steps, "images": n, "images_per_s": n / s, "flops_per_image": flops,
            "precision": cfg.sample_precision}


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
    per_method = {}
    for name, m in result["methods"].items():
        steps = m.get("default_steps") or 0
        train_s = subjects * steps / m["train_steps_per_s"] if m.get("trains") else 0.0
        cfg, _ = resolve_config(get_method(name), None, {})
        class_images = classes * int(getattr(cfg, "num_class_images", 0) or 0) \
            if getattr(cfg, "with_prior_preservation", False) else 0
        class_steps = getattr(cfg, "class_sample_steps", 0) or result["sampling"]["sample_steps"]
        class_s = class_images / sample_rate * class_steps / result["sampling"]["sample_steps"]
        gen_s = images / sample_rate
        per_method[name] = {"train_steps_per_subject": steps, "train_s": train_s, "class_images": class_images,
                            "class_images_s": class_s, "images": images, "generate_s": gen_s,
                            "total_s": train_s + class_s + gen_s,
                            "total_h": (train_s + class_s + gen_s) / 3600}
    score_s = images * max(1, len(per_method)) / result["scoring"]["images_per_s"]
    total = sum(v["total_s"] for v in per_method.values()) + score_s
    return {"subjects": subjects, "prompts": prompts, "images_per_prompt": per_prompt, "classes": classes,
            "per_method": per_method, "score_s": score_s, "total_s": total, "total_h": total / 3600,
            "note": "one device, jobs in sequence; sampling rate at the measured batch size and sampler steps"}


# -------------------------------------------------------------------------------------------- driver
def run_bench(opts: BenchOptions, results_dir: Path) -> dict:
    """Measure everything listed in the module docstring; write ``<results>/bench.json``; return it."""
    previous = torch.get_num_threads()
    if opts.threads:
        torch.set_num_threads(int(opts.threads))
    try:
        return _run_bench(opts, results_dir)
    finally:
        torch.set_num_threads(previous)


def _run_bench(opts: BenchOptions, results_dir: Path) -> dict:
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
    result["methods"] = {}
    with tempfile.TemporaryDirectory(prefix="dreambench-bench-") as tmp:
        for m in opts.methods:
            r = bench_method(m, components, pristine, device, opts.steps, profile.name, data_dir, Path(tmp) / m)
            if r.get("trains"):
                r.update(_fractions(r["flops_per_step"], r["train_steps_per_s"], peaks))
            result["methods"][m] = r
    pristine.restore(components, str(device))
    with torch.no_grad():
        samp = bench_sampling(components, device, opts.batch, profile.sample_steps_default)
    samp.update(_fractions(samp["flops_per_image"], samp["images_per_s"], peaks))
    result["sampling"] = samp
    del components
    with contextlib.suppress(AttributeError):
        torch.cuda.empty_cache()
    sc = bench_scoring(profile, opts.metric_profile, device, opts.score_batch)
    sc.update(_fractions(sc["flops_per_image"], sc["images_per_s"], peaks))
    result["scoring"] = sc
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
             f"{'work':<28}{'rate':>16}{'peak mem':>10}{'TFLOP/unit':>12}{'TFLOP/s':>10}{'% sheet':>9}{'% matmul':>9}"]

    def row(label: str, rate: float, unit: str, mem: float | None, flops: float | None, d: dict) -> None:
        lines.append(f"{label:<28}{rate:>11.3f} {unit:<4}{('-' if mem is None else f'{mem:.1f} GB'):>10}"
                     f"{(flops or 0) / 1e12:>12.4f}{(d.get('achieved_tflops') or 0):>10.3f}"
                     f"{_pct(d.get('fraction_of_datasheet_peak')):>9}{_pct(d.get('fraction_of_measured_matmul')):>9}")

    ref = r["reference"]
    row("train: reference loop", ref["train_steps_per_s"], "st/s", ref["peak_mem_GB"], ref["flops_per_step"], ref)
    for m, v in r["methods"].items():
        if v.get("trains"):
            row(f"train: {m}", v["train_steps_per_s"], "st/s", v["peak_mem_GB"], v["flops_per_step"], v)
    s = r["sampling"]
    row(f"sample: b{s['batch']} x{s['sample_steps']} steps", s["images_per_s"], "im/s", None, s["flops_per_image"], s)
    sc = r["scoring"]
    row(f"score: dino+clip b{sc['batch']}", sc["images_per_s"], "im/s", None, sc["flops_per_image"], sc)
    e = r["estimate"]
    lines.append(f"estimated full protocol ({e['subjects']} subjects x {e['prompts']} prompts x "
                 f"{e['images_per_prompt']} images) on this device: {e['total_h']:.2f} h")
    for m, v in e["per_method"].items():
        lines.append(f"  {m}: {v['total_h']:.2f} h (train {v['train_s'] / 3600:.2f} h, class images "
                     f"{v['class_images_s'] / 3600:.2f} h, generate {v['generate_s'] / 3600:.2f} h)")
    lines.append(f"  scoring: {e['score_s'] / 3600:.3f} h")
    if r["weights"] == "random-init":
        lines.append("(random-init weights: throughput figures only, not quality)")
    return "\n".join(lines)
