"""``dreambench profiles``: the model profiles."""

from __future__ import annotations

import time

import click

from ..models import build_clip, build_dino, get_profile, list_profiles, load_sd


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
@click.option("--model", default=None, help="SD hub id or local diffusers folder (profile sd15).")
@click.option("--dino-weights", type=click.Path(dir_okay=False), default=None, help="timm DINO state dict file.")
@click.option("--clip-weights", type=click.Path(dir_okay=False), default=None, help="open_clip CLIP state dict file.")
def build_cmd(profile: str, model: str | None, dino_weights: str | None, clip_weights: str | None) -> None:
    """Build every model of PROFILE on the CPU and report parameter counts and build time."""
    prof = get_profile(profile)
    t = time.perf_counter()
    sd = load_sd(prof, model)
    dino = build_dino(prof, weights_file=dino_weights)
    clip = build_clip(prof, weights_file=clip_weights)
    n = lambda m: sum(p.numel() for p in m.parameters()) / 1e6
    click.echo(f"profile {prof.name} ({prof.weights_label}) built in {time.perf_counter() - t:.1f} s")
    click.echo(f"  unet {n(sd.unet):.2f}M  vae {n(sd.vae):.2f}M  text encoder {n(sd.text_encoder):.2f}M  "
               f"from {sd.source}")
    click.echo(f"  dino {dino.name} {n(dino.model):.2f}M  clip {clip.name} {n(clip.model):.2f}M")


COMMANDS = [profiles_group]
