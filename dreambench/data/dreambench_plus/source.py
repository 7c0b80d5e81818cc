"""Fetch the DreamBench++ data: the one pinned source, verified before anything is extracted.

The data is published only as ``data.zip`` of the Hugging Face dataset ``yuangpeng/dreambench_plus``
(revision of 2024-07-07). Its images are not redistributed with the suite (their licences are not stated
per image), so :func:`fetch` downloads it (or reads a copy the user already has), checks its size and
sha256 against :data:`SOURCE` *before* extracting, extracts it safely (no absolute or ``..`` member, no
symlink) into a hidden temporary folder beside the destination, validates the layout
(:mod:`.layout`) and only then renames it into place. A wrong zip is refused with nothing written; a failed
or interrupted fetch leaves the destination as it was.
"""

from __future__ import annotations

import shutil
import stat
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from ...errors import DataError, first_problems
from ...io import move_into_place, sha256_file
from .check import DbpCheck, check_folder
from .layout import CAPTIONS, IMAGES

_CHUNK = 1 << 20


@dataclass(frozen=True)
class PinnedZip:
    """A zip file on the Hugging Face hub, pinned by its size (bytes) and sha256 (the LFS object id)."""

    repo_id: str
    filename: str
    size: int
    sha256: str
    repo_type: str = "dataset"
    revision: str = "main"

    @property
    def url(self) -> str:
        return f"https://huggingface.co/datasets/{self.repo_id}/blob/{self.revision}/{self.filename}"


#: The DreamBench++ data, declared once. The sha256 pins the bytes, so the ``main`` revision is only where
#: to look: a changed upstream file is refused, never used.
SOURCE = PinnedZip(
    repo_id="yuangpeng/dreambench_plus",
    filename="data.zip",
    size=15_061_282,
    sha256="fabdaac1cbff6826c226e874902193ac7965e29b6c1644e983551c980ec82a33",
)


def verify_zip(path: Path, source: PinnedZip = SOURCE) -> None:
    """:class:`DataError` naming expected and actual size or sha256 when ``path`` is not the pinned file."""
    if not path.is_file():
        raise DataError(f"{path}: zip not found")
    size = path.stat().st_size
    if size != source.size:
        raise DataError(f"{path}: {size:,} bytes, expected {source.size:,} ({source.repo_id}/{source.filename}); "
                        "not the published DreamBench++ data.zip, refused (nothing extracted)")
    digest = sha256_file(path)
    if digest != source.sha256:
        raise DataError(f"{path}: sha256 {digest}, expected {source.sha256} ({source.repo_id}/{source.filename}); "
                        "not the published DreamBench++ data.zip, refused (nothing extracted)")


def download_zip(folder: Path, source: PinnedZip = SOURCE) -> Path:
    """Download the pinned file into ``folder`` with :func:`huggingface_hub.hf_hub_download`."""
    try:
        from huggingface_hub import hf_hub_download

        path = hf_hub_download(source.repo_id, source.filename, repo_type=source.repo_type,
                               revision=source.revision, local_dir=folder)
    except Exception as e:  # noqa: BLE001  (offline, hub errors, disk: one line naming the way around it)
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"cannot download {source.repo_id}/{source.filename} ({first}); download it from "
                        f"{source.url} and pass --from-zip PATH") from None
    return Path(path)


def _member_problem(info: zipfile.ZipInfo) -> str | None:
    name = info.filename
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") or ".." in parts:
        return f"unsafe member path {name!r}"
    if stat.S_ISLNK(info.external_attr >> 16):
        return f"member {name!r} is a symlink"
    return None


def _data_prefix(names: list[str], archive: Path) -> str:
    """The shallowest archive folder holding both ``images/`` and ``captions/`` (``""`` for the root)."""
    prefixes = set()
    for n in names:
        parts = n.split("/")
        for i, part in enumerate(parts[:-1]):
            if part == IMAGES:
                prefixes.add("/".join(parts[:i]))
    found = sorted((p for p in prefixes if any(n.startswith(f"{p}/{CAPTIONS}/" if p else f"{CAPTIONS}/")
                                                for n in names)), key=lambda p: (p.count("/"), p))
    if not found:
        raise DataError(f"{archive}: no {IMAGES}/ and {CAPTIONS}/ folders in the archive; not DreamBench++ data")
    return f"{found[0]}/" if found[0] else ""


def extract_zip(archive: Path, out: Path) -> Path:
    """Extract the data folder of ``archive`` (the one holding ``images/`` and ``captions/``) into the new
    folder ``out``. Every member is checked first: an absolute or ``..`` path, or a symlink, refuses the
    whole archive. ``__MACOSX/`` and hidden files are skipped."""
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            problems = [p for p in map(_member_problem, infos) if p]
            if problems:
                raise DataError(f"{archive}: {problems[0]}; refused (nothing extracted)")
            prefix = _data_prefix([i.filename for i in infos], archive)
            out.mkdir()
            for info in infos:
                rel = info.filename[len(prefix):]
                if (info.is_dir() or not info.filename.startswith(prefix)
                        or any(p.startswith(".") or p == "__MACOSX" for p in rel.split("/"))):
                    continue
                target = out / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst, _CHUNK)
    except (zipfile.BadZipFile, zlib.error, EOFError) as e:
        raise DataError(f"{archive}: corrupt or not a zip archive ({e})") from None
    return out


def _check_dest(dest: Path, force: bool) -> None:
    if dest.exists() and not dest.is_dir():
        raise DataError(f"{dest}: exists and is not a folder")
    if dest.is_dir() and any(dest.iterdir()) and not force:
        raise DataError(f"{dest}: already exists and is not empty; pass --force to replace it")


def fetch(dest: str | Path, from_zip: str | Path | None = None, *, source: PinnedZip | None = None,
          force: bool = False) -> DbpCheck:
    """Get the DreamBench++ data into ``dest`` and return its check (:class:`.check.DbpCheck`).

    Args:
        dest: the data folder to create (``images/`` and ``captions/`` directly inside).
        from_zip: a local copy of ``data.zip``; ``None`` downloads it from the hub.
        source: the pinned file (size and sha256 the zip must have); ``None``: :data:`SOURCE`. Tests pass
            the digest of a zip they built; the CLI has no option for it.
        force: replace a non-empty ``dest`` (only after the new copy is verified and valid).

    Steps: 1. check ``dest`` and a local zip's size and sha256 (nothing written yet); 2. download into a
    hidden folder beside ``dest`` and verify it; 3. extract safely there; 4. validate the layout and every
    image; 5. rename into place. The hidden folder is removed whatever happens.
    """
    source = source or SOURCE
    dest = Path(dest).expanduser().absolute()
    _check_dest(dest, force)
    local = Path(from_zip).expanduser() if from_zip is not None else None
    if local is not None:
        verify_zip(local, source)  # 1. a wrong zip is refused before anything is written
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{dest.name}.fetch-", dir=dest.parent))
    try:
        archive = local
        if archive is None:
            archive = download_zip(work / "download", source)  # 2.
            verify_zip(archive, source)
        staged = extract_zip(archive, work / "data")  # 3.
        report = check_folder(staged)  # 4.
        if not report.ok:
            raise DataError(f"{archive}: the extracted data is not valid: {first_problems(report.problems)}")
        move_into_place(staged, dest, work)  # 5.
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report.folder = dest
    return report
