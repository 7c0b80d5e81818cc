"""``dreambench data fetch`` and ``dreambench data check``: get the DreamBooth dataset, validate subject folders."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from ..data.check import check_dataset
from ..data.fetch import DEFAULT_URL, fetch_dataset
from ..errors import ConfigError
from ..images import MIN_SHORT_SIDE
from ..paths import (
    DATA_ENV,
    DATA_URL_ENV,
    PLUS_DATA_ENV,
    PLUS_DATA_NAME,
    data_dir_searched,
    default_data_dir,
    default_plus_data_dir,
)

#: The protocol whose data ``--protocol`` selects in ``data fetch`` (``data check`` also takes any
#: DreamBooth-style protocol name or folder).
PLUS = "dreambench-plus"


@click.group("data")
def data_group() -> None:
    """The datasets: DreamBooth (default) and DreamBench++ (--protocol dreambench-plus): download and verify
    them, check them."""


@data_group.command("fetch")
@click.option("--protocol", type=click.Choice(["dreambooth", PLUS]), default="dreambooth", show_default=True,
              help="Whose data: the DreamBooth dataset, or DreamBench++'s data.zip (hub dataset "
                   "yuangpeng/dreambench_plus, size and sha256 pinned).")
@click.option("--dest", type=click.Path(file_okay=False, path_type=Path), default=None,
              help=f"Dataset folder to create (default: ./dreambooth-dataset; ./{PLUS_DATA_NAME} for "
                   "dreambench-plus).")
@click.option("--url", default=None,
              help="DreamBooth only: archive to read: https:// or file:// URL, or a local path (GitHub archive of "
                   f"google/dreambooth or a zip of the dataset folder). Default: ${DATA_URL_ENV}, else {DEFAULT_URL}")
@click.option("--from-zip", "from_zip", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="dreambench-plus only: a copy of data.zip you already have (verified like a download).")
@click.option("--force", is_flag=True, help="Replace an existing DEST (after the new copy is verified).")
@click.option("--no-verify-hashes", "no_verify_hashes", is_flag=True,
              help="DreamBooth only: skip the sha256 check of each image (folder, image and text-file counts are "
                   "still checked).")
@click.option("--if-missing", is_flag=True,
              help="DreamBooth only: fetch only when commands find no dataset ($DREAMBENCH_DATA, "
                   "../shared/dreambooth-dataset, ./dreambooth-dataset); say which one they use (what `make demo` "
                   "runs first).")
def fetch_cmd(protocol: str, dest: Path | None, url: str | None, from_zip: Path | None, force: bool,
              no_verify_hashes: bool, if_missing: bool) -> None:
    """Download and verify a dataset into DEST: the official DreamBooth dataset (30 subjects, 158 images), or
    the DreamBench++ data (150 subjects, 1,350 prompts; its zip's size and sha256 are checked before anything
    is extracted)."""
    if protocol == PLUS:
        if url is not None or no_verify_hashes or if_missing:
            raise ConfigError("--url, --no-verify-hashes and --if-missing are for the DreamBooth dataset; "
                              "DreamBench++ data comes only from its pinned data.zip (use --from-zip for a local copy)")
        _fetch_plus(dest or Path(PLUS_DATA_NAME), from_zip, force)
        return
    if from_zip is not None:
        raise ConfigError("--from-zip is for --protocol dreambench-plus; the DreamBooth dataset takes --url")
    url = url or os.environ.get(DATA_URL_ENV) or DEFAULT_URL
    dest = dest or Path("dreambooth-dataset")
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


def _fetch_plus(dest: Path, from_zip: Path | None, force: bool) -> None:
    from ..data.dreambench_plus.protocol import prepare
    from ..data.dreambench_plus.source import fetch

    report = fetch(dest, from_zip, force=force)
    click.echo(f"{report.folder}: {report.summary()} (data.zip size and sha256 verified)")
    made = prepare(report.folder)  # the protocol files and one photo folder per subject (data/dreambench_plus/protocol.py)
    click.echo(f"protocol dreambench-plus: {made}; run it with `dreambench run --protocol dreambench-plus ...`")
    click.echo(f"use it with: export {PLUS_DATA_ENV}={report.folder}")


@data_group.command("check")
@click.argument("data_dir", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--protocol", default=None,
              help="Require the subjects of this protocol (name or folder), e.g. dreambooth; dreambench-plus checks "
                   "the DreamBench++ data folder. "
                   "Default: check every sub-folder.")
@click.option("--min-size", "min_size", type=click.IntRange(min=0), default=MIN_SHORT_SIDE, show_default=True,
              help="Smallest accepted short side of an image, in pixels.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--quiet", "-q", is_flag=True, help="Print errors and the summary only, not warnings.")
def check_cmd(data_dir: Path | None, protocol: str | None, min_size: int, as_json: bool, quiet: bool) -> None:
    """Validate the subject folders of DATA_DIR (default: the dataset folder, $DREAMBENCH_DATA).

    Errors: missing or empty subject folder, unreadable or truncated image, image smaller than --min-size.
    Warnings: CMYK/palette/alpha/16-bit images (converted to RGB), EXIF orientation (applied).
    With --protocol dreambench-plus: the DreamBench++ data folder (default $DREAMBENCH_PLUS_DATA): its layout,
    captions and images, and whether it is the complete published set (150 subjects).
    Exit status 1 when there are errors."""
    if protocol == PLUS:
        _check_plus(data_dir or default_plus_data_dir(), min_size, as_json, quiet)
        return
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


def _check_plus(data_dir: Path, min_size: int, as_json: bool, quiet: bool) -> None:
    from ..data.dreambench_plus.check import check_folder

    report = check_folder(data_dir, min_short_side=min_size, progress=not as_json)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        for line in report.problems:
            click.echo(f"error: {line}")
        if not quiet:
            for line in report.warnings:
                click.echo(f"warning: {line}")
        click.echo(f"{data_dir}: {report.summary()}")
    if not report.ok:
        sys.exit(1)


COMMANDS = [data_group]
