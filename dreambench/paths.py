"""Where things live: the dataset, the packaged protocol files, the results folder."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent

#: Environment variable naming the DreamBooth dataset folder (30 subject folders + the two text files).
DATA_ENV = "DREAMBENCH_DATA"
#: Environment variable naming the DreamBench++ data folder (``images/`` and ``captions/`` inside).
PLUS_DATA_ENV = "DREAMBENCH_PLUS_DATA"
#: The DreamBench++ data folder's default name, beside the DreamBooth dataset's.
PLUS_DATA_NAME = "dreambench-plus-dataset"
#: Environment variable naming the default results folder.
RESULTS_ENV = "DREAMBENCH_RESULTS"


#: Environment variable naming the archive ``dreambench data fetch`` reads (URL or local zip; default: the
#: official GitHub archive), e.g. a copy on a machine without the internet.
DATA_URL_ENV = "DREAMBENCH_DATA_URL"
#: Where ``dreambench data fetch`` puts the dataset by default, and the last place commands look.
FETCH_DEST = Path("dreambooth-dataset")


def default_data_dir() -> Path:
    """The dataset folder: ``$DREAMBENCH_DATA``, else ``../shared/dreambooth-dataset`` beside the checkout,
    else ``./dreambooth-dataset`` (where ``dreambench data fetch`` puts it by default)."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    shared = REPO_DIR.parent / "shared" / "dreambooth-dataset"
    if shared.is_dir():
        return shared
    return FETCH_DEST


def data_dir_searched() -> str:
    """Where :func:`default_data_dir` looked, for an error line: ``$DREAMBENCH_DATA (unset), <shared>,
    <cwd>/dreambooth-dataset``."""
    env = os.environ.get(DATA_ENV)
    if env:
        return f"${DATA_ENV}={env}"
    shared = REPO_DIR.parent / "shared" / "dreambooth-dataset"
    return f"${DATA_ENV} (unset), {shared}, {FETCH_DEST.absolute()}"


def default_plus_data_dir() -> Path:
    """The DreamBench++ data folder: ``$DREAMBENCH_PLUS_DATA``, else ``../shared/dreambench-plus-dataset``
    beside the checkout, else ``./dreambench-plus-dataset`` (where ``dreambench data fetch --protocol
    dreambench-plus`` puts it by default): the same places as the DreamBooth dataset's, under its own name."""
    env = os.environ.get(PLUS_DATA_ENV)
    if env:
        return Path(env).expanduser()
    shared = REPO_DIR.parent / "shared" / PLUS_DATA_NAME
    if shared.is_dir():
        return shared
    return Path(PLUS_DATA_NAME)


def default_results_dir() -> Path:
    """The results folder: ``$DREAMBENCH_RESULTS``, else ``./results``."""
    return Path(os.environ.get(RESULTS_ENV, "results")).expanduser()


#: The named protocols shipped with the package: ``subjects/`` and ``prompts/`` here are links to the
#: repository's top-level folders of those names, which wheels carry as files.
PROTOCOLS_DIR = PACKAGE_DIR / "protocols"


def protocol_files(name: str) -> tuple[Path, Path]:
    """The (subjects CSV, prompts YAML) of a named protocol: the repository's ``subjects/`` and
    ``prompts/`` folders, as the package ships them."""
    return PROTOCOLS_DIR / "subjects" / f"{name}.csv", PROTOCOLS_DIR / "prompts" / f"{name}.yaml"
