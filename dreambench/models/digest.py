"""Short digests of weight files and of in-memory weights, with a cache so a resume pays nothing.

A *file digest* is the sha256 of the file's bytes. Hashing a 4 GB checkpoint takes seconds, so digests
are remembered in ``$DREAMBENCH_CACHE/weights-digests.json`` keyed by (absolute path, size, mtime in ns):
a file that was not rewritten is never read again. Files in a Hugging Face hub cache are symlinks to
``blobs/<sha256>``: the blob name already is the digest of an LFS file and is used without reading it.

A *set digest* (a folder of weight files) is the sha256 of ``relative path:file sha256`` lines in sorted
order. A *tensor digest* (random-init weights) is the sha256 of every tensor's name and raw bytes.
Short digests are the first 16 hex digits.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path

from ..io import sha256_file

SHORT = 16
_CACHE_NAME = "weights-digests.json"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _cache_file() -> Path:
    root = Path(os.environ.get("DREAMBENCH_CACHE", Path.home() / ".cache" / "dreambench")).expanduser()
    return root / _CACHE_NAME


def _load_cache() -> dict:
    try:
        return json.loads(_cache_file().read_text())
    except (OSError, ValueError):
        return {}


def _save_cache(cache: dict) -> None:
    path = _cache_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(cache, indent=0, sort_keys=True))
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only cache only costs time


def file_sha256(path: str | Path) -> str:
    """Full sha256 (64 hex digits) of a weight file; cached by path, size and mtime; free for hub blobs."""
    p = Path(path).expanduser()
    if p.is_symlink():
        target = Path(os.path.realpath(p))
        if target.parent.name == "blobs" and _SHA256.match(target.name):
            return target.name
    real = Path(os.path.realpath(p))
    st = real.stat()
    key = f"{real}|{st.st_size}|{st.st_mtime_ns}"
    cache = _load_cache()
    if key in cache:
        return cache[key]
    digest = sha256_file(real, 1 << 22)
    cache = _load_cache()  # another process may have added entries meanwhile
    cache[key] = digest
    _save_cache(cache)
    return digest


def memo(key: str, compute) -> str:
    """``compute()`` remembered under ``key`` in the digest cache (for digests of deterministic builds)."""
    cache = _load_cache()
    if key in cache:
        return cache[key]
    value = compute()
    cache = _load_cache()
    cache[key] = value
    _save_cache(cache)
    return value


def file_digest(path: str | Path) -> str:
    """Short (16 hex digits) sha256 of a file's bytes."""
    return file_sha256(path)[:SHORT]


def files_digest(files: Iterable[Path], root: Path | None = None) -> str:
    """Short digest of a set of files: sha256 over sorted ``name:sha256`` lines (names relative to ``root``)."""
    lines = []
    for f in files:
        name = f.relative_to(root).as_posix() if root is not None else f.name
        lines.append(f"{name}:{file_sha256(f)}")
    return hashlib.sha256("\n".join(sorted(lines)).encode()).hexdigest()[:SHORT]


def tensor_digest(*modules) -> str:
    """Short sha256 of every tensor (name and raw bytes) of the state dicts of ``modules``, in order."""
    import torch

    h = hashlib.sha256()
    for i, m in enumerate(modules):
        for name, t in sorted(m.state_dict().items()):
            h.update(f"{i}:{name}:{t.dtype}:{tuple(t.shape)}".encode())
            t = t.detach().cpu().contiguous().reshape(-1)
            if t.numel():
                h.update(t.view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:SHORT]
