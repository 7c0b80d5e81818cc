"""``dreambench data fetch`` and ``dreambench data check``: get the DreamBooth dataset, validate subject folders."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from ..data.check import check_dataset
from ..data.fetch import DEFAULT_URL, fetch_dataset
from ..images import MIN_SHORT_SIDE
from ..paths import DATA_ENV, DATA_URL_ENV, data_dir_searched, default_data_dir


@click.group("data")
def data_group() -> None:
    """The DreamBooth dataset: download and verify it, check subject folders."""


@data_group.command("fetch")
@click.option("--dest", type=click.Path(file_okay=False, path_type=Path), default=Path("dreambooth-dataset"),
              show_default=True, help="Dataset folder to create.")
@click.option("--url", default=None,
              help="Archive to read: https:// or file:// URL, or a local path (GitHub archive of google/dreambooth "
                   f"or a zip of the dataset folder). Default: ${DATA_URL_ENV}, else {DEFAULT_URL}")
@click.option("--force", is_flag=True, help="Replace an existing DEST (after the new copy is verified).")
@click.option("--no-verify-hashes", "no_verify_hashes", is_flag=True,
              help="Skip the sha256 check of each image (folder, image and text-file counts are still checked).")
@click.option("--if-missing", is_flag=True,
              help="Fetch only when commands find no dataset ($DREAMBENCH_DATA, ../shared/dreambooth-dataset, "
                   "./dreambooth-dataset); say which one they use (what `make demo` runs first).")
def fetch_cmd(dest: Path, url: str | None, force: bool, no_verify_hashes: bool, if_missing: bool) -> None:
    """Download the official DreamBooth dataset (30 subjects, 158 images) and verify it into DEST."""
    url = url or os.environ.get(DATA_URL_ENV) or DEFAULT_URL
    if if_missing:
        found = default_data_dir()
        if found.is_dir() and any(found.iterdir()):
            click.echo(f"dataset: using {found.absolute()} (found; `dreambench data check {found}` checks it)")
            return
        dest = found  # where commands will look: $DREAMBENCH_DATA when set, else ./dreambooth-dataset
        click.echo(f"dataset: none found (looked in {data_dir_searched()}); fetching {url} into {dest} and "
                   "verifying every image's sha256", err=True)
    counts = fetch_dataset(dest, url, force=force, verify_hashes=not no_verify_hashes)
    hashes = "sha256 verified" if counts.hashes_verified else "sha256 NOT verified"
    click.echo(f"{counts.path}: {counts.subjects} subjects, {counts.images} images ({hashes})")
    click.echo(f"use it with: export {DATA_ENV}={counts.path}")


@data_group.command("check")
@click.argument("data_dir", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--protocol", default=None,
              help="Require the subjects of this protocol (name or folder), e.g. dreambooth. "
                   "Default: check every sub-folder.")
@click.option("--min-size", "min_size", type=click.IntRange(min=0), default=MIN_SHORT_SIDE, show_default=True,
              help="Smallest accepted short side of an image, in pixels.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--quiet", "-q", is_flag=True, help="Print errors and the summary only, not warnings.")
def check_cmd(data_dir: Path | None, protocol: str | None, min_size: int, as_json: bool, quiet: bool) -> None:
    """Validate the subject folders of DATA_DIR (default: the dataset folder, $DREAMBENCH_DATA).

    Errors: missing or empty subject folder, unreadable or truncated image, image smaller than --min-size.
    Warnings: CMYK/palette/alpha/16-bit images (converted to RGB), EXIF orientation (applied).
    Exit status 1 when there are errors."""
    data_dir = data_dir or default_data_dir()
    report = check_dataset(data_dir, protocol=protocol, min_short_side=min_size, progress=not as_json)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        for path, msg in report.errors:
            click.echo(f"error: {path}: {msg}")
        if not quiet:
            for path, msg in report.warnings:
                click.echo(f"warning: {path}: {msg}")
        click.echo(f"{data_dir}: {report.summary()}")
    if not report.ok:
        sys.exit(1)


COMMANDS = [data_group]
