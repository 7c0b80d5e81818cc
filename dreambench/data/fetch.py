"""Download, extract and verify the official DreamBooth dataset.

The dataset is the ``dataset/`` folder of the public ``google/dreambooth`` GitHub repository: 30 subject
folders holding 158 photos, plus ``prompts_and_classes.txt`` and ``references_and_licenses.txt``.
:func:`fetch_dataset` downloads the repository archive (or reads a local copy of it), extracts the
dataset into a temporary folder beside the destination, verifies folder and image counts and the sha256
of every image against the manifest committed with the package (``dreambooth_sha256.csv``), and only
then renames it into place. A failed or interrupted fetch leaves the destination as it was.
"""

from __future__ import annotations

import csv
import hashlib
import posixpath
import shutil
import tempfile
import urllib.parse
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DataError
from ..images import list_images
from ..io import move_into_place

#: The public archive of github.com/google/dreambooth; the dataset is its ``dataset/`` folder.
DEFAULT_URL = "https://github.com/google/dreambooth/archive/refs/heads/main.zip"
#: Text files every copy of the dataset must hold (classes and prompts; image credits and licenses).
REQUIRED_FILES = ("prompts_and_classes.txt", "references_and_licenses.txt")
#: sha256 of each of the 158 official images, keyed by ``<subject>/<file>``.
MANIFEST_PATH = Path(__file__).resolve().parent / "dreambooth_sha256.csv"
#: The archive member that marks the dataset folder inside an archive.
_MARKER = "prompts_and_classes.txt"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class ExpectedDataset:
    """What a verified dataset folder must hold.

    Attributes:
        n_subjects: number of subject folders (non-hidden sub-folders of the dataset folder).
        n_images: number of image files over all subject folders.
        sha256: ``{"<subject>/<file>": hex digest}`` of every image, or ``None`` to skip hash checks.
        required_files: files that must sit directly in the dataset folder.
    """

    n_subjects: int
    n_images: int
    sha256: dict[str, str] | None = None
    required_files: tuple[str, ...] = REQUIRED_FILES


@dataclass(frozen=True)
class DatasetCounts:
    """The result of a successful verification: where the dataset is and what it holds."""

    path: Path
    subjects: int
    images: int
    hashes_verified: bool = False
    subject_names: list[str] = field(default_factory=list)


def tqdm(*args, **kwargs):
    """``tqdm.auto.tqdm``, imported on first use: ``dreambench --help`` reads DEFAULT_URL from here."""
    from tqdm.auto import tqdm as _tqdm

    return _tqdm(*args, **kwargs)


def load_hash_manifest(path: str | Path = MANIFEST_PATH) -> dict[str, str]:
    """``{"<subject>/<file>": sha256}`` from a CSV with columns ``path,sha256`` (``bytes`` optional)."""
    path = Path(path)
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as e:
        raise DataError(f"{path}: cannot read hash manifest ({e.strerror or e})") from None
    if not rows or not {"path", "sha256"} <= set(rows[0]):
        raise DataError(f"{path}: a hash manifest needs the columns path,sha256")
    return {r["path"]: r["sha256"].lower() for r in rows}


def official_expected() -> ExpectedDataset:
    """The official dataset: 30 subjects, 158 images, hashes from the committed manifest."""
    hashes = load_hash_manifest()
    subjects = {p.split("/", 1)[0] for p in hashes}
    return ExpectedDataset(len(subjects), len(hashes), hashes)


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_CHUNK):
            h.update(block)
    return h.hexdigest()


def verify_dataset(
    folder: str | Path, expected: ExpectedDataset | None = None, verify_hashes: bool = True
) -> DatasetCounts:
    """Check that ``folder`` holds exactly the expected dataset; raise :class:`DataError` listing what is
    wrong (counts, missing text files, missing/extra/altered images) otherwise.

    ``expected`` defaults to :func:`official_expected`; ``verify_hashes=False`` checks counts and files
    only."""
    folder = Path(folder)
    expected = expected or official_expected()
    if not folder.is_dir():
        raise DataError(f"{folder}: dataset folder not found")
    problems: list[str] = []
    for name in expected.required_files:
        if not (folder / name).is_file():
            problems.append(f"missing {name}")
    subjects = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    images = [img for s in subjects for img in list_images(s)]
    if len(subjects) != expected.n_subjects:
        problems.append(f"{len(subjects)} subject folders, expected {expected.n_subjects}")
    if len(images) != expected.n_images:
        problems.append(f"{len(images)} images, expected {expected.n_images}")
    check_hashes = verify_hashes and expected.sha256 is not None
    if check_hashes:
        found = {f"{p.parent.name}/{p.name}": p for p in images}
        missing = sorted(set(expected.sha256) - set(found))
        extra = sorted(set(found) - set(expected.sha256))
        bad = [
            k for k in tqdm(sorted(set(found) & set(expected.sha256)), desc="sha256", unit="img", leave=False,
                            disable=None)
            if sha256_file(found[k]) != expected.sha256[k].lower()
        ]
        for label, keys in (("missing images", missing), ("images not in the manifest", extra),
                            ("images whose sha256 differs", bad)):
            if keys:
                more = f" and {len(keys) - 5} more" if len(keys) > 5 else ""
                problems.append(f"{label}: {', '.join(keys[:5])}{more}")
    if problems:
        raise DataError(f"{folder}: not the expected DreamBooth dataset: {'; '.join(problems)}")
    return DatasetCounts(folder, len(subjects), len(images), check_hashes, [s.name for s in subjects])


def _local_path(url: str) -> Path | None:
    """The local file a ``file://`` URL or a plain path names; ``None`` for a remote URL."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "file":
        return Path(urllib.request.url2pathname(parsed.path))
    if parsed.scheme in ("http", "https", "ftp"):
        return None
    return Path(url).expanduser()


def download(url: str, dest_file: Path, progress: bool = True) -> Path:
    """Stream ``url`` into ``dest_file`` with a byte progress bar; :class:`DataError` on any failure."""
    try:
        with urllib.request.urlopen(url, timeout=60) as resp, open(dest_file, "wb") as out:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc="download",
                      disable=not progress) as bar:
                while block := resp.read(_CHUNK):
                    out.write(block)
                    bar.update(len(block))
    except (OSError, ValueError) as e:  # URLError, HTTPError, timeouts and bad URLs all land here
        raise DataError(
            f"cannot download {url} ({e}); download it by hand and pass --url /path/to/main.zip"
        ) from None
    return dest_file


def _dataset_prefix(names: list[str], archive: Path) -> str:
    """The archive folder holding ``prompts_and_classes.txt`` (shallowest one), ``""`` for the root."""
    hits = [n for n in names if posixpath.basename(n) == _MARKER and not n.endswith("/")]
    if not hits:
        raise DataError(f"{archive}: no {_MARKER} in the archive; not a DreamBooth dataset archive")
    best = min(hits, key=lambda n: (n.count("/"), n))
    return best[: -len(_MARKER)]


def _safe_relpath(name: str, archive: Path) -> str:
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    if name.startswith("/") or ".." in parts:
        raise DataError(f"{archive}: unsafe member path {name!r} in the archive")
    return "/".join(parts)


def extract_dataset(archive: Path, out: Path, progress: bool = True) -> Path:
    """Extract the dataset folder of a zip ``archive`` (the GitHub archive or a zip of the folder itself)
    into the new folder ``out``. A ``LICENSE`` beside the dataset folder is copied in too."""
    try:
        with zipfile.ZipFile(archive) as zf:
            names = zf.namelist()
            prefix = _dataset_prefix(names, archive)
            # The repository's LICENSE sits one level above dataset/ in the GitHub archive.
            parent = posixpath.dirname(prefix.rstrip("/"))
            license_names = {posixpath.join(parent, n) if parent else n for n in ("LICENSE", "LICENSE.md")}
            out.mkdir()
            members = [n for n in names if n.startswith(prefix) and not n.endswith("/")]
            for name in tqdm(members, desc="extract", unit="file", leave=False, disable=not progress):
                rel = _safe_relpath(name[len(prefix):], archive)
                target = out / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(name) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst, _CHUNK)
            for name in sorted(license_names & set(names)):
                target = out / posixpath.basename(name)
                if prefix and not target.exists():
                    with zf.open(name) as src, open(target, "wb") as dst:
                        shutil.copyfileobj(src, dst)
    except (zipfile.BadZipFile, zlib.error, EOFError) as e:
        raise DataError(f"{archive}: corrupt or not a zip archive ({e})") from None
    return out


def fetch_dataset(
    dest: str | Path,
    url: str = DEFAULT_URL,
    *,
    force: bool = False,
    verify_hashes: bool = True,
    expected: ExpectedDataset | None = None,
    progress: bool = True,
) -> DatasetCounts:
    """Download (or read) the DreamBooth archive, verify its dataset folder and move it to ``dest``.

    Args:
        dest: the dataset folder to create (30 subject folders + the two text files directly inside).
        url: ``http(s)://`` URL, ``file://`` URL or local path of a zip archive: the GitHub archive of
            google/dreambooth (dataset in its ``dataset/`` folder) or a zip of the dataset folder.
        force: replace an existing non-empty ``dest`` (only after the new copy has been verified).
        verify_hashes: compare every image's sha256 with the manifest (counts are always checked).
        expected: what to verify against; defaults to the official dataset (:func:`official_expected`).
        progress: show progress bars.

    Work happens in a hidden temporary folder beside ``dest``; it is removed whatever happens, and
    ``dest`` is only touched by the final rename, so an error or interrupt leaves it as it was.
    """
    dest = Path(dest).expanduser().absolute()
    expected = expected or official_expected()
    if dest.exists() and not dest.is_dir():
        raise DataError(f"{dest}: exists and is not a folder")
    if dest.is_dir() and any(dest.iterdir()) and not force:
        raise DataError(f"{dest}: already exists and is not empty; pass --force to replace it")
    local = _local_path(url)
    if local is not None and not local.is_file():
        raise DataError(f"{local}: archive not found")
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{dest.name}.fetch-", dir=dest.parent))
    try:
        archive = local if local is not None else download(url, work / "archive.zip", progress)
        staged = extract_dataset(archive, work / "dataset", progress)
        counts = verify_dataset(staged, expected, verify_hashes)
        move_into_place(staged, dest, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return DatasetCounts(dest, counts.subjects, counts.images, counts.hashes_verified, counts.subject_names)
