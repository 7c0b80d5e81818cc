"""``score_folder``: score an images folder against the real subject images and write the results folder.

Reads ``<images>/manifest.csv`` (or the per-(method, subject) parts) and the real photos in
``<subjects>/<subject>/``; writes into ``out_dir`` (the contract read by tables, reports and the engine):

- ``per_image.csv``: the manifest columns (the manifest's ``weights`` renamed ``gen_weights``) plus
  ``clip_t_text`` (the identifier-free text CLIP-T used), ``dino``, ``clip_i``, ``clip_t``,
  ``max_dino_real``, ``copy_flag``, ``metric_profile``, ``weights`` (``random-init`` when the generator
  or the metric backbones were random-init, else ``pretrained``), ``dino_backbone``, ``clip_backbone``
  (name@weights id). Rows with ``prompt_index == -1`` are class-prompt samples: ``dino`` is their PRES.
- ``div.csv``: method, subject, prompt_index, div, n_images, n_pairs, lpips, metric_profile.
- ``real.csv``: subject, dino, clip_i, n_pairs, n_images, copy_reference (Real Images upper bound).
- ``per_subject.csv``: method, subject, metric, value (the per-subject means everything is built on).
- ``aggregates.csv``, ``per_category.csv``, ``paired.csv``, ``errors.csv``, ``score_meta.json``.

Resumable: a row already in ``per_image.csv`` with the same path, prompt, seed, metric profile and
backbones (weights ids) is kept, not recomputed; a DIV group already in ``div.csv`` with the same image
count, profile and LPIPS trunk likewise. ``per_image.csv`` and ``div.csv`` are rewritten atomically after
every chunk, so an interrupted run loses at most one chunk.

Bad input (a manifest row whose file is missing or cannot be decoded, an empty prompt, a duplicate
path, a subject whose real-image folder is missing, empty or holds an unreadable image) is reported in
``errors.csv`` and skipped; every good row is still scored and saved. :attr:`ScoreResult.errors` lists
them; the CLI exits non-zero when there are any.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from .. import __version__
from ..errors import DataError, DreambenchError
from ..images import list_images
from ..io import atomic_path, write_text_atomic
from ..manifest import read_manifest, row_problem
from ..models import Backbone, build_clip, build_dino, get_profile
from ..paths import REPO_DIR
from ..protocol import name_problem
from ..provenance import sd_sources
from ..schema import CLASS_PROMPT_INDEX, MANIFEST_COLUMNS, MANIFEST_OPTIONAL, METHOD_INFO, PER_IMAGE
from . import functional as F
from .aggregate import (
    BOOTSTRAP,
    aggregate_table,
    paired_table,
    per_category_table,
    per_subject_table,
)
from .decode import decode, default_workers, prefetch_map
from .embed import EmbeddingCache, ImageEncoder, Lpips, TextEncoder, embed_reference_images, stack_group
from .pairing import with_references
from .profiles import COPY_REFERENCES, MetricProfile, get_metric_profile
from .text import strip_tokens, token_lookup

CACHE_ENV = "DREAMBENCH_CACHE"
SCORE_VALUE_COLUMNS = ["dino", "clip_i", "clip_t", "max_dino_real"]
REAL_METHOD = "real-images"
_RESUME_KEY = ["path", "prompt", "seed", "metric_profile", "dino_backbone", "clip_backbone"]


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


@dataclass
class ScoreResult:
    """What :func:`score_folder` wrote (the same tables, in memory) and how the run went."""

    out_dir: Path
    per_image: pd.DataFrame
    aggregates: pd.DataFrame
    div: pd.DataFrame
    real: pd.DataFrame
    per_category: pd.DataFrame
    paired: pd.DataFrame
    errors: list[ScoreError]
    meta: dict
    stats: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def images_per_s(self) -> float | None:
        return self.meta.get("images_per_s")


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


def _categories(df: pd.DataFrame) -> pd.Series:
    """The prompt category per row: the manifest's ``category`` when given, else looked up in the
    ``dreambooth`` protocol by subject kind and prompt index; ``""`` when neither knows."""
    given = df["category"] if "category" in df.columns else pd.Series("", index=df.index)
    lookup: dict[tuple[str, int], str] = {}
    try:
        from ..protocol import load_protocol

        proto = load_protocol("dreambooth")
        for s in proto.subjects:
            for p in proto.prompts_for(s):
                lookup[(s.name, p.index)] = p.category
    except DreambenchError:
        pass
    fallback = [lookup.get((s, int(i)), "") for s, i in zip(df["subject"], df["prompt_index"])]
    return given.where(given.astype(str).str.len() > 0, pd.Series(fallback, index=df.index)).astype(str)


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(REPO_DIR), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5, check=False)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def _write_csv(df: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)


def _read_csv(path: Path) -> pd.DataFrame | None:
    if not path.is_file():
        return None
    try:
        return pd.read_csv(path, keep_default_na=False, na_values=["", "nan", "NaN"])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
        return None  # an unreadable previous output is simply recomputed


# ---------------------------------------------------------------------------------------------------------
# Input validation


def _validate_rows(
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


@dataclass
class _Reference:
    """A subject's real images: embeddings and real-vs-real statistics (raw cosines)."""

    dino: np.ndarray
    clip: np.ndarray
    dino_mean: float
    clip_mean: float
    n_pairs: int
    copy_level: float
    names: tuple[str, ...] = ()  # file names of the photos, in embedding order (one-reference pairing)


def _reference_sets(
    subjects: list[str], subjects_dir: Path, dino: ImageEncoder, clip: ImageEncoder, cache: EmbeddingCache,
    profile: MetricProfile, batch_size: int, workers: int, progress: bool,
) -> tuple[dict[str, _Reference], dict[str, str]]:
    refs, bad = {}, {}
    reduce = COPY_REFERENCES[profile.copy_reference]
    for s in tqdm(subjects, desc="real images", unit="subject", disable=not progress, leave=False):
        folder = subjects_dir / s
        if not folder.is_dir():
            bad[s] = f"real-image folder {folder} not found (is --subjects the dataset folder?)"
            continue
        paths = list_images(folder)
        if not paths:
            bad[s] = f"real-image folder {folder} holds no images"
            continue
        try:
            d, c = embed_reference_images(paths, [dino, clip], cache, batch_size=batch_size, workers=workers)
        except DataError as e:
            bad[s] = f"real image unusable, subject skipped: {e}"
            continue
        dm, n_pairs = F.real_pairs_mean(d)
        cm, _ = F.real_pairs_mean(c)
        refs[s] = _Reference(d, c, dm, cm, n_pairs, F.real_pairs_stat(d, reduce), tuple(p.name for p in paths))
    return refs, bad


# ---------------------------------------------------------------------------------------------------------
# The scorer


def _tensor_digest(model: torch.nn.Module) -> str:
    """sha256 (16 hex digits) of every tensor's values in a model's state dict."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def _build_backbones(prof: MetricProfile, mprof, dino_weights, clip_weights) -> tuple[Backbone, Backbone]:
    """DINO and CLIP backbones; random-init ones get their ``weights_id`` extended with a digest of all
    their values, so cache keys and resumed rows can only match identical weights."""
    dino_bb = build_dino(mprof, prof.dino.arch, dino_weights)
    clip_bb = build_clip(mprof, prof.clip.arch, prof.clip.tag, clip_weights)
    out = []
    for bb in (dino_bb, clip_bb):
        if bb.weights_id.startswith("random:"):
            bb = dataclasses.replace(bb, weights_id=f"{bb.weights_id}:{_tensor_digest(bb.model)}")
        out.append(bb)
    return out[0], out[1]


def _combine(*labels: str) -> str:
    return "random-init" if any(lbl != "pretrained" for lbl in labels) else "pretrained"


def score_folder(
    images_dir: str | Path,
    subjects_dir: str | Path,
    out_dir: str | Path,
    *,
    metric_profile: str = "paper",
    model_profile: str = "sd15",
    dino_weights: str | Path | None = None,
    clip_weights: str | Path | None = None,
    lpips_weights: str | Path | None = None,
    device: str | None = None,
    batch_size: int = 64,
    num_workers: int | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    identifier: str = "sks",
    chunk_size: int | None = None,
    log: Callable[[str], None] | None = None,
) -> ScoreResult:
    """Score every image of ``images_dir`` against the real photos in ``subjects_dir``; write ``out_dir``.

    Args:
        metric_profile: a :mod:`dreambench.metrics.profiles` name (``paper``, ``x100``, ``clipscore``,
            ``paper-vitl14``).
        model_profile: how the backbones are built (``sd15`` pretrained, ``sd15-random``, ``tiny``).
        dino_weights, clip_weights: state dict files replacing the backbones' pretrained weights.
        lpips_weights: torchvision checkpoint of the LPIPS trunk (DIV), replacing the hub cache's.
        device: ``cuda``/``cpu``/...; default CUDA when available. bf16 autocast on CUDA.
        batch_size: images per backbone forward pass.
        num_workers: decode threads (default: one per core, at most 16).
        cache_dir: real-image embedding cache (default ``$DREAMBENCH_CACHE`` or ``<out>/../cache``).
        identifier: identifier removed from prompts for CLIP-T when the manifest has no ``prompt_plain``
            and the method's ``method.json`` names none.
        chunk_size: images per write of ``per_image.csv`` (default ``max(8 * batch_size, 256)``).
    """
    t0 = time.perf_counter()
    say = log or (lambda s: None)
    prof = get_metric_profile(metric_profile)
    mprof = get_profile(model_profile)
    images_dir, subjects_dir, out_dir = Path(images_dir), Path(subjects_dir), Path(out_dir)
    if not subjects_dir.is_dir():
        raise DataError(f"--subjects {subjects_dir}: folder not found (the dataset folder with one folder per subject)")
    manifest = read_manifest(images_dir)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    workers = num_workers or default_workers()
    chunk_size = chunk_size or max(8 * batch_size, 256)
    cache = EmbeddingCache(Path(cache_dir) if cache_dir is not None else default_cache_dir(out_dir))
    errors: list[ScoreError] = []

    identifiers = _method_identifiers(images_dir, manifest["method"].astype(str).unique(), identifier)
    rows = _validate_rows(manifest, images_dir, identifiers, errors)
    rows["method"] = rows["method"].astype(str)
    rows["subject"] = rows["subject"].astype(str)

    # Backbones. Labels: the model profile says whether weights are real; LPIPS may fall back to random.
    dino_bb, clip_bb = _build_backbones(prof, mprof, dino_weights, clip_weights)
    dino = ImageEncoder("dino", dino_bb, prof.dino.transform, dev)
    clip = ImageEncoder("clip", clip_bb, prof.clip.transform, dev)
    text_enc = TextEncoder(clip_bb, dev)
    lpips_model = Lpips(prof.div, mprof.pretrained_weights, dev, lpips_weights)
    backbone_label = mprof.weights_label
    div_label = _combine(backbone_label, "pretrained" if lpips_model.pretrained else "random-init")
    dino_id, clip_id = f"{dino_bb.name}@{dino_bb.weights_id}", f"{clip_bb.name}@{clip_bb.weights_id}"
    say(f"backbones: dino {dino_id}, clip {clip_id}, lpips {lpips_model.label} on {dev}")

    # Real images: embeddings (cached on disk) and real-vs-real statistics per subject.
    subjects = sorted(rows["subject"].unique())
    refs, bad_subjects = _reference_sets(subjects, subjects_dir, dino, clip, cache, prof, batch_size, workers,
                                         progress)
    real_embedded = dino.images  # nothing else has gone through the DINO tower yet
    if bad_subjects:
        bad_mask = rows["subject"].isin(list(bad_subjects))
        for r in rows[bad_mask].itertuples(index=False):
            errors.append(ScoreError(str(r.path), r.method, r.subject, int(r.prompt_index), bad_subjects[r.subject]))
        rows = rows[~bad_mask].reset_index(drop=True)
    if prof.pairing == "one":  # each image against one reference photo (metrics/pairing.py)
        rows = with_references(rows, {s: r.names for s, r in refs.items()}, lambda r, msg: errors.append(
            ScoreError(str(r["path"]), str(r["method"]), str(r["subject"]), int(r["prompt_index"]), msg)))

    # Derived columns, fresh from the manifest on every run.
    if "weights" in rows.columns:
        rows = rows.rename(columns={"weights": "gen_weights"})
    gen = rows["gen_weights"].astype(str) if "gen_weights" in rows.columns else pd.Series("pretrained", rows.index)
    rows["category"] = _categories(rows) if len(rows) else pd.Series(dtype=str)
    rows["metric_profile"] = prof.name
    rows["weights"] = [_combine(g, backbone_label) for g in gen]
    rows["dino_backbone"], rows["clip_backbone"] = dino_id, clip_id
    rows = rows.sort_values(["method", "subject", "prompt_index", "seed", "path"], kind="stable").reset_index(drop=True)

    # Resume: previous scores for identical rows, previous DIV for identical groups.
    out_dir.mkdir(parents=True, exist_ok=True)
    for c in SCORE_VALUE_COLUMNS:
        rows[c] = np.nan
    done = np.zeros(len(rows), dtype=bool)
    prev = _read_csv(out_dir / PER_IMAGE)
    if prev is not None and set(_RESUME_KEY + SCORE_VALUE_COLUMNS) <= set(prev.columns) and len(rows):
        prev = prev.drop_duplicates("path").astype({"path": str, "prompt": str})
        key = rows[_RESUME_KEY].astype({"path": str, "prompt": str}).reset_index()
        merged = key.merge(prev[_RESUME_KEY + SCORE_VALUE_COLUMNS], on=_RESUME_KEY, how="inner")
        merged = merged.dropna(subset=["dino", "clip_i", "clip_t"])
        rows.loc[merged["index"].to_numpy(), SCORE_VALUE_COLUMNS] = merged[SCORE_VALUE_COLUMNS].to_numpy()
        done[merged["index"].to_numpy()] = True

    group_cols = ["method", "subject", "prompt_index"]
    # .groups gives index labels (= positions in rows); .indices would be positions in the filtered frame
    regular = rows[rows["prompt_index"] != CLASS_PROMPT_INDEX].groupby(group_cols).groups
    div_groups = {(str(k[0]), str(k[1]), int(k[2])): np.asarray(v, dtype=int)
                  for k, v in regular.items() if len(v) >= 2}
    div_done: dict[tuple, dict] = {}
    prev_div = _read_csv(out_dir / "div.csv")
    if prev_div is not None and {"div", "n_images", "lpips", "metric_profile"} <= set(prev_div.columns):
        for r in prev_div.itertuples(index=False):
            k = (str(r.method), str(r.subject), int(r.prompt_index))
            if (k in div_groups and int(r.n_images) == len(div_groups[k]) and r.lpips == lpips_model.label
                    and r.metric_profile == prof.name and not pd.isna(r.div)):
                div_done[k] = {"div": float(r.div), "n_images": int(r.n_images), "n_pairs": int(r.n_pairs)}
    div_todo = {k: v for k, v in div_groups.items() if k not in div_done}
    done_at_start = done.copy()

    # Work list: whole groups in manifest order, so DIV is computed from the images a chunk decoded.
    needs_div = np.zeros(len(rows), dtype=bool)
    for v in div_todo.values():
        needs_div[v] = True
    work = np.flatnonzero(~done | needs_div)
    text_emb, text_index = _embed_texts(rows, ~done, text_enc)

    dino_g, clip_g, lp_g = dino.geometry, clip.geometry, lpips_model.geometry
    abspaths = rows["abspath"].tolist()
    subject_arr = rows["subject"].to_numpy()
    method_arr, pidx_arr = rows["method"].to_numpy(), rows["prompt_index"].to_numpy()

    def load(i: int):
        geoms = ([dino_g, clip_g] if not done[i] else []) + ([lp_g] if needs_div[i] else [])
        return decode(abspaths[i], list(dict.fromkeys(geoms)))

    failed = np.zeros(len(rows), dtype=bool)
    chunks = _chunks(rows, work, group_cols, chunk_size)
    n_new = int((~done).sum())
    say(f"{len(rows)} good rows: {int(done.sum())} already scored, {n_new} to score, {len(div_todo)} DIV groups "
        f"to compute; {len(errors)} bad rows")
    t_loop = time.perf_counter()
    stream = prefetch_map(load, work.tolist(), workers, ahead=max(4 * workers, chunk_size))
    bar = tqdm(total=len(work), desc="scoring", unit="img", disable=not progress)
    new_div: dict[tuple, dict] = {}
    timings = dict.fromkeys(("decode_wait_s", "embed_s", "div_s", "write_s"), 0.0)
    for chunk in chunks:
        decoded = {}
        tic = time.perf_counter()
        for _ in range(len(chunk)):
            i, res, err = next(stream)
            if err is None:
                decoded[i] = res
            else:
                failed[i] = True
                r = rows.iloc[i]
                errors.append(ScoreError(str(r["path"]), r["method"], r["subject"], int(r["prompt_index"]), str(err)))
            bar.update(1)
        tic = _tick(timings, "decode_wait_s", tic)
        emb_idx = np.array([i for i in chunk if not done[i] and i in decoded], dtype=int)
        if emb_idx.size:
            d = dino.embed(torch.stack([decoded[i][dino_g] for i in emb_idx]), batch_size)
            c = clip.embed(torch.stack([decoded[i][clip_g] for i in emb_idx]), batch_size)
            _score_rows(rows, emb_idx, d, c, text_emb[text_index[emb_idx]], subject_arr, refs, prof)
            done[emb_idx] = True
        tic = _tick(timings, "embed_s", tic)
        keys, groups = [], []
        for k in dict.fromkeys(zip(method_arr[chunk], subject_arr[chunk], pidx_arr[chunk])):
            k = (str(k[0]), str(k[1]), int(k[2]))
            ok = [i for i in div_todo.get(k, ()) if i in decoded]
            if len(ok) >= 2:
                keys.append((k, len(ok)))
                groups.append(stack_group([decoded[i][lp_g] for i in ok], k))
        for (k, n), (v, n_pairs) in zip(keys, lpips_model.groups_div(groups, batch_size)):
            new_div[k] = {"div": v, "n_images": n, "n_pairs": n_pairs}
        tic = _tick(timings, "div_s", tic)
        _write_csv(_per_image_frame(rows[done & ~failed], refs, prof), out_dir / PER_IMAGE)
        _write_csv(_div_frame(div_done | new_div, rows, prof.name, lpips_model.label), out_dir / "div.csv")
        _tick(timings, "write_s", tic)
    bar.close()
    loop_s = time.perf_counter() - t_loop
    scored_now = int((done & ~done_at_start & ~failed).sum())
    images_per_s = scored_now / loop_s if scored_now > 0 and loop_s > 0 else None

    # Final tables.
    per_image = _per_image_frame(rows[done & ~failed], refs, prof)
    div = _div_frame(div_done | new_div, rows, prof.name, lpips_model.label)
    _write_csv(per_image, out_dir / PER_IMAGE)
    _write_csv(div, out_dir / "div.csv")
    real = _real_frame(refs, subjects, prof)
    _write_csv(real, out_dir / "real.csv")

    per_subject = per_subject_table(per_image, div)
    real_long = real.melt(["subject"], ["dino", "clip_i"], var_name="metric", value_name="value").assign(
        method=REAL_METHOD).dropna(subset=["value"])
    per_subject_all = pd.concat([per_subject, real_long[["method", "subject", "metric", "value"]]], ignore_index=True)
    _write_csv(per_subject_all, out_dir / "per_subject.csv")
    labels = _labels(per_image, div_label, backbone_label)
    aggregates = aggregate_table(per_subject_all, labels, prof.name)
    _write_csv(aggregates, out_dir / "aggregates.csv")
    per_category = per_category_table(per_image, div)
    _write_csv(per_category, out_dir / "per_category.csv")
    paired = paired_table(per_subject)
    _write_csv(paired, out_dir / "paired.csv")
    err_df = pd.DataFrame([e.__dict__ for e in errors], columns=["path", "method", "subject", "prompt_index",
                                                                 "message"])
    _write_csv(err_df, out_dir / "errors.csv")

    stats = {"rows": len(manifest), "scored": len(per_image), "scored_now": scored_now,
             "reused": int(done_at_start.sum()), "errors": len(errors), "div_groups_now": len(new_div),
             "real_images_embedded": real_embedded, "cache_hits": cache.hits, "cache_misses": cache.misses,
             "dino_images": dino.images, "clip_images": clip.images, "texts": text_enc.texts}
    meta = {
        "metric_profile": prof.to_dict(),
        "model_profile": mprof.name,
        "weights": backbone_label,
        "backbones": {
            "dino": {"arch": prof.dino.arch, "name": dino_bb.name, "weights_id": dino_bb.weights_id,
                     "where": dino_bb.where, "digest": dino_bb.digest,
                     "weights_file": str(dino_weights) if dino_weights else None, "transform": prof.dino.transform.id},
            "clip": {"arch": prof.clip.arch, "tag": prof.clip.tag, "name": clip_bb.name,
                     "where": clip_bb.where, "digest": clip_bb.digest,
                     "weights_id": clip_bb.weights_id, "weights_file": str(clip_weights) if clip_weights else None,
                     "transform": prof.clip.transform.id},
            "lpips": {"net": prof.div.net, "trunk": lpips_model.label, "size": prof.div.size,
                      "weights": div_label, "weights_file": str(lpips_weights) if lpips_weights else None},
        },
        "sd": sd_sources(per_image),
        "images_dir": str(images_dir), "subjects_dir": str(subjects_dir), "cache_dir": str(cache.root),
        "device": str(dev), "dtype": "bfloat16-autocast" if dev.type == "cuda" else "float32",
        "batch_size": batch_size, "workers": workers,
        "dreambench_version": __version__, "git_commit": _git_commit(),
        "images_per_s": images_per_s, "loop_s": loop_s, "loop_timings_s": timings, "wall_s": time.perf_counter() - t0,
        "stats": stats, "bootstrap": BOOTSTRAP,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_text_atomic(out_dir / "score_meta.json", json.dumps(meta, indent=2, default=str) + "\n")
    return ScoreResult(out_dir, per_image, aggregates, div, real, per_category, paired, errors, meta, stats)


def _tick(timings: dict[str, float], key: str, since: float) -> float:
    now = time.perf_counter()
    timings[key] += now - since
    return now


def _embed_texts(rows: pd.DataFrame, mask: np.ndarray, enc: TextEncoder) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings of the distinct CLIP-T texts of the rows in ``mask`` (each text once) and, per row,
    the index of its text (-1 where not needed)."""
    index = np.full(len(rows), -1, dtype=int)
    texts = rows.loc[mask, "clip_t_text"].astype(str)
    if texts.empty:
        return np.zeros((1, 1), dtype=np.float32), index
    uniq, inv = np.unique(texts.to_numpy(), return_inverse=True)
    index[np.flatnonzero(mask)] = inv
    return enc.embed(list(uniq)), index


def _chunks(rows: pd.DataFrame, work: np.ndarray, group_cols: list[str], chunk_size: int) -> list[list[int]]:
    """Consecutive runs of ``work`` (row indices, rows sorted by group) of about ``chunk_size`` images,
    cut only between groups so that each DIV group is decoded within one chunk."""
    keys = list(zip(*(rows[c].to_numpy()[work] for c in group_cols))) if len(work) else []
    chunks, cur = [], []
    for n, i in enumerate(work.tolist()):
        if cur and len(cur) >= chunk_size and keys[n] != keys[n - 1]:
            chunks.append(cur)
            cur = []
        cur.append(i)
    if cur:
        chunks.append(cur)
    return chunks


def _score_rows(
    rows: pd.DataFrame, idx: np.ndarray, dino: np.ndarray, clip: np.ndarray, text: np.ndarray,
    subject_arr: np.ndarray, refs: dict[str, _Reference], prof: MetricProfile,
) -> None:
    """Fill the score columns of rows ``idx`` from their embeddings, one matrix product per subject."""
    subj = subject_arr[idx]
    for s in np.unique(subj):
        m = subj == s
        ref = refs[s]
        pick = [ref.names.index(n) for n in rows.loc[idx[m], "reference"]] if prof.pairing == "one" else None
        rows.loc[idx[m], "dino"] = prof.scale("dino").apply(F.cosine_to_reference(dino[m], ref.dino, pick))
        rows.loc[idx[m], "max_dino_real"] = prof.scale("dino").apply(F.max_cosine_to_reference(dino[m], ref.dino))
        rows.loc[idx[m], "clip_i"] = prof.scale("clip_i").apply(F.cosine_to_reference(clip[m], ref.clip, pick))
        rows.loc[idx[m], "clip_t"] = prof.scale("clip_t").apply(F.rowwise_cosine(clip[m], text[m]))


_DROP = {"abspath", "copy_flag"}
_TAIL = ["clip_t_text", "dino", "clip_i", "clip_t", "max_dino_real", "copy_flag", "metric_profile", "weights",
         "dino_backbone", "clip_backbone"]


def _per_image_frame(sub: pd.DataFrame, refs: dict[str, _Reference], prof: MetricProfile) -> pd.DataFrame:
    """The per_image.csv table of scored rows, with the copy flag from the subject's real-vs-real level
    (both on the profile's DINO scale)."""
    sub = sub.copy()
    level = sub["subject"].map({s: float(prof.scale("dino").apply(r.copy_level)) for s, r in refs.items()})
    sub["copy_flag"] = F.copy_flags(sub["max_dino_real"].to_numpy(), level.to_numpy(dtype=np.float64))
    head = MANIFEST_COLUMNS + [c for c in MANIFEST_OPTIONAL if c in sub.columns and c != "weights"]
    head += [c for c in ("gen_weights",) if c in sub.columns]
    extra = [c for c in sub.columns if c not in head and c not in _TAIL and c not in _DROP]
    return sub[head + extra + _TAIL].reset_index(drop=True)


def _div_frame(divs: dict[tuple, dict], rows: pd.DataFrame, profile_name: str, lpips_label: str) -> pd.DataFrame:
    cats = rows.groupby(["method", "subject", "prompt_index"])["category"].first().to_dict() if len(rows) else {}
    recs = [{"method": k[0], "subject": k[1], "prompt_index": k[2], "div": v["div"], "n_images": v["n_images"],
             "n_pairs": v["n_pairs"], "category": cats.get(k, ""), "lpips": lpips_label,
             "metric_profile": profile_name} for k, v in sorted(divs.items())]
    return pd.DataFrame(recs, columns=["method", "subject", "prompt_index", "div", "n_images", "n_pairs",
                                       "category", "lpips", "metric_profile"])


def _real_frame(refs: dict[str, _Reference], subjects: list[str], prof: MetricProfile) -> pd.DataFrame:
    """Real Images per subject: mean over ordered pairs i != j of distinct real images."""
    recs = [{"subject": s, "dino": float(prof.scale("dino").apply(refs[s].dino_mean)),
             "clip_i": float(prof.scale("clip_i").apply(refs[s].clip_mean)), "n_pairs": refs[s].n_pairs,
             "n_images": len(refs[s].dino),
             "copy_reference": float(prof.scale("dino").apply(refs[s].copy_level))}
            for s in subjects if s in refs]
    return pd.DataFrame(recs, columns=["subject", "dino", "clip_i", "n_pairs", "n_images", "copy_reference"])


def _labels(per_image: pd.DataFrame, div_label: str, backbone_label: str) -> dict[tuple[str, str], str]:
    """Weights label per (method, metric): random-init when the generator or a metric network was."""
    out = {}
    for method, g in per_image.groupby("method"):
        lbl = _combine(*g["weights"].astype(str).unique())
        for metric in ("dino", "clip_i", "clip_t", "pres"):
            out[(method, metric)] = lbl
        out[(method, "div")] = _combine(lbl, div_label)
    for metric in ("dino", "clip_i"):
        out[(REAL_METHOD, metric)] = backbone_label
    return out
