"""``score_folder``: score an images folder against the real subject images and write the results folder.

Reads ``<images>/manifest.csv`` (or the per-(method, subject) parts) and the real photos in
``<subjects>/<subject>/``; writes into ``out_dir`` (the contract read by tables, reports and the engine):

- ``per_image.csv``: the manifest columns (the manifest's ``weights`` renamed ``gen_weights``) plus
  ``clip_t_text`` (the identifier-free text CLIP-T used), ``dino``, ``clip_i``, ``clip_t``,
  ``max_dino_real``, ``copy_flag``, ``metric_profile``, ``weights`` (``random-init`` when the generator
  or the metric backbones were random-init, else ``pretrained``), ``dino_backbone``, ``clip_backbone``
  (name@origin:digest), ``image_sha256``, ``real_set``, ``score_key`` and the provenance columns. Rows with ``prompt_index == -1`` are class-prompt samples: ``dino`` is their PRES.
- ``div.csv``: method, subject, prompt_index, div, n_images, n_pairs, lpips, metric_profile, div_key.
- ``real.csv``: subject, dino, clip_i, n_pairs, n_images, copy_reference (Real Images upper bound),
  real_set, real_key.
- ``per_subject.csv``: method, subject, metric, value (the per-subject means everything is built on).
- ``aggregates.csv``, ``per_category.csv``, ``paired.csv``, ``errors.csv``, ``score_meta.json``.

Content-addressed: a per-image score is reused from the previous ``per_image.csv`` only when its
``score_key`` is unchanged, the hash of the image bytes (``image_sha256``), the subject's real-photo
set (``real_set``: names and bytes), the CLIP-T text, the metric profile and the DINO/CLIP weights
(``dino_backbone``/``clip_backbone``: name@origin:digest of the tensor bytes, cached in
``<cache>/digests.json``). A DIV group is reused when its ``div_key`` (member images' hashes, profile,
LPIPS trunk) is unchanged, a real.csv row when its ``real_key`` (real set, profile, weights) is. So a
re-run after any change re-scores exactly what changed, and a re-run with nothing changed builds no
model at all (``stats.backbones_built == 0``). ``per_image.csv`` and ``div.csv`` are rewritten
atomically after every chunk, so an interrupted run loses at most one chunk.

Provenance: every file carries ``metric_profile``, ``weights``, ``sd_source``, ``sd_digest``,
``method_identity`` (the method's provider, version and revision or code digest; these three from the
manifest rows the subject job wrote, see :mod:`dreambench.provenance`), ``dino_backbone``,
``clip_backbone`` and ``dreambench_version``; ``score_meta.json`` has ``methods`` (label -> identity).

Per subject: ``score_folder(..., only=(label, subject))`` scores one manifest part into
``<scores>/parts/<label>/<subject>`` and :func:`merge_scores` combines the current parts into the files
above, listing absent or stale parts in ``missing.csv`` (method, subject, reason).

Bad input (a manifest row whose file is missing or cannot be decoded, an empty prompt, a duplicate
path, a subject whose real-image folder is missing, empty or holds an unreadable image) is reported in
``errors.csv`` and skipped; every good row is still scored and saved. :attr:`ScoreResult.errors` lists
them; the CLI exits non-zero when there are any.
"""

from __future__ import annotations

import dataclasses
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
from ..io import atomic_path, write_text_atomic
from ..models import Backbone, build_clip, build_dino, get_profile
from ..paths import REPO_DIR
from ..provenance import method_identities, sd_sources
from ..schema import CLASS_PROMPT_INDEX, MANIFEST_COLUMNS, MANIFEST_OPTIONAL, PER_IMAGE
from . import functional as F
from .aggregate import (
    BOOTSTRAP,
    aggregate_table,
    paired_table,
    per_category_table,
    per_subject_table,
)
from .decode import decode, default_workers, prefetch_map
from .embed import (
    EmbeddingCache,
    ImageEncoder,
    Lpips,
    TextEncoder,
    embed_reference_images,
    lpips_trunk_label,
    stack_group,
    trunk_is_pretrained,
)
from .keys import (  # noqa: F401  (CACHE_ENV, strip_identifier, merged_current: re-exported)
    CACHE_ENV,
    NO_MODEL,
    PARTS,
    UNKNOWN,
    ScoreError,
    TowerIds,
    Work,
    default_cache_dir,
    digests,
    drop_subjects,
    inputs_current,
    lib_version,
    merged_current,
    part_current,
    part_dir,
    prepare,
    read_csv_or_none,
    short_hash,
    strip_identifier,
    weights_kwargs,
)
from .profiles import COPY_REFERENCES, MetricProfile, get_metric_profile

REAL_METHOD = "real-images"


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


# ---------------------------------------------------------------------------------------------------------
# Input validation


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


# ---------------------------------------------------------------------------------------------------------
# Building towers only when a number must be computed


class Towers(TowerIds):
    """:class:`~.keys.TowerIds` that builds the DINO and CLIP towers when some number must be computed
    (a resume with nothing to do builds none). Built towers get ``weights_id = origin:digest``; ``shared``
    (a dict the caller keeps) lets a worker reuse them across jobs."""

    def __init__(self, *args, shared: dict | None = None):
        super().__init__(*args)
        self.shared, self.built, self._bbs = shared, 0, {}

    def backbone(self, kind: str) -> Backbone:
        if kind not in self._bbs:
            origin, ckey = self.spec(kind)
            bb = self.shared.get((kind, ckey)) if self.shared is not None else None
            if bb is None:
                if kind == "dino":
                    bb = build_dino(self.mprof, self.prof.dino.arch, self.dino_weights)
                else:
                    bb = build_clip(self.mprof, self.prof.clip.arch, self.prof.clip.tag, self.clip_weights)
                self.built += 1
                bb = dataclasses.replace(bb, weights_id=f"{origin}:{self.digest(kind, bb.model)}")
                if self.shared is not None:
                    self.shared[(kind, ckey)] = bb
            self._bbs[kind] = bb
        return self._bbs[kind]

    def build_id(self, kind: str) -> str:
        bb = self.backbone(kind)
        return f"{bb.name}@{bb.weights_id}"


def _combine(*labels: str) -> str:
    return "random-init" if any(lbl != "pretrained" for lbl in labels) else "pretrained"


# ---------------------------------------------------------------------------------------------------------
# The scorer


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
    only: tuple[str, str] | None = None,
    towers: dict | None = None,
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
        cache_dir: real-image embedding and weight-digest cache (default ``$DREAMBENCH_CACHE`` or
            ``<out>/../cache``).
        identifier: identifier removed from prompts for CLIP-T when the manifest has no ``prompt_plain``
            and the method's ``method.json`` names none.
        chunk_size: images per write of ``per_image.csv`` (default ``max(8 * batch_size, 256)``).
        only: ``(label, subject)``: score only that manifest part and write only per_image.csv, div.csv,
            real.csv, errors.csv and score_meta.json (a part that :func:`merge_scores` combines).
        towers: a dict kept by the caller in which built backbones are shared across calls.
    """
    t0 = time.perf_counter()
    say = log or (lambda s: None)
    prof = get_metric_profile(metric_profile)
    mprof = get_profile(model_profile)
    images_dir, subjects_dir, out_dir = Path(images_dir), Path(subjects_dir), Path(out_dir)
    if not subjects_dir.is_dir():
        raise DataError(f"--subjects {subjects_dir}: folder not found (the dataset folder with one folder per subject)")
    workers = num_workers or default_workers()
    chunk_size = chunk_size or max(8 * batch_size, 256)
    cache = EmbeddingCache(Path(cache_dir) if cache_dir is not None else default_cache_dir(out_dir))
    tw = Towers(prof, mprof, dino_weights, clip_weights, digests(cache_dir, out_dir), shared=towers)
    lpips_label = lpips_trunk_label(prof.div, mprof.pretrained_weights, lpips_weights)
    w = prepare(images_dir, subjects_dir, out_dir, prof, tw, lpips_label, identifier, only)
    rows, errors, done = w.rows, w.errors, w.done
    assert w.ids is not None
    dino_id, clip_id = w.ids
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))

    # Derived columns, fresh from the manifest on every run.
    if "weights" in rows.columns:
        rows = rows.rename(columns={"weights": "gen_weights"})
    gen = rows["gen_weights"].astype(str) if "gen_weights" in rows.columns else pd.Series("pretrained", rows.index)
    rows["category"] = _categories(rows) if len(rows) else pd.Series(dtype=str)
    rows["metric_profile"] = prof.name
    backbone_label = mprof.weights_label
    rows["weights"] = [_combine(g, backbone_label) for g in gen]
    rows["dino_backbone"], rows["clip_backbone"] = dino_id, clip_id
    no_sd = (gen == "real").to_numpy()  # images no SD model made (real photos): "none", not "unknown"
    for c in ("sd_source", "sd_digest"):
        vals = rows[c].astype(str) if c in rows.columns else pd.Series("", rows.index, dtype=str)
        rows[c] = np.where(vals != "", vals, np.where(no_sd, NO_MODEL, UNKNOWN))
    # The method's provider, version and code (methods.identity); unknown for images made before it was recorded.
    ident = rows["method_identity"].astype(str) if "method_identity" in rows.columns else pd.Series("", rows.index)
    rows["method_identity"] = np.where(ident != "", ident, UNKNOWN)
    rows["dreambench_version"] = __version__
    div_label = _combine(backbone_label, "pretrained" if trunk_is_pretrained(lpips_label) else "random-init")

    div_todo = {k: v for k, v in w.div_groups.items() if k not in w.div_done}
    real_todo = [s for s in w.real_sets if s not in w.real_done]
    need_refs = sorted(set(rows.loc[~done, "subject"]) | set(real_todo))
    out_dir.mkdir(parents=True, exist_ok=True)
    done_at_start = done.copy()
    lpips_model = Lpips(prof.div, mprof.pretrained_weights, dev, lpips_weights)
    if not need_refs and not div_todo:
        say(f"nothing to score: {len(rows)} rows, {len(w.div_groups)} DIV groups and {len(w.real_sets)} real "
            f"sets are current (no model built)")
        refs: dict[str, _Reference] = {}
        dino = clip = text_enc = None
    else:
        dino = ImageEncoder("dino", tw.backbone("dino"), prof.dino.transform, dev)
        clip = ImageEncoder("clip", tw.backbone("clip"), prof.clip.transform, dev)
        text_enc = TextEncoder(tw.backbone("clip"), dev)
        say(f"backbones: dino {dino_id}, clip {clip_id}, lpips {lpips_label} on {dev}")
        refs, bad = _reference_sets(need_refs, w.real_sets, dino, clip, cache, prof, batch_size, workers, progress)
        if bad:
            keep = ~rows["subject"].isin(list(bad)).to_numpy()
            rows = drop_subjects(rows, bad, errors)
            done = done[keep]
            done_at_start = done_at_start[keep]
            real_todo = [s for s in real_todo if s not in bad]
            w.real_done = {s: r for s, r in w.real_done.items() if s not in bad}
            regular = rows[rows["prompt_index"] != CLASS_PROMPT_INDEX].groupby(["method", "subject", "prompt_index"]).groups
            groups = {(str(k[0]), str(k[1]), int(k[2])): np.asarray(v, dtype=int) for k, v in regular.items() if len(v) >= 2}
            div_todo = {k: v for k, v in groups.items() if k not in w.div_done}
            w.div_done = {k: v for k, v in w.div_done.items() if k in groups}
    real_embedded = dino.images if dino is not None else 0
    levels = {s: float(prof.scale("dino").apply(r.copy_level)) for s, r in refs.items()}
    levels.update({s: float(r["copy_reference"]) for s, r in w.real_done.items()})

    loop = _score_loop(rows, done, div_todo, dino, clip, text_enc, lpips_model, refs, levels, prof, w,
                       batch_size, workers, chunk_size, progress, out_dir, lpips_label, say, errors)
    failed, new_div, timings, loop_s = loop
    done = done & ~failed
    scored_now = int((done & ~done_at_start).sum())
    images_per_s = scored_now / loop_s if scored_now > 0 and loop_s > 0 else None

    per_image = _per_image_frame(rows[done], levels)
    div = _div_frame(w.div_done | new_div, rows, prof.name, lpips_label, w.div_keys)
    real = _real_frame(refs, w, prof, sorted(w.real_sets))
    err_df = pd.DataFrame([e.__dict__ for e in errors], columns=["path", "method", "subject", "prompt_index",
                                                                 "message"])
    stats = {"rows": w.n_manifest, "scored": len(per_image),
             "scored_now": scored_now, "reused": int(done_at_start.sum()), "errors": len(errors),
             "div_groups_now": len(new_div), "div_groups_reused": len(w.div_done), "real_now": len(real_todo),
             "real_reused": len(w.real_done), "real_images_embedded": real_embedded, "cache_hits": cache.hits,
             "cache_misses": cache.misses, "backbones_built": tw.built, "lpips_built": lpips_model._model is not None,
             "dino_images": dino.images if dino else 0, "clip_images": clip.images if clip else 0,
             "texts": text_enc.texts if text_enc else 0}
    meta = {
        "metric_profile": prof.to_dict(), "metric_profile_key": w.profile_key,
        "model_profile": mprof.name,
        "weights": backbone_label,
        "backbones": {
            "dino": {"arch": prof.dino.arch, **_tower_meta(dino_id, dino_weights), "transform": prof.dino.transform.id},
            "clip": {"arch": prof.clip.arch, "tag": prof.clip.tag, **_tower_meta(clip_id, clip_weights),
                     "transform": prof.clip.transform.id},
            "lpips": {"net": prof.div.net, "trunk": lpips_label, "size": prof.div.size, "weights": div_label,
                      "version": lib_version("lpips"), "weights_file": str(lpips_weights) if lpips_weights else None},
        },
        "sd": sd_sources(per_image),
        "methods": method_identities(per_image),
        "labels": {"backbone": backbone_label, "div": div_label},
        "images_dir": str(images_dir), "subjects_dir": str(subjects_dir), "cache_dir": str(cache.root),
        "device": str(dev), "dtype": "bfloat16-autocast" if dev.type == "cuda" else "float32",
        "batch_size": batch_size, "workers": workers,
        "dreambench_version": __version__, "git_commit": _git_commit(),
        "images_per_s": images_per_s, "loop_s": loop_s, "loop_timings_s": timings,
        "stats": stats, "bootstrap": BOOTSTRAP, "part": list(only) if only else None,
        "content_key": short_hash([sorted(per_image["score_key"]), sorted(div["div_key"]), sorted(real["real_key"])]),
    }
    if only is not None:
        _write_core(out_dir, per_image, div, real, err_df)
        meta["wall_s"] = time.perf_counter() - t0
        meta["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        write_text_atomic(out_dir / "score_meta.json", json.dumps(meta, indent=2, default=str) + "\n")
        return ScoreResult(out_dir, per_image, pd.DataFrame(), div, real, pd.DataFrame(), pd.DataFrame(), errors,
                           meta, stats)
    return finalize_scores(out_dir, per_image, div, real, err_df, errors, meta, t0)


_WHERE = {"file": "file", "pretrained": "hub cache"}


def _tower_meta(tower_id: str, weights_file) -> dict:
    """score_meta.json's description of a tower from its id ``name@origin:digest``."""
    name, wid = tower_id.split("@", 1)
    origin, _, digest = wid.rpartition(":")
    return {"name": name, "weights_id": wid, "where": _WHERE.get(origin, "random-init"), "digest": digest,
            "weights_file": str(weights_file) if weights_file else None}


def _write_core(out_dir: Path, per_image: pd.DataFrame, div: pd.DataFrame, real: pd.DataFrame,
                err_df: pd.DataFrame) -> None:
    _write_csv(per_image, out_dir / PER_IMAGE)
    _write_csv(div, out_dir / "div.csv")
    _write_csv(real, out_dir / "real.csv")
    _write_csv(err_df, out_dir / "errors.csv")


def _reference_sets(
    subjects: list[str], real_sets: dict, dino: ImageEncoder, clip: ImageEncoder, cache: EmbeddingCache,
    profile: MetricProfile, batch_size: int, workers: int, progress: bool,
) -> tuple[dict[str, _Reference], dict[str, str]]:
    refs, bad = {}, {}
    reduce = COPY_REFERENCES[profile.copy_reference]
    for s in tqdm(subjects, desc="real images", unit="subject", disable=not progress, leave=False):
        try:
            d, c = embed_reference_images(real_sets[s][0], [dino, clip], cache, batch_size=batch_size,
                                          workers=workers)
        except DataError as e:
            bad[s] = f"real image unusable, subject skipped: {e}"
            continue
        dm, n_pairs = F.real_pairs_mean(d)
        cm, _ = F.real_pairs_mean(c)
        refs[s] = _Reference(d, c, dm, cm, n_pairs, F.real_pairs_stat(d, reduce),
                             tuple(p.name for p in real_sets[s][0]))
    return refs, bad


def _score_loop(rows, done, div_todo, dino, clip, text_enc, lpips_model, refs, levels, prof, w, batch_size,
                workers, chunk_size, progress, out_dir, lpips_label, say, errors):
    """Embed and score the rows not done and compute the DIV groups to do, in chunks of whole groups,
    rewriting per_image.csv and div.csv after each chunk. Returns (failed, new_div, timings, loop_s)."""
    group_cols = ["method", "subject", "prompt_index"]
    needs_div = np.zeros(len(rows), dtype=bool)
    for v in div_todo.values():
        needs_div[v] = True
    work = np.flatnonzero(~done | needs_div)
    failed = np.zeros(len(rows), dtype=bool)
    new_div: dict[tuple, dict] = {}
    timings = dict.fromkeys(("decode_wait_s", "embed_s", "div_s", "write_s"), 0.0)
    if not len(work):
        return failed, new_div, timings, 0.0
    text_emb, text_index = _embed_texts(rows, ~done, text_enc) if (~done).any() else (None, None)
    geo = [dino.geometry, clip.geometry] if dino is not None else []
    lp_g = lpips_model.geometry
    abspaths = rows["abspath"].tolist()
    subject_arr = rows["subject"].to_numpy()
    method_arr, pidx_arr = rows["method"].to_numpy(), rows["prompt_index"].to_numpy()

    def load(i: int):
        geoms = (geo if not done[i] else []) + ([lp_g] if needs_div[i] else [])
        return decode(abspaths[i], list(dict.fromkeys(geoms)))

    say(f"{len(rows)} good rows: {int(done.sum())} already scored, {int((~done).sum())} to score, "
        f"{len(div_todo)} DIV groups to compute; {len(errors)} bad rows")
    t_loop = time.perf_counter()
    stream = prefetch_map(load, work.tolist(), workers, ahead=max(4 * workers, chunk_size))
    bar = tqdm(total=len(work), desc="scoring", unit="img", disable=not progress)
    for chunk in _chunks(rows, work, group_cols, chunk_size):
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
            d = dino.embed(torch.stack([decoded[i][geo[0]] for i in emb_idx]), batch_size)
            c = clip.embed(torch.stack([decoded[i][geo[1]] for i in emb_idx]), batch_size)
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
        _write_csv(_per_image_frame(rows[done & ~failed], levels), out_dir / PER_IMAGE)
        _write_csv(_div_frame(w.div_done | new_div, rows, prof.name, lpips_label, w.div_keys), out_dir / "div.csv")
        _tick(timings, "write_s", tic)
    bar.close()
    return failed, new_div, timings, time.perf_counter() - t_loop


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
_TAIL = ["clip_t_text", "dino", "clip_i", "clip_t", "max_dino_real", "copy_flag", "image_sha256", "real_set",
         "score_key", "metric_profile", "weights", "sd_source", "sd_digest", "method_identity", "dino_backbone",
         "clip_backbone", "dreambench_version"]
#: Provenance columns of every score file (per method where the file has a method, else the run's).
PROVENANCE = ["metric_profile", "weights", "sd_source", "sd_digest", "method_identity", "dino_backbone",
              "clip_backbone", "dreambench_version"]
#: Provenance columns that differ per method label.
_PER_METHOD = ("sd_source", "sd_digest", "method_identity", "weights")


def _per_image_frame(sub: pd.DataFrame, levels: dict[str, float]) -> pd.DataFrame:
    """The per_image.csv table of scored rows, with the copy flag from the subject's real-vs-real level
    (``levels``: per subject, on the profile's DINO scale)."""
    sub = sub.copy()
    level = sub["subject"].map(levels)
    sub["copy_flag"] = F.copy_flags(sub["max_dino_real"].to_numpy(), level.to_numpy(dtype=np.float64))
    head = MANIFEST_COLUMNS + [c for c in MANIFEST_OPTIONAL if c in sub.columns and c != "weights"]
    head += [c for c in ("gen_weights",) if c in sub.columns]
    extra = [c for c in sub.columns if c not in head and c not in _TAIL and c not in _DROP]
    return sub[head + extra + _TAIL].reset_index(drop=True)


_DIV_COLUMNS = ["method", "subject", "prompt_index", "div", "n_images", "n_pairs", "category", "lpips",
                "metric_profile", "div_key"]


def _div_frame(divs: dict[tuple, dict], rows: pd.DataFrame, profile_name: str, lpips_label: str,
               div_keys: dict[tuple, str]) -> pd.DataFrame:
    cats = rows.groupby(["method", "subject", "prompt_index"])["category"].first().to_dict() if len(rows) else {}
    recs = [{"method": k[0], "subject": k[1], "prompt_index": k[2], "div": v["div"], "n_images": v["n_images"],
             "n_pairs": v["n_pairs"], "category": cats.get(k, ""), "lpips": lpips_label,
             "metric_profile": profile_name, "div_key": div_keys[k]} for k, v in sorted(divs.items()) if k in div_keys]
    return pd.DataFrame(recs, columns=_DIV_COLUMNS)


_REAL_COLUMNS = ["subject", "dino", "clip_i", "n_pairs", "n_images", "copy_reference", "real_set", "real_key"]


def _real_frame(refs: dict[str, _Reference], w: Work, prof: MetricProfile, subjects: list[str]) -> pd.DataFrame:
    """Real Images per subject: mean over ordered pairs i != j of distinct real images (new or reused)."""
    recs = []
    ids = w.ids or ("?", "?")
    for s in subjects:
        if s in refs:
            r = refs[s]
            set_key = w.real_sets[s][1]
            recs.append({"subject": s, "dino": float(prof.scale("dino").apply(r.dino_mean)),
                         "clip_i": float(prof.scale("clip_i").apply(r.clip_mean)), "n_pairs": r.n_pairs,
                         "n_images": len(r.dino), "copy_reference": float(prof.scale("dino").apply(r.copy_level)),
                         "real_set": set_key, "real_key": short_hash([set_key, w.profile_key, *ids])})
        elif s in w.real_done:
            recs.append({c: w.real_done[s][c] for c in _REAL_COLUMNS})
    return pd.DataFrame(recs, columns=_REAL_COLUMNS)


def _run_provenance(per_image: pd.DataFrame, meta: dict) -> dict[str, str]:
    """The provenance of a whole scores folder (files without a method column: real, paired)."""
    def joined(col: str, default: str) -> str:
        vals = sorted({str(v) for v in per_image[col] if str(v) not in ("", NO_MODEL)}) if col in per_image else []
        return ",".join(vals) or default

    bb = meta["backbones"]
    return {"metric_profile": meta["metric_profile"]["name"],
            "weights": _combine(meta["weights"], *per_image["weights"].astype(str).unique()) if len(per_image)
            else meta["weights"],
            "sd_source": joined("sd_source", NO_MODEL), "sd_digest": joined("sd_digest", NO_MODEL),
            "method_identity": joined("method_identity", UNKNOWN),
            "dino_backbone": f"{bb['dino']['name']}@{bb['dino']['weights_id']}",
            "clip_backbone": f"{bb['clip']['name']}@{bb['clip']['weights_id']}",
            "dreambench_version": __version__}


def _stamp(df: pd.DataFrame, per_image: pd.DataFrame, run: dict[str, str], method_col: str | None = "method",
           weights: dict | None = None) -> pd.DataFrame:
    """``df`` with the PROVENANCE columns: per method (from per_image) where it has ``method_col``, else the
    run's; an existing ``weights`` column (the per-metric label) is kept."""
    df = df.copy()
    by_method: dict[str, dict] = {}
    if method_col and len(per_image):
        for m, g in per_image.groupby("method"):
            by_method[str(m)] = {**{c: ",".join(sorted(g[c].astype(str).unique()))
                                    for c in ("sd_source", "sd_digest", "method_identity") if c in g},
                                 "weights": _combine(*g["weights"].astype(str).unique())}
    for col in PROVENANCE:
        if col in df.columns and col in ("weights", "metric_profile"):
            continue
        if method_col and col in _PER_METHOD and len(df):
            df[col] = [by_method.get(str(m), run).get(col, run[col]) for m in df[method_col]]
        else:
            df[col] = run[col]
    return df


def finalize_scores(out_dir: Path, per_image: pd.DataFrame, div: pd.DataFrame, real: pd.DataFrame,
                    err_df: pd.DataFrame, errors: list[ScoreError], meta: dict, t0: float) -> ScoreResult:
    """Write the per-image, DIV and real tables and everything derived from them (per_subject, aggregates,
    per_category, paired, errors, score_meta.json, and missing.csv when parts are missing), each with the
    provenance columns."""
    run = _run_provenance(per_image, meta)
    div = _stamp(div, per_image, run)
    real_out = _stamp(real, per_image, run, None)
    real_out["weights"] = meta["labels"]["backbone"]
    _write_core(out_dir, per_image, div, real_out, err_df)
    per_subject = per_subject_table(per_image, div, real)
    real_long = real.melt(["subject"], ["dino", "clip_i"], var_name="metric", value_name="value").assign(
        method=REAL_METHOD).dropna(subset=["value"])
    per_subject_all = pd.concat([per_subject, real_long[["method", "subject", "metric", "value"]]], ignore_index=True)
    _write_csv(_stamp(per_subject_all, per_image, run), out_dir / "per_subject.csv")
    labels = _labels(per_image, meta["labels"]["div"], meta["labels"]["backbone"])
    aggregates = _stamp(aggregate_table(per_subject_all, labels, run["metric_profile"]), per_image, run)
    _write_csv(aggregates, out_dir / "aggregates.csv")
    per_category = _stamp(per_category_table(per_image, div), per_image, run)
    _write_csv(per_category, out_dir / "per_category.csv")
    paired = _stamp(paired_table(per_subject), per_image, run, None)
    _write_csv(paired, out_dir / "paired.csv")
    missing = pd.DataFrame(meta.get("missing") or [], columns=["method", "subject", "reason"])
    if len(missing) or (out_dir / MISSING).is_file():
        _write_csv(missing, out_dir / MISSING)
    meta = {**meta, "provenance": run, "wall_s": time.perf_counter() - t0,
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    write_text_atomic(out_dir / "score_meta.json", json.dumps(meta, indent=2, default=str) + "\n")
    return ScoreResult(out_dir, per_image, aggregates, div, real_out, per_category, paired, errors, meta,
                       meta.get("stats", {}))


MISSING = "missing.csv"


def merge_scores(scores_dir: str | Path, parts: list[tuple[str, str]], images_dir: str | Path,
                 subjects_dir: str | Path, *, metric_profile: str = "paper", model_profile: str = "sd15",
                 metric_weights: dict | None = None, log: Callable[[str], None] | None = None) -> ScoreResult:
    """Combine the current score parts of ``parts`` into ``scores_dir`` (per_image, div, real and all
    derived files). A part that is absent or no longer matches its inputs (its subject job failed, or
    it was not re-scored) is left out and listed in missing.csv and score_meta.json's ``missing``."""
    t0 = time.perf_counter()
    say = log or (lambda s: None)
    scores_dir = Path(scores_dir)
    frames: dict[str, list[pd.DataFrame]] = {"per_image": [], "div": [], "real": [], "errors": []}
    missing, used, metas = [], {}, []
    for label, subject in parts:
        d = part_dir(scores_dir, label, subject)
        ok, why = part_current(scores_dir, images_dir, subjects_dir, label, subject, metric_profile=metric_profile,
                               model_profile=model_profile, metric_weights=metric_weights)
        if not ok:
            missing.append({"method": label, "subject": subject, "reason": why})
            continue
        meta = json.loads((d / "score_meta.json").read_text())
        if not meta["stats"]["scored"]:
            errs = read_csv_or_none(d / "errors.csv")
            first = str(errs["message"].iloc[0]) if errs is not None and len(errs) else "no image scored"
            missing.append({"method": label, "subject": subject, "reason": first})
            continue
        metas.append(meta)
        used[f"{label}/{subject}"] = meta["content_key"]
        for name, fname in (("per_image", PER_IMAGE), ("div", "div.csv"), ("real", "real.csv"),
                            ("errors", "errors.csv")):
            df = read_csv_or_none(d / fname)
            if df is not None and len(df):
                frames[name].append(df)
    if not metas:
        raise DataError(f"{scores_dir}: no current score part to merge ({len(missing)} missing)")
    cat = {k: pd.concat(v, ignore_index=True) if v else None for k, v in frames.items()}
    per_image = cat["per_image"] if cat["per_image"] is not None else pd.DataFrame()
    per_image = per_image.astype({"method": str, "subject": str}).sort_values(
        ["method", "subject", "prompt_index", "seed", "path"], kind="stable").reset_index(drop=True)
    div = cat["div"] if cat["div"] is not None else pd.DataFrame(columns=_DIV_COLUMNS)
    div = div.astype({"method": str, "subject": str}).sort_values(["method", "subject", "prompt_index"]).reset_index(drop=True)
    real = cat["real"] if cat["real"] is not None else pd.DataFrame(columns=_REAL_COLUMNS)
    real = real.astype({"subject": str}).drop_duplicates("subject").sort_values("subject").reset_index(drop=True)
    err_df = cat["errors"] if cat["errors"] is not None else pd.DataFrame(
        columns=["path", "method", "subject", "prompt_index", "message"])
    errors = [ScoreError(str(r.path), str(r.method), str(r.subject), r.prompt_index, str(r.message))
              for r in err_df.itertuples(index=False)]
    meta = {k: v for k, v in metas[0].items() if k not in ("part", "content_key", "stats", "wall_s", "finished_at")}
    if len(per_image):  # parts scored before identities were recorded have no such column
        per_image["method_identity"] = per_image.get("method_identity", pd.Series(UNKNOWN, per_image.index)) \
            .fillna(UNKNOWN)
    meta.update(parts=used, missing=missing, images_dir=str(images_dir), git_commit=_git_commit(),
                stats={"scored": len(per_image), "parts": len(used), "missing": len(missing)},
                sd=sd_sources(per_image), methods=method_identities(per_image))
    say(f"merged {len(used)} score part(s) into {scores_dir}; {len(missing)} missing")
    return finalize_scores(scores_dir, per_image, div, real, err_df, errors, meta, t0)


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
