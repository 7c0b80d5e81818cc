"""``run_bench``: every measurement of ``dreambench bench`` in one process on one device, into ``bench.json``."""

from __future__ import annotations

import contextlib
import json
import platform
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from .. import __version__
from ..engine.local import cpu_threads, cpu_threads_choice, log_line, usable_cores
from ..engine.worker import PristineCopy
from ..io import write_text_atomic
from ..layout import BENCH_FILE
from ..models import get_profile, load_sd
from ..paths import default_data_dir
from .estimate import estimate_protocol
from .fixtures import synthetic_dataset
from .measure import datasheet_peak, fractions, measure_matmul
from .sampling_scoring import bench_sampling, bench_score_folder, bench_scoring
from .training import bench_method, bench_packing, bench_packing_inprocess, bench_reference, mps_running


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


def run_bench(opts: BenchOptions, results_dir: Path) -> dict:
    """Measure everything listed in the module docstring; write ``<results>/bench.json``; return it."""
    previous = torch.get_num_threads()
    threads, line = cpu_threads_choice(1, opts.threads)  # the rule of `run`'s CPU workers
    torch.set_num_threads(threads)
    log_line(line)
    try:
        with tempfile.TemporaryDirectory(prefix="dreambench-data-") as scratch:
            return _run_bench(opts, results_dir, Path(scratch))
    finally:
        torch.set_num_threads(previous)


def _packing_ratios(pk: dict, ref: dict, one_job: dict, peaks: dict) -> None:
    """Add a packing figure's ratios to the reference loop and to one job of the method, and its FLOP rate."""
    pk["speedup_vs_reference"] = pk["aggregate_steps_per_s"] / ref["train_steps_per_s"]
    pk["speedup_vs_one_job"] = pk["aggregate_steps_per_s"] / one_job["train_steps_per_s"]
    pk.update(fractions(one_job["flops_per_step"], pk["aggregate_steps_per_s"], peaks))


def _run_bench(opts: BenchOptions, results_dir: Path, scratch: Path) -> dict:
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
    ref.update(fractions(ref["flops_per_step"], ref["train_steps_per_s"], peaks))
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
                r.update(fractions(r["flops_per_step"], r["train_steps_per_s"], peaks))
            result["methods"][m] = r
    pristine.restore(components, str(device))
    with torch.no_grad():
        samp = bench_sampling(components, device, opts.batch, profile.sample_steps_default,
                              opts.overrides.get(opts.methods[0]) if opts.methods else None)
    samp.update(fractions(samp["flops_per_image"], samp["images_per_s"], peaks))
    result["sampling"] = samp
    pack = opts.pack if opts.pack is not None else (4 if device.type == "cuda" else 0)
    trained = [m for m, r in result["methods"].items() if r.get("trains")]
    result["packing_inprocess"] = None
    if pack > 0 and trained:  # while this process holds the model; the process kind loads its own
        with tempfile.TemporaryDirectory(prefix="dreambench-pack-") as tmp:
            pi = bench_packing_inprocess(trained[0], components, pristine, device, pack, opts.steps, profile.name,
                                         data_dir, Path(tmp), overrides=opts.overrides.get(trained[0]))
        if pi["supported"]:
            _packing_ratios(pi, ref, result["methods"][trained[0]], peaks)
        result["packing_inprocess"] = pi
    del components, pristine
    with contextlib.suppress(AttributeError):
        torch.cuda.empty_cache()
    result["packing"] = None
    result["cuda_mps"] = device.type == "cuda" and mps_running()
    if pack > 0 and trained:
        with tempfile.TemporaryDirectory(prefix="dreambench-pack-") as tmp:
            pk = bench_packing(trained[0], profile.name, device, pack, opts.steps, data_dir, Path(tmp),
                               threads=cpu_threads(opts.threads or usable_cores(), pack),
                               overrides=opts.overrides.get(trained[0]))
        _packing_ratios(pk, ref, result["methods"][trained[0]], peaks)
        result["packing"] = pk
    pi = result["packing_inprocess"]
    if result["packing"] and pi and pi["supported"]:
        pi["vs_process_packing"] = pi["aggregate_steps_per_s"] / result["packing"]["aggregate_steps_per_s"]
    sc = bench_scoring(profile, opts.metric_profile, device, opts.score_batch)
    sc.update(fractions(sc["flops_per_image"], sc["images_per_s"], peaks))
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
