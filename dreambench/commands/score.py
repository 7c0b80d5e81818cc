"""``dreambench score``: DINO, CLIP-I, CLIP-T, PRES, DIV and the Real Images bound for an images folder."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import ModelLoadError
from ..io import write_roots
from ..layout import AGGREGATES, ERRORS, SCORE_META, ResultsLayout
from ..metrics.keys import default_cache_dir
from ..metrics.profiles import list_metric_profiles
from ..metrics.registry import metric_names
from ..models import list_profiles
from ..paths import default_data_dir
from .options import judge_options, judge_request, resolve_results, weights_options
from .options import results_option as _results_option


def _list_profiles(ctx: click.Context, _param, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return

    for p in list_metric_profiles():
        click.echo(f"{p.name:14s} dino {p.dino.arch}  clip {p.clip.arch}/{p.clip.tag}  {p.description}")
    ctx.exit(0)


def _metric_profile(new: str | None, old: str | None) -> str:
    """``--metric-profile``, or the deprecated ``--profile`` with a warning (both given: they must agree)."""
    if old is not None:
        click.echo("warning: `dreambench score --profile` is deprecated; use --metric-profile", err=True)
        if new is not None and new != old:
            raise click.BadParameter(f"--profile {old} and --metric-profile {new} disagree; give only "
                                     "--metric-profile", param_hint="--metric-profile")
    return new or old or "paper"


@click.command("score")
@click.option("--images", "images", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Images folder with manifest.csv (or <method>/<subject>/manifest.csv parts). "
                   "Default: <results>/images.")
@click.option("--subjects", "subjects", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Dataset folder with one folder of real images per subject (default: $DREAMBENCH_DATA).")
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output folder (default: <results>/scores).")
@_results_option
@click.option("--metric-profile", "metric_profile", default=None,
              help="Metric profile (see --list-profiles): paper (default), x100, clipscore, paper-vitl14, "
                   "paper-div-native, dreambench-plus, torchmetrics, torchmetrics-vitl14, kosmos-g, imagenhub.")
@click.option("--profile", "old_profile", default=None, hidden=True,
              help="Deprecated spelling of --metric-profile.")
@click.option("--model-profile", "model_profile", default="sd15", show_default=True,
              type=click.Choice([p.name for p in list_profiles()]),
              help="How the backbones are built: sd15 (pretrained), sd15-random, tiny (random-init).")
@weights_options
@click.option("--device", default=None, help="Torch device (default: cuda when available, else cpu).")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True,
              help="Images per backbone forward pass.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Image decoding threads (default: one per core, at most 16).")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Real-image embedding cache (default: $DREAMBENCH_CACHE or <out>/../cache).")
@click.option("--identifier", default="sks", show_default=True,
              help="Identifier removed from prompts for CLIP-T when the manifest has no prompt_plain and the "
                   "method's method.json names none.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@click.option("--list-profiles", is_flag=True, is_eager=True, expose_value=False, callback=_list_profiles,
              help="List the metric profiles and exit.")
@judge_options
@click.option("--judge-protocol", default=None,
              help="Protocol whose subject kinds pick the judge's rubric (default: the one the folder was run "
                   "with; give dreambench-plus for an imported samples folder).")
@click.pass_context
def score_cmd(ctx: click.Context, images: Path | None, subjects: Path | None, out: Path | None, results: Path | None,
              metric_profile: str | None, old_profile: str | None, model_profile: str, dino_weights: Path | None, clip_weights: Path | None,
              lpips_weights: Path | None,
              device: str | None, batch_size: int, workers: int | None, cache_dir: Path | None, identifier: str,
              quiet: bool, judge_protocol: str | None, **judge) -> None:
    """Score every image of an images folder against the real subject photos.

    Writes per_image.csv, div.csv, real.csv, per_subject.csv, aggregates.csv (mean over subjects with 95%
    intervals: none below 3 subjects, t for 3-9, bootstrap-t from 10), per_category.csv, paired.csv, errors.csv and score_meta.json into --out. Re-running
    continues: rows already scored with the same profile and weights are kept. Bad rows (missing or
    unreadable file, empty prompt, missing subject folder) are listed in errors.csv and skipped; the
    exit status is then 1. A (method, subject) left with no scored image (e.g. an unusable real photo)
    is named with its cause and listed in missing.csv, which every table names. Definitions:
    docs/metrics.md.

    With --judge, the VLM judge then scores the results folder's images (CP, PF) as `dreambench judge`
    does, against the photos of --subjects."""
    metric_profile = _metric_profile(metric_profile, old_profile)
    judging = _judge_options(ctx, results, images, subjects, judge_protocol, quiet, judge)
    if images is None or out is None:
        root = resolve_results(ctx, results)
        images = images or ResultsLayout(root).images
        out = out or ResultsLayout(root).scores
    meta = _already_current(images, subjects or default_data_dir(), out, cache_dir, metric_profile=metric_profile,
                            model_profile=model_profile, identifier=identifier, dino_weights=dino_weights,
                            clip_weights=clip_weights, lpips_weights=lpips_weights)
    if meta is not None:
        if not quiet:
            click.echo("nothing to score: every score in --out is current (checked from content keys; no model "
                       "built)", err=True)
        _print_summary(_read_csv(out / AGGREGATES), metric_profile, model_profile, meta["stats"]["scored"], 0,
                       meta["stats"]["scored"], None, out)
        _judge(ctx, results, judging, quiet)
        return
    from ..metrics.scoring import score_folder  # heavy: torch, pandas (this module is imported by --help)

    try:
        with write_roots(out, cache_dir or default_cache_dir(out)):  # writes stay in --out and the cache
            res = score_folder(
                images, subjects or default_data_dir(), out, metric_profile=metric_profile, model_profile=model_profile,
                dino_weights=dino_weights, clip_weights=clip_weights, lpips_weights=lpips_weights, device=device, batch_size=batch_size,
                num_workers=workers, cache_dir=cache_dir, progress=not quiet, identifier=identifier,
                log=None if quiet else lambda s: click.echo(s, err=True),
            )
    except ModelLoadError as e:
        # the builders' hint names the generation option; here the model profile is --model-profile
        raise ModelLoadError(str(e).replace("use --profile ", "use --model-profile ")) from e
    _print_summary(res.aggregates, metric_profile, model_profile, res.stats["scored"], res.stats["scored_now"],
                   res.stats["reused"], res.images_per_s, res.out_dir)
    _judge(ctx, results, judging, quiet)
    if res.errors:
        lines = error_lines(res.errors)
        for line in lines[:20]:
            click.echo(f"error: {line}", err=True)
        more = " (first 20 shown)" if len(lines) > 20 else ""
        click.echo(f"{len(res.errors)} bad input(s) skipped{more}; see {res.out_dir / 'errors.csv'}", err=True)
        for m in res.meta.get("missing") or []:  # a table over fewer subjects must never pass as the full one
            click.echo(f"error: {m['method']}/{m['subject']}: no scores ({m['reason']}); every table marks the row "
                       f"(n) and names it", err=True)
        sys.exit(1)


def error_lines(errors: list) -> list[str]:
    """One line per distinct problem: the images of a subject skipped for one cause (its real photos
    unusable) share a line naming the first image and how many more, not one line each."""
    groups: dict[tuple[str, str, str], list] = {}
    for e in errors:
        groups.setdefault((str(e.method), str(e.subject), e.message), []).append(e)
    out = []
    for (method, subject, _), errs in groups.items():
        extra = f" (and {len(errs) - 1} more image(s) of {method}/{subject})" if len(errs) > 1 else ""
        out.append(f"{errs[0]}{extra}")
    return out


def _judge_options(ctx: click.Context, results: Path | None, images: Path | None, subjects: Path | None,
                   protocol: str | None, quiet: bool, judge: dict):
    """The judge's options of ``--judge`` (checked now, before any scoring), or None. The judge reads a
    results folder, so ``--images`` elsewhere is refused with it."""
    opts = judge_request(**judge)
    if opts is None:
        if protocol is not None:
            raise click.UsageError("--judge-protocol given without --judge")
        return None
    root = resolve_results(ctx, results)
    if images is not None and Path(images).resolve() != ResultsLayout(root).images.resolve():
        raise click.UsageError(f"--judge judges a results folder's images/; --images {images} is not "
                               f"{ResultsLayout(root).images} (give --results instead)")
    opts.protocol, opts.data_dir = protocol, subjects
    return opts


def _judge(ctx: click.Context, results: Path | None, opts, quiet: bool) -> None:
    """Run the judge of ``--judge`` on the results folder; calls left to make exit with status 1."""
    if opts is None:
        return
    from ..judge.evaluate import judge_results
    from .judge import judge_bar, print_judged

    bar = judge_bar(quiet)
    try:
        res = judge_results(resolve_results(ctx, results), opts, on_progress=bar.update if bar else None)
    finally:
        if bar is not None:
            bar.close()
    if print_judged(res):
        sys.exit(1)


def _already_current(images: Path, subjects: Path, out: Path, cache_dir: Path | None, **kw) -> dict | None:
    """``score_meta.json`` of an ``--out`` whose every score, DIV group and real row is current, checked from
    content keys alone (image and photo hashes, texts, profile, cached weight digests: no model, no torch);
    None when anything is to compute, a digest is not cached yet, or the last scoring had bad inputs (the
    full path reports them)."""
    import json

    from ..metrics.parts import inputs_current  # heavy: pandas

    ok, _ = inputs_current(images, subjects, out, cache_dir=cache_dir, allow_errors=False, **kw)
    errors = out / ERRORS
    if not ok or not (out / AGGREGATES).is_file() or (
            errors.is_file() and len(errors.read_text().strip().splitlines()) > 1):
        return None
    try:
        return json.loads((out / SCORE_META).read_text())
    except (OSError, ValueError):
        return None


def _read_csv(path: Path):
    import pandas as pd

    return pd.read_csv(path, keep_default_na=False, na_values=["", "nan", "NaN"])


def _print_summary(agg, metric_profile: str, model_profile: str, scored: int, now: int, reused: int,
                   images_per_s: float | None, out_dir: Path) -> None:
    """The aggregate means per method and metric, and the image counts."""
    label = "" if (agg["weights"] == "pretrained").all() else "  [random-init weights: not quality results]"
    click.echo(f"profile {metric_profile}, model profile {model_profile}{label}")
    if len(agg):
        wide = agg.pivot(index="method", columns="metric", values="mean")

        wide = wide[[c for c in metric_names() if c in wide.columns]]
        click.echo(wide.to_string(float_format=lambda v: f"{v:.4f}"))
    click.echo(f"{scored} images scored ({now} now, {reused} reused)"
               + (f", {images_per_s:.1f} images/s" if images_per_s else "") + f" -> {out_dir}")


COMMANDS = [score_cmd]
