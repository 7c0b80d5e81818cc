"""Content keys of the score files (hashes only), computed without torch or any model.

The keys that decide what :mod:`dreambench.metrics.scoring` reuses and whether a finished score job is
still current (:mod:`.reuse`, :mod:`.parts`; a resume with nothing to do must not import torch or build a
backbone):

- ``score_key`` of a per-image row: hash of the image bytes (``image_sha256``), the subject's real-photo
  set (``real_set``: names and bytes), the CLIP-T text, the metric profile (its full definition) and the
  DINO and CLIP tower ids (``name@origin:digest``, digest of the tensor bytes from
  :class:`dreambench.provenance.DigestCache`);
- ``div_key`` of a DIV group: the member images' hashes, the profile, the LPIPS trunk and version;
- ``real_key`` of a real.csv row: the real set, the profile and the tower ids.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

from ..io import sha256_file, write_text_atomic
from ..layout import ResultsLayout
from ..models.digest import file_digest, tensor_digest
from .profiles import MetricProfile
from .trunk import lpips_trunk_label

CACHE_ENV = "DREAMBENCH_CACHE"
DIGEST_FILE = "digests.json"


def short_hash(payload) -> str:
    """First 16 hex digits of the sha256 of the canonical JSON of ``payload``."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def lib_version(name: str) -> str:
    """The installed version of a distribution, or ``"none"``."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "none"


def file_sha256(path: str | Path) -> str:
    """Full sha256 of a file's bytes (read every time: images and photos are never trusted by mtime)."""
    return sha256_file(path)


def file_key(path: str | Path) -> str:
    """``abspath|size|mtime_ns``: what a cached digest of a weights file is keyed by."""
    p = Path(path).expanduser().resolve()
    st = p.stat()
    return f"{p}|{st.st_size}|{st.st_mtime_ns}"


class DigestCache:
    """Tower digests on disk (``<cache>/digests.json``), read once, written atomically on a new entry."""

    def __init__(self, root: str | Path):
        self.path = Path(root) / DIGEST_FILE
        self._data: dict[str, str] | None = None

    def _load(self) -> dict[str, str]:
        if self._data is None:
            try:
                self._data = json.loads(self.path.read_text())
            except (OSError, ValueError):
                self._data = {}
        return self._data

    def get(self, key: str) -> str | None:
        return self._load().get(key)

    def lookup(self, key: str, compute: Callable[[], str]) -> str:
        """The cached value of ``key``, else ``compute()`` stored under it."""
        hit = self.get(key)
        if hit is not None:
            return hit
        value = compute()
        data = self._load()
        try:  # another process may have added entries meanwhile: keep theirs too
            data.update({**json.loads(self.path.read_text()), key: value})
        except (OSError, ValueError):
            data[key] = value
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(self.path, json.dumps(data, indent=0, sort_keys=True))
        except OSError:
            pass  # a read-only cache only costs recomputation
        return value


class TowerIds:
    """Ids of the DINO and CLIP towers a scoring call uses, from what builds them: ``name@origin:digest``
    where the digest (of the tensor bytes) comes from the digest cache, keyed by a weights file's path,
    size and mtime or by a random-init or pretrained tower's builder arguments and library versions.
    Subclasses that can build towers (:class:`dreambench.metrics.scoring.Towers`) fill cache misses."""

    def __init__(self, prof: MetricProfile, mprof, dino_weights, clip_weights, digests: DigestCache):
        self.prof, self.mprof, self.digests = prof, mprof, digests
        self.dino_weights, self.clip_weights = dino_weights, clip_weights

    def name(self, kind: str) -> str:
        return self.prof.dino.arch if kind == "dino" else f"{self.prof.clip.arch}:{self.prof.clip.tag}"

    def spec(self, kind: str) -> tuple[str, str]:
        """(origin, digest cache key) of a tower; no model is built."""
        wfile = self.dino_weights if kind == "dino" else self.clip_weights
        overrides = self.mprof.backbone_overrides.get(kind)
        lib = lib_version("timm" if kind == "dino" else "open_clip_torch")
        if wfile is not None:
            return "file", f"tower:{kind}:{self.name(kind)}:{short_hash(overrides)}:{file_key(wfile)}"
        origin = "pretrained" if self.mprof.pretrained_weights and not overrides else f"random:{self.mprof.name}"
        return origin, "tower:" + short_hash([kind, self.name(kind), origin, overrides, lib, lib_version("torch"),
                                             "seed0"])

    def build_id(self, kind: str) -> str | None:
        """The id of a tower whose digest is not cached: None here (nothing is built)."""
        return None

    def digest(self, kind: str, model=None) -> str | None:
        """The tower's digest: cached, else a weights file's (its bytes make the tensors; the file digest
        is itself cached by path, size and mtime), else the tensor digest of ``model`` when given."""
        origin, ckey = self.spec(kind)
        hit = self.digests.get(ckey)
        if hit is not None:
            return hit
        if origin == "file":
            wfile = self.dino_weights if kind == "dino" else self.clip_weights
            return self.digests.lookup(ckey, lambda: file_digest(Path(wfile).expanduser()))
        if model is None:
            return None

        return self.digests.lookup(ckey, lambda: tensor_digest(model))

    def ids(self) -> tuple[str, str] | None:
        """``(dino_id, clip_id)``; None when a digest is unknown and cannot be had without a model."""
        out = []
        for kind in ("dino", "clip"):
            digest = self.digest(kind)
            if digest is None:
                built = self.build_id(kind)
                if built is None:
                    return None
                out.append(built)
                continue
            out.append(f"{self.name(kind)}@{self.spec(kind)[0]}:{digest}")
        return out[0], out[1]


def lpips_label(prof: MetricProfile, pretrained_trunk: bool, trunk_file: str | Path | None = None) -> str:
    """The LPIPS trunk label of ``prof`` (:func:`dreambench.metrics.trunk.lpips_trunk_label`:
    ``net:file@digest``, ``net:imagenet`` or ``net:random-init``)."""
    return lpips_trunk_label(prof.div, pretrained_trunk, trunk_file)


def default_cache_dir(out_dir: str | Path) -> Path:
    """``$DREAMBENCH_CACHE`` when set, else ``<out>/../cache``."""
    import os

    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else ResultsLayout(Path(out_dir).resolve().parent).cache


def digests(cache_dir: str | Path | None, out_dir: Path) -> DigestCache:
    return DigestCache(Path(cache_dir) if cache_dir is not None else default_cache_dir(out_dir))


#: Names that moved to the modules of one job each, still importable from here for the
#: tests that import them (resolved on first use: those modules import this one).
_MOVED = {"find_real_sets": "inputs", "inputs_current": "parts", "merge_parts": "parts",
          "merged_current": "parts", "part_current": "parts", "part_dir": "parts", "weights_kwargs": "parts"}


def __getattr__(name: str):
    if name in _MOVED:
        import importlib

        return getattr(importlib.import_module(f"{__package__}.{_MOVED[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
