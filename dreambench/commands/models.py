"""``dreambench profiles``: the model profiles."""

from __future__ import annotations

import time

import click

from ..metrics.profiles import get_metric_profile
from ..models import get_profile, list_profiles
from .options import weights_options


@click.group("profiles")
def profiles_group() -> None:
    """Model profiles (sd15, sd15-random, tiny)."""


@profiles_group.command("list")
def list_cmd() -> None:
    """List the model profiles."""
    for p in list_profiles():
        click.echo(f"{p.name:12s} {p.weights_label:11s} {p.resolution:4d}px  {p.description}")


@profiles_group.command("build")
@click.argument("profile")
@click.option("--model", default=None, help="SD folder, hub id or single-file .safetensors (profile sd15).")
@click.option("--metric-profile", default="paper", show_default=True,
              help="Metric profile whose DINO/CLIP towers are built (the ones scoring uses).")
@weights_options
def build_cmd(profile: str, model: str | None, metric_profile: str, dino_weights, clip_weights,
              lpips_weights) -> None:
    """Build every model of PROFILE on the CPU and report parameter counts and build time.

    The DINO and CLIP towers are exactly those scoring builds for --metric-profile (CLIP ViT-B-32 with
    QuickGELU for ``paper``); `dreambench doctor` also runs each once on a device."""
    from ..models.backbones import build_clip, build_dino  # heavy: torch (this module is imported by --help)
    from ..models.sd import load_sd

    prof, mp = get_profile(profile), get_metric_profile(metric_profile)
    t = time.perf_counter()
    sd = load_sd(prof, model)
    dino = build_dino(prof, mp.dino.arch, weights_file=dino_weights)
    clip = build_clip(prof, mp.clip.arch, mp.clip.tag, weights_file=clip_weights)
    from ..metrics.embed import build_lpips  # heavy: torch

    _, lpips_label = build_lpips(mp.div, prof.pretrained_weights, lpips_weights)
    n = lambda m: sum(p.numel() for p in m.parameters()) / 1e6
    click.echo(f"profile {prof.name} ({prof.weights_label}) built in {time.perf_counter() - t:.1f} s")
    te2 = getattr(sd, "text_encoder_2", None)
    click.echo(f"  unet {n(sd.unet):.2f}M  vae {n(sd.vae):.2f}M  text encoder {n(sd.text_encoder):.2f}M  "
               + (f"text encoder 2 {n(te2):.2f}M  " if te2 is not None else "")
               + f"from {sd.source} (digest {sd.digest})")
    click.echo(f"  dino {dino.name} {n(dino.model):.2f}M ({dino.where}, digest {dino.digest})  "
               f"clip {clip.name} {n(clip.model):.2f}M ({clip.where}, digest {clip.digest}, "
               f"activation {_activation(clip.model)})  lpips trunk {lpips_label}")


def _activation(model) -> str:
    """``QuickGELU`` or ``GELU``: the MLP activation of a CLIP tower (OpenAI's CLIP uses QuickGELU)."""
    names = {type(m).__name__ for m in model.modules()}
    return "QuickGELU" if "QuickGELU" in names else ("GELU" if "GELU" in names else "?")


COMMANDS = [profiles_group]
