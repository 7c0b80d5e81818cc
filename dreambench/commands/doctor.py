"""``dreambench doctor``: load every model a run would need and run one tiny forward pass of each."""

from __future__ import annotations

import sys

import click

from ..errors import DreambenchError
from ..models import preflight  # module, not names: read at call time (tests wrap run_checks)
from .options import metric_weights_spec, weights_options


def preflight_lines(profile: str, model: str | None, metric_profile: str, weights: dict, device: str | None,
                    needs=None) -> tuple[list, list[str]]:
    """(rows, one line per problem) of the run's models; validation errors of the options are problems."""
    try:
        rows = preflight.run_checks(profile, model, metric_profile, weights, device, needs or preflight.Needs())
    except DreambenchError as e:
        return [], [str(e)]
    return rows, preflight.problems(rows)


def run_preflight(plan, results_dir, device: str | None) -> None:
    """The doctor's checks for a planned run, in the driver before any job: exit 2 with one line per
    problem. Passing checks are remembered (``$DREAMBENCH_CACHE/preflight.json``) by a key of every digest
    and setting that decides them, so a resumed run loads nothing here."""
    spec = plan.spec
    subject_jobs = plan.by_kind("subject")
    needs = preflight.Needs(sd=bool(plan.by_kind("class_images")) or any(j.spec.get("needs_model") for j in subject_jobs),
                  scoring=bool(plan.by_kind("score")))
    if not (needs.sd or needs.scoring):
        return
    cache = preflight.cache_file()

    try:
        key = preflight.check_key(spec.profile, spec.model, spec.metric_profile, spec.metric_weights, device, needs)
    except DreambenchError as e:
        _refuse([str(e)])
    if preflight.cached_ok(cache, key):
        return
    rows, bad = preflight_lines(spec.profile, spec.model, spec.metric_profile, spec.metric_weights, device, needs)
    if bad:
        _refuse(bad)
    preflight.remember_ok(cache, key, rows)


def _refuse(lines: list[str]) -> None:
    for line in lines:
        click.echo(f"error: {line}", err=True)
    click.echo("error: preflight failed (see `dreambench doctor` with the same options); no job was run", err=True)
    sys.exit(2)


@click.command("doctor")
@click.option("--profile", default="sd15", show_default=True, help="Model profile (sd15 | sd15-random | tiny).")
@click.option("--model", default=None,
              help="SD weights (profile sd15): diffusers folder (fp32, fp16 or fp16 variant files), hub id, or "
                   "single-file .safetensors checkpoint.")
@click.option("--metric-profile", default="paper", show_default=True)
@weights_options
@click.option("--device", type=click.Choice(["auto", "cuda", "cpu", "mps"]), default="auto", show_default=True)
def doctor_cmd(profile: str, model: str | None, metric_profile: str, dino_weights, clip_weights, lpips_weights,
               device: str) -> None:
    """Check that every model a run with these options needs loads and runs on the device.

    One row per model (SD UNet, VAE, text encoder; DINO; CLIP; LPIPS trunk and linear layers): where its
    weights come from (folder, hub cache, file, config), dtype, short weights digest, pretrained or
    random-init, seconds. Exit status 2 with one line per problem."""
    weights = metric_weights_spec(dino_weights, clip_weights, lpips_weights)
    rows, bad = preflight_lines(profile, model, metric_profile, weights, None if device == "auto" else device)
    if rows:
        click.echo(preflight.format_rows(rows))
    for line in bad:
        click.echo(f"error: {line}", err=True)
    if bad:
        sys.exit(2)
    click.echo(f"ok: {len(rows)} models load and run")


COMMANDS = [doctor_cmd]
