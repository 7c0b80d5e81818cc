"""``dreambench import-samples`` and ``dreambench export-samples``: the DreamBench++ reference code's samples
layout (``src_image/``, ``tgt_image/``, ``text/``), read into a results folder and written from one."""

from __future__ import annotations

from pathlib import Path

import click

from ..paths import PLUS_DATA_ENV, default_plus_data_dir
from .options import resolve_results
from .options import results_option as _results_option

_DATA_HELP = (f"DreamBench++ data folder: subjects, prompts and reference images (default: ${PLUS_DATA_ENV}, "
              "else ./dreambench-plus-dataset).")


def _subjects(data: Path | None):
    from ..data.dreambench_plus.layout import read_layout

    data = data or default_plus_data_dir()
    return data, read_layout(data)


@click.command("import-samples")
@click.argument("samples", type=click.Path(file_okay=False, path_type=Path))
@click.option("--label", required=True, help="Label to file the images under (a plain name).")
@click.option("--data", type=click.Path(file_okay=False, path_type=Path), default=None, help=_DATA_HELP)
@_results_option
@click.option("--force", is_flag=True, help="Replace a label imported before (never a label the suite generated).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.pass_context
def import_cmd(ctx: click.Context, samples: Path, label: str, data: Path | None, results: Path | None,
               force: bool, quiet: bool) -> None:
    """Import SAMPLES, a folder in the DreamBench++ samples layout (src_image/<collection_id>/<p>_<k>.jpg,
    tgt_image/..., text/...), as LABEL of the results folder, so `dreambench score` scores it.

    Each generated image is decoded and saved as PNG; the manifest records subject = collection_id, prompt
    index = p, prompt = the text file, seed = k (the samples record no seed). Every collection_id and prompt
    is checked against the data folder, and everything before anything is written. Scoring compares with the
    data folder's reference image, not src_image (a JPEG re-encoding of it)."""
    from ..samples.importer import import_samples

    data, subjects = _subjects(data)
    root = resolve_results(ctx, results)
    res = import_samples(samples, root, label, subjects, data, force=force, progress=not quiet)
    click.echo(f"{res.label_dir}: {res.images} images of {res.subjects} subjects imported as {label!r}")


@click.command("export-samples")
@click.argument("dest", type=click.Path(path_type=Path))
@click.option("--label", required=True, help="Label of the results folder to export.")
@click.option("--data", type=click.Path(file_okay=False, path_type=Path), default=None, help=_DATA_HELP)
@_results_option
@click.option("--format", "image_format", type=click.Choice(["jpg", "png"]), default="jpg", show_default=True,
              help="jpg: JPEG with Pillow's defaults (quality 75), as the reference code saves samples (lossy); "
                   "png: lossless (read by eval_clip_and_dino.py, not by the GPT scripts, which open <p>_0.jpg).")
@click.option("--force", is_flag=True, help="Replace a non-empty DEST (after the new folder is written).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.pass_context
def export_cmd(ctx: click.Context, dest: Path, label: str, data: Path | None, results: Path | None,
               image_format: str, force: bool, quiet: bool) -> None:
    """Write LABEL of the results folder into DEST in the DreamBench++ samples layout, so the reference code
    (eval_clip_and_dino.py, its GPT scripts) scores the suite's images.

    src_image holds the subject's reference image from the data folder, tgt_image the generated image, text
    the subject's prompt p from its caption file; k numbers a prompt's images in seed order."""
    from ..samples.exporter import export_samples

    data, subjects = _subjects(data)
    root = resolve_results(ctx, results)
    res = export_samples(root, label, dest, subjects, data, image_format=image_format, force=force,
                         progress=not quiet)
    click.echo(f"{res.dest}: {res.images} samples of {res.subjects} subjects ({image_format})")


COMMANDS = [import_cmd, export_cmd]
