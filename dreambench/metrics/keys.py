"""Content keys of the score files, computed without torch or any model.

What :mod:`dreambench.metrics.scoring` reuses, and what the engine checks on every run to decide whether
a finished score job is still current (a resume with nothing to do must not import torch or build a
backbone), lives here:

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
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError, DreambenchError
from ..images import list_images
from ..io import sha256_file
from ..manifest import read_manifest, read_part, row_problem
from ..models.profiles import get_profile
from ..protocol import name_problem
from ..schema import CLASS_PROMPT_INDEX, MANIFEST, METHOD_INFO, PER_IMAGE, SCORE_COLUMNS
from .pairing import with_references
from .profiles import MetricProfile, get_metric_profile
from .text import strip_tokens, token_lookup

CACHE_ENV = "DREAMBENCH_CACHE"
SCORE_VALUE_COLUMNS = [*SCORE_COLUMNS, "max_dino_real"]
PARTS = "parts"
DIGEST_FILE = "digests.json"
#: sd_source / sd_digest of images no SD model made (the ``real`` method copies photos), and of rows
#: from manifests that predate the columns.
NO_MODEL = "none"
UNKNOWN = "unknown"


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
            from ..io import write_text_atomic

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
            from ..models.digest import file_digest

            wfile = self.dino_weights if kind == "dino" else self.clip_weights
            return self.digests.lookup(ckey, lambda: file_digest(Path(wfile).expanduser()))
        if model is None:
            return None
        from ..models.digest import tensor_digest

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
    from .trunk import lpips_trunk_label

    return lpips_trunk_label(prof.div, pretrained_trunk, trunk_file)


@dataclass(frozen=True)
class ScoreError:
    """One skipped input: the file at fault, where it belongs and what is wrong."""

    path: str
    method: str
    subject: str
    prompt_index: int | None
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"



def default_cache_dir(out_dir: str | Path) -> Path:
    """``$DREAMBENCH_CACHE`` when set, else ``<out>/../cache``."""
    import os

    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path(out_dir).resolve().parent / "cache"


def strip_identifier(prompt: str, identifier: str) -> str:
    """The prompt without the identifier token: ``"a sks dog in the jungle"`` -> ``"a dog in the jungle"``.

    Only whole tokens are removed (``"sks"`` in ``"asks"`` stays); whitespace is collapsed and no space is
    left before punctuation (:func:`.text.strip_tokens`)."""
    return strip_tokens(prompt, [identifier])


def _method_identifiers(images_dir: Path, methods, default: str) -> dict[str, str]:
    out = {}
    for m in methods:
        ident = default
        info = images_dir / m / METHOD_INFO
        if name_problem(str(m)) is None and info.is_file():  # a label like '../x' is never looked up
            try:
                ident = json.loads(info.read_text()).get("identifier") or default
            except (OSError, ValueError) as e:
                raise DataError(f"{info}: not valid JSON ({e})") from None
        out[m] = ident
    return out



def read_csv_or_none(path: Path) -> pd.DataFrame | None:
    if not path.is_file():
        return None
    try:
        return pd.read_csv(path, keep_default_na=False, na_values=["", "nan", "NaN"])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
        return None  # an unreadable previous output is simply recomputed



def validate_rows(
    manifest: pd.DataFrame, images_dir: Path, identifiers: dict[str, str], errors: list[ScoreError]
) -> pd.DataFrame:
    """Good manifest rows with ``abspath`` and ``clip_t_text`` added; bad rows go to ``errors``."""
    has_plain = "prompt_plain" in manifest.columns
    tokens = token_lookup(images_dir, identifiers)  # what each job wrote in its prompts (TI: its placeholder)
    keep, abspaths, texts, seen = [], [], [], set()
    for i, r in enumerate(manifest.itertuples(index=False)):
        row = r._asdict()
        rel, prompt = str(row["path"]), str(row["prompt"]).strip()
        where = (rel, str(row["method"]), str(row["subject"]), int(row["prompt_index"]))
        path = images_dir / rel
        unsafe = row_problem(images_dir, row)  # absolute, '..', symlink out, bad name: never read
        if unsafe:
            errors.append(ScoreError(*where, unsafe))
            continue
        if rel in seen:
            errors.append(ScoreError(*where, "duplicate manifest row for this path (first one kept)"))
            continue
        seen.add(rel)
        if not prompt:
            errors.append(ScoreError(*where, "empty prompt in the manifest"))
            continue
        if not path.is_file():
            errors.append(ScoreError(*where, f"file not found ({path})"))
            continue
        plain = str(row["prompt_plain"]).strip() if has_plain else ""
        text = plain or strip_tokens(prompt, tokens(str(row["method"]), str(row["subject"])))
        if not text:
            errors.append(ScoreError(*where, "prompt is empty once the identifier is removed"))
            continue
        keep.append(i)
        abspaths.append(str(path))
        texts.append(text)
    good = manifest.iloc[keep].reset_index(drop=True)
    good["abspath"] = abspaths
    good["clip_t_text"] = texts
    return good



def find_real_sets(subjects: list[str], subjects_dir: Path) -> tuple[dict[str, tuple[list[Path], str]], dict[str, str]]:
    """Per subject, its real photos and the key of the set (names and bytes); unusable folders apart. A
    photo that fails the subject-photo checks read from its header (not an image, decompression bomb,
    animated, short side below 256 px: :func:`dreambench.methods.photos.check_header`, what ``data check``
    and ``run`` refuse) never enters a real set: its subject is skipped with a message naming it."""
    from ..images import MIN_SHORT_SIDE
    from ..methods.photos import check_header

    sets, bad = {}, {}
    for s in subjects:
        folder = subjects_dir / s
        if not folder.is_dir():
            bad[s] = f"real-image folder {folder} not found (is --subjects the dataset folder?)"
            continue
        paths = list_images(folder)
        if not paths:
            bad[s] = f"real-image folder {folder} holds no images"
            continue
        try:
            for p in paths:
                check_header(p, MIN_SHORT_SIDE)
            sets[s] = (paths, short_hash([[p.name, file_sha256(p)] for p in paths]))
        except (OSError, DataError) as e:
            bad[s] = f"real image unusable, subject skipped: {e}"
    return sets, bad


@dataclass
class Work:
    """A scoring call's inputs and what of it can be reused (computed without any model)."""

    rows: pd.DataFrame
    errors: list
    real_sets: dict
    ids: tuple[str, str] | None
    profile_key: str
    div_groups: dict
    div_keys: dict
    done: np.ndarray
    div_done: dict
    real_done: dict
    stale_outputs: bool
    n_manifest: int = 0


def read_selection(images_dir: Path, only: tuple[str, str] | None) -> pd.DataFrame:
    """The manifest of the whole folder, or of one (label, subject) part."""
    if only is None:
        return read_manifest(images_dir)
    part = images_dir / only[0] / only[1] / MANIFEST
    if not part.is_file():
        raise DataError(f"{part}: no manifest part for {only[0]}/{only[1]}")
    return read_part(part)  # columns and integer types checked: a bad value names file, row and column


def prepare(images_dir: Path, subjects_dir: Path, out_dir: Path, prof: MetricProfile, towers: TowerIds,
             lpips: str, identifier: str, only: tuple[str, str] | None) -> Work:
    """Validate the inputs, hash them, and match them against the previous outputs in ``out_dir``."""
    errors: list[ScoreError] = []
    manifest = read_selection(images_dir, only)
    identifiers = _method_identifiers(images_dir, manifest["method"].astype(str).unique(), identifier)
    rows = validate_rows(manifest, images_dir, identifiers, errors)
    rows["method"] = rows["method"].astype(str)
    rows["subject"] = rows["subject"].astype(str)
    real_sets, bad = find_real_sets(sorted(rows["subject"].unique()), subjects_dir)
    rows = drop_subjects(rows, bad, errors)
    if prof.pairing == "one":  # each image against one reference photo (metrics/pairing.py)
        rows = with_references(rows, {s: tuple(p.name for p in v[0]) for s, v in real_sets.items()},
                               lambda r, msg: errors.append(ScoreError(str(r["path"]), str(r["method"]),
                                                                       str(r["subject"]), int(r["prompt_index"]), msg)))
    rows["image_sha256"] = [file_sha256(p) for p in rows["abspath"]]
    rows["real_set"] = rows["subject"].map({s: k for s, (_, k) in real_sets.items()}).astype(str)
    ids = towers.ids()
    pkey = short_hash(prof.to_dict())
    dino_id, clip_id = ids if ids else ("?", "?")
    ref = rows["reference"].astype(str) if "reference" in rows.columns else pd.Series("", index=rows.index)
    rows["score_key"] = [short_hash([h, r, t, pkey, dino_id, clip_id] + ([f] if f else [])) for h, r, t, f in
                         zip(rows["image_sha256"], rows["real_set"], rows["clip_t_text"], ref)]
    rows = rows.sort_values(["method", "subject", "prompt_index", "seed", "path"], kind="stable").reset_index(drop=True)

    done = np.zeros(len(rows), dtype=bool)
    for c in SCORE_VALUE_COLUMNS:
        rows[c] = np.nan
    stale = False
    prev = read_csv_or_none(out_dir / PER_IMAGE)
    if prev is not None and {"path", "score_key", *SCORE_VALUE_COLUMNS} <= set(prev.columns) and len(rows):
        prev = prev.drop_duplicates("path").astype({"path": str, "score_key": str})
        key = rows[["path", "score_key"]].astype(str).reset_index()
        merged = key.merge(prev[["path", "score_key", *SCORE_VALUE_COLUMNS]], on=["path", "score_key"])
        merged = merged.dropna(subset=SCORE_COLUMNS)
        rows.loc[merged["index"].to_numpy(), SCORE_VALUE_COLUMNS] = merged[SCORE_VALUE_COLUMNS].to_numpy()
        done[merged["index"].to_numpy()] = True
        stale = len(prev) != len(merged)
    else:
        stale = prev is not None or len(rows) > 0

    regular = rows[rows["prompt_index"] != CLASS_PROMPT_INDEX].groupby(["method", "subject", "prompt_index"]).groups
    div_groups = {(str(k[0]), str(k[1]), int(k[2])): np.asarray(v, dtype=int) for k, v in regular.items() if len(v) >= 2}
    sha = rows["image_sha256"].to_numpy()
    div_keys = {k: short_hash([sorted(sha[v]), pkey, lpips, lib_version("lpips")]) for k, v in div_groups.items()}
    div_done: dict[tuple, dict] = {}
    prev_div = read_csv_or_none(out_dir / "div.csv")
    if prev_div is not None and {"div", "div_key"} <= set(prev_div.columns):
        for r in prev_div.itertuples(index=False):
            k = (str(r.method), str(r.subject), int(r.prompt_index))
            if div_keys.get(k) == str(r.div_key) and not pd.isna(r.div):
                div_done[k] = {"div": float(r.div), "n_images": int(r.n_images), "n_pairs": int(r.n_pairs)}
        stale = stale or len(prev_div) != len(div_done)
    real_keys = {s: short_hash([k, pkey, dino_id, clip_id]) for s, (_, k) in real_sets.items()}
    real_done: dict[str, dict] = {}
    prev_real = read_csv_or_none(out_dir / "real.csv")
    if prev_real is not None and "real_key" in prev_real.columns:
        for r in prev_real.to_dict("records"):
            if real_keys.get(str(r["subject"])) == str(r["real_key"]):
                real_done[str(r["subject"])] = r
        stale = stale or len(prev_real) != len(real_done)
    return Work(rows, errors, real_sets, ids, pkey, div_groups, div_keys, done, div_done, real_done, stale,
                 len(manifest))


def drop_subjects(rows: pd.DataFrame, bad: dict[str, str], errors: list[ScoreError]) -> pd.DataFrame:
    """Rows of subjects whose real photos are unusable go to ``errors``."""
    if not bad:
        return rows
    mask = rows["subject"].isin(list(bad))
    for r in rows[mask].itertuples(index=False):
        errors.append(ScoreError(str(r.path), r.method, r.subject, int(r.prompt_index), bad[r.subject]))
    return rows[~mask].reset_index(drop=True)


def inputs_current(
    images_dir: str | Path, subjects_dir: str | Path, out_dir: str | Path, *, metric_profile: str = "paper",
    model_profile: str = "sd15", only: tuple[str, str] | None = None, identifier: str = "sks",
    cache_dir: str | Path | None = None, dino_weights: str | Path | None = None,
    clip_weights: str | Path | None = None, lpips_weights: str | Path | None = None, allow_errors: bool = True,
) -> tuple[bool, str]:
    """Whether ``out_dir`` holds the scores :func:`score_folder` would write now, checked without any
    model (image and real-photo hashes, CLIP-T texts, profile, cached weight digests); and why not.
    ``allow_errors=False``: bad input rows (which scoring skips and reports) also make it not current, for
    callers that must report them."""
    images_dir, subjects_dir, out_dir = Path(images_dir), Path(subjects_dir), Path(out_dir)
    if not (out_dir / "score_meta.json").is_file() or not (out_dir / PER_IMAGE).is_file():
        return False, "no finished scores"
    try:
        prof, mprof = get_metric_profile(metric_profile), get_profile(model_profile)
        towers = TowerIds(prof, mprof, dino_weights, clip_weights, digests(cache_dir, out_dir))
        w = prepare(images_dir, subjects_dir, out_dir, prof, towers, lpips_label(prof, mprof.pretrained_weights, lpips_weights),
                    identifier, only)
    except (DreambenchError, OSError, ValueError) as e:
        return False, f"inputs unreadable ({e})"
    if w.ids is None:
        return False, "backbone digest not cached"
    if w.errors and not allow_errors:
        return False, f"{len(w.errors)} bad input row(s) to report"
    todo = int((~w.done).sum()) + len(w.div_groups) - len(w.div_done) + len(w.real_sets) - len(w.real_done)
    if todo or w.stale_outputs:
        return False, f"{todo} score(s) to compute" + (", outputs to rewrite" if w.stale_outputs else "")
    return True, "current"


def weights_kwargs(metric_weights: dict | None) -> dict:
    """``{"dino"|"clip"|"lpips": path}`` (a run's metric weights) as scoring keyword arguments."""
    w = metric_weights or {}
    return {"dino_weights": w.get("dino"), "clip_weights": w.get("clip"), "lpips_weights": w.get("lpips")}


def digests(cache_dir: str | Path | None, out_dir: Path) -> DigestCache:
    return DigestCache(Path(cache_dir) if cache_dir is not None else default_cache_dir(out_dir))



def part_dir(scores_dir: str | Path, label: str, subject: str) -> Path:
    """Where the score job of one (label, subject) writes: ``<scores>/parts/<label>/<subject>``."""
    return Path(scores_dir) / PARTS / label / subject



def parts_on_disk(scores_dir: str | Path) -> list[tuple[str, str]]:
    """(label, subject) of every finished score part under ``<scores>/parts``, earlier runs into the same
    results folder included (a method added later joins the baselines' tables). Names that could not be
    labels or subjects are ignored."""
    root = Path(scores_dir) / PARTS
    if not root.is_dir():
        return []
    return sorted((d.parent.name, d.name) for d in root.glob("*/*")
                  if (d / "score_meta.json").is_file() and not name_problem(d.parent.name) and not name_problem(d.name))


def merge_parts(scores_dir: str | Path, planned: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The parts a merge combines: the run's own, then every other part on disk, in name order."""
    planned = [tuple(p) for p in planned]
    return planned + [p for p in parts_on_disk(scores_dir) if p not in planned]


def part_current(scores_dir: str | Path, images_dir: str | Path, subjects_dir: str | Path, label: str, subject: str,
                 *, metric_profile: str, model_profile: str, metric_weights: dict | None = None) -> tuple[bool, str]:
    """Whether one score part still matches its inputs (as :func:`inputs_current`, with the merge's cache)."""
    return inputs_current(images_dir, subjects_dir, part_dir(scores_dir, label, subject), metric_profile=metric_profile,
                          model_profile=model_profile, only=(label, subject),
                          cache_dir=default_cache_dir(scores_dir), **weights_kwargs(metric_weights))


def merged_current(scores_dir: str | Path, parts: list[tuple[str, str]]) -> bool:
    """Whether ``scores_dir`` holds the merge of exactly the current contents of ``parts`` (cheap: reads
    the parts' score_meta.json; the parts themselves are checked by their own jobs)."""
    scores_dir = Path(scores_dir)
    try:
        meta = json.loads((scores_dir / "score_meta.json").read_text())
    except (OSError, ValueError):
        return False
    if not (scores_dir / PER_IMAGE).is_file() or "parts" not in meta:
        return False
    now = {}
    for label, subject in parts:
        try:
            now[f"{label}/{subject}"] = json.loads(
                (part_dir(scores_dir, label, subject) / "score_meta.json").read_text())["content_key"]
        except (OSError, ValueError, KeyError):
            continue
    missing = {f"{m['method']}/{m['subject']}" for m in meta.get("missing", [])}
    return meta["parts"] == {k: v for k, v in now.items() if k not in missing} and \
        set(meta["parts"]) | missing == {f"{a}/{b}" for a, b in parts}


