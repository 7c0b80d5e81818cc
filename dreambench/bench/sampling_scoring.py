"""Sampling and scoring throughput for ``dreambench bench``: the suite's sampler, the metric backbones'
image embeddings, and ``dreambench score`` end to end on a protocol-sized folder of PNGs."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from ..layout import ResultsLayout
from ..methods.base import make_config
from ..methods.sampling import SamplingConfig, sample_images
from ..metrics.embed import ImageEncoder
from ..metrics.profiles import get_metric_profile
from ..metrics.scoring import score_folder
from ..models.backbones import build_clip, build_dino
from .fixtures import write_protocol_folder
from .measure import count_flops, sync


def bench_sampling(components: Any, device: torch.device, batch: int, steps: int,
                   overrides: dict[str, str] | None = None) -> dict:
    """The suite's sampler at ``batch`` images; ``overrides`` of sampling options (``--set``) apply."""
    import dataclasses

    fields = {f.name for f in dataclasses.fields(SamplingConfig)}
    cfg = make_config(SamplingConfig, {"sample_batch_size": batch,
                                       **{k: v for k, v in (overrides or {}).items() if k in fields}})
    # FLOPs of one image, counted eagerly (see bench_method).
    eager = dataclasses.replace(cfg, sample_compile="no")
    flops = count_flops(lambda: sample_images(components, ["a photo of a dog"], [0], eager, steps, device))
    # Warm-up at the timed batch size (a compiled UNet specializes on it), outside the timed run.
    sample_images(components, ["a photo of a dog"] * batch, list(range(batch)), cfg, steps, device)
    sync(device)
    t0 = time.perf_counter()
    n = 2 * batch
    sample_images(components, ["a photo of a dog"] * n, list(range(n)), cfg, steps, device)
    sync(device)
    s = time.perf_counter() - t0
    return {"batch": batch, "sample_steps": steps, "images": n, "images_per_s": n / s, "flops_per_image": flops,
            "precision": cfg.sample_precision, "channels_last": cfg.channels_last, "compile": cfg.sample_compile}


def bench_scoring(profile: Any, metric_profile: str, device: torch.device, batch: int) -> dict:
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
        sync(device)
        n = 2 * batch
        t0 = time.perf_counter()
        enc.embed(torch.cat([images, images]), batch)
        sync(device)
        s = time.perf_counter() - t0
        out["towers"][enc.kind] = {"arch": enc.backbone.name, "images_per_s": n / s, "flops_per_image": f}
        total_s += s / n
        flops += f
    out["images_per_s"] = 1.0 / total_s  # both towers per image, in sequence
    out["flops_per_image"] = flops
    return out


def bench_score_folder(profile: Any, metric_profile: str, device: torch.device, n: int, batch: int,
                       data_dir: Path, workdir: Path) -> dict:
    """``dreambench score`` end to end on ``n`` protocol-sized PNGs: building the backbones, decoding
    (worker pool), embedding the real photos (empty cache, as on a first run), DINO, CLIP-I, CLIP-T,
    LPIPS diversity and every output table. ``seconds`` is the whole call."""
    layout = ResultsLayout(workdir)
    images = layout.images
    n = write_protocol_folder(images, n, profile.resolution)
    sync(device)
    t0 = time.perf_counter()
    res = score_folder(images, data_dir, layout.scores, metric_profile=metric_profile,
                       model_profile=profile.name, device=str(device), batch_size=batch,
                       cache_dir=layout.cache, progress=False)
    sync(device)
    seconds = time.perf_counter() - t0
    if res.errors:
        raise RuntimeError(f"score bench: {len(res.errors)} image(s) failed, first: {res.errors[0]}")
    return {"images": n, "size": profile.resolution, "batch": batch, "seconds": seconds,
            "images_per_s": n / seconds, "loop_images_per_s": res.meta.get("images_per_s"),
            "loop_timings_s": res.meta.get("loop_timings_s"), "decode_workers": res.meta.get("workers")}
