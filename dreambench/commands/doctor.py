"""``dreambench doctor``: load every model a run would need and run one tiny forward pass of each."""

from __future__ import annotations

import sys

import click

from .. import preflight  # module, not names: read at call time (tests wrap run_checks)
from ..engine.devices import check_device
from .options import metric_weights_spec, weights_options


def preflight_lines(profile: str, model: str | None, metric_profile: str, weights: dict, device: str | None,
                    needs=None, vae: str | None = None) -> tuple[list, list[str]]:
    """(rows, one line per problem) of the run's models (:func:`dreambench.preflight.problem_lines`)."""
    return preflight.problem_lines(profile, model, metric_profile, weights, device, needs, vae)


def run_preflight(plan, results_dir, device: str | None) -> None:
    """:func:`dreambench.preflight.check_plan` (``results_dir`` is not used: the passed checks are
    cached per user); a failure raises :class:`~dreambench.preflight.PreflightError`, which the CLI
    prints one problem a line, exit 2."""
    preflight.check_plan(plan, device)


@click.command("doctor")
@click.option("--profile", default="sd15", show_default=True,
              help="Model profile (sd15 | sd15-random | tiny | sdxl | sdxl-random | tiny-sdxl).")
@click.option("--model", default=None,
              help="SD weights (profiles sd15, sdxl): diffusers folder (fp32, fp16 or fp16 variant files), hub id, or "
                   "single-file .safetensors checkpoint.")
@click.option("--vae", default=None,
              help="A VAE replacing the model's (e.g. madebyollin/sdxl-vae-fp16-fix): AutoencoderKL folder or hub id.")
@click.option("--metric-profile", default="paper", show_default=True)
@weights_options
@click.option("--device", type=click.Choice(["auto", "cuda", "cpu", "mps"]), default="auto", show_default=True)
def doctor_cmd(profile: str, model: str | None, vae: str | None, metric_profile: str, dino_weights, clip_weights,
               lpips_weights, device: str) -> None:
    """Check that every model a run with these options needs loads and runs on the device.

    One row per model (SD UNet, VAE, text encoder; DINO; CLIP; LPIPS trunk and linear layers): where its
    weights come from (folder, hub cache, file, config), dtype, short weights digest, pretrained or
    random-init, seconds. Exit status 2 with one line per problem."""
    check_device(device)  # one line, not a traceback from the first tensor moved there
    weights = metric_weights_spec(dino_weights, clip_weights, lpips_weights)
    rows, bad = preflight_lines(profile, model, metric_profile, weights, None if device == "auto" else device,
                                vae=vae)
    if rows:
        click.echo(preflight.format_rows(rows))
    for line in bad:
        click.echo(f"error: {line}", err=True)
    if bad:
        sys.exit(2)
    click.echo(f"ok: {len(rows)} models load and run")


COMMANDS = [doctor_cmd]
