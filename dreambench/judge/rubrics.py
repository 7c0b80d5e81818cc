"""The rubric texts of a judge profile: read from a local folder or fetched at the profile's pinned commit
into a cache, and refused unless every file's sha256 is the profile's.

The rubrics are the benchmark's definition (Apache-2.0, never copied into this project): like the dataset,
they are fetched at run time. A text is used as the reference reads it, ``f.read().strip()``.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError
from ..io import atomic_path, write_roots
from .profiles import JudgeProfile

#: Environment variable naming a local folder holding the rubric files (instead of fetching them).
RUBRICS_ENV = "DREAMBENCH_JUDGE_RUBRICS"
FETCH_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class RubricText:
    """One rubric ready to send: the user turn and the assistant turn (stripped), and ``sha256``, the
    sha256 of ``"<user file sha256>:<thinking file sha256>"`` (what a stored call records)."""

    key: str
    user: str
    thinking: str
    sha256: str


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _as_read(data: bytes) -> str:
    """The text as the reference reads it: ``open(path, "r").read().strip()`` (UTF-8, universal newlines)."""
    return data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n").strip()


def _find(folder: Path, name: str) -> Path | None:
    """``folder/name``, or ``folder/prompts/name`` (a copy of the repository's layout)."""
    for p in (folder / name, folder / "prompts" / name):
        if p.is_file():
            return p
    return None


def _fetch(profile: JudgeProfile, name: str, cache: Path) -> bytes:
    """The file's bytes from the cache, else from raw.githubusercontent.com (then cached once checked)."""
    path = cache / profile.commit / name
    if path.is_file():
        data = path.read_bytes()
        if _sha(data) == profile.sha256[name]:
            return data
    url = profile.raw_url(name)
    try:
        with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_S) as r:
            data = r.read()
    except (urllib.error.URLError, OSError) as e:
        raise DataError(f"cannot fetch judge rubric {url} ({getattr(e, 'reason', e)}); give a local copy with "
                        f"--rubrics DIR or ${RUBRICS_ENV}") from None
    _check(name, data, profile, url)
    with write_roots(cache), atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return data


def _check(name: str, data: bytes, profile: JudgeProfile, where: str) -> None:
    got = _sha(data)
    if got != profile.sha256[name]:
        raise DataError(f"{where}: sha256 {got[:16]}... is not the {profile.name} profile's "
                        f"{profile.sha256[name][:16]}... (commit {profile.commit[:7]}); refusing a changed rubric")


def load_rubrics(profile: JudgeProfile, folder: str | Path | None = None,
                 cache_dir: str | Path | None = None) -> dict[str, RubricText]:
    """Every rubric of ``profile`` by key. Files come from ``folder`` (or ``$DREAMBENCH_JUDGE_RUBRICS``)
    when given, else from ``cache_dir`` / the pinned commit; each file's sha256 must be the profile's
    (:class:`DataError` otherwise, naming the file)."""
    folder = folder or os.environ.get(RUBRICS_ENV) or None
    raw: dict[str, bytes] = {}
    for name in profile.sha256:
        if folder is not None:
            p = _find(Path(folder).expanduser(), name)
            if p is None:
                raise DataError(f"judge rubric {name} not found in {folder} (nor in {folder}/prompts)")
            raw[name] = p.read_bytes()
            _check(name, raw[name], profile, str(p))
        else:
            if cache_dir is None:
                raise DataError("no rubric folder and no cache folder to fetch the judge rubrics into")
            raw[name] = _fetch(profile, name, Path(cache_dir))
    out = {}
    for key, r in profile.rubrics.items():
        sha = _sha(f"{_sha(raw[r.user])}:{_sha(raw[r.thinking])}".encode())
        out[key] = RubricText(key, _as_read(raw[r.user]), _as_read(raw[r.thinking]), sha)
    return out
