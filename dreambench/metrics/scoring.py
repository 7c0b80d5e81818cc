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

Code, one job per module: :mod:`.inputs` (manifest reading and validation), :mod:`.keys` (content keys,
hashes only), :mod:`.reuse` (what the previous outputs already hold), :mod:`.parts` (the parts layout and
freshness), :mod:`.towers` (building towers on demand), :mod:`.outputs` (frames, provenance, writers),
:mod:`.merge` (the merge); here the scorer itself, :class:`ScoringRun`, in numbered steps. Which metrics
the aggregated files hold is declared in :mod:`.registry`.

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
from ..io import write_text_atomic
from ..models import get_profile
from ..protocol import load_protocol
from ..provenance import method_identities, sd_sources
from ..schema import PER_IMAGE
from . import functional as F
from .aggregate import BOOTSTRAP
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
from .inputs import ScoreError, drop_subjects, strip_identifier, unscored_pairs  # noqa: F401  (strip_identifier: the tests import it here)
from .keys import default_cache_dir, digests, lib_version, short_hash
from .merge import merge_scores  # noqa: F401  (re-exported: the engine's merge job imports it from here)
from .outputs import (  # noqa: F401  (PROVENANCE: re-exported for the tests that import it from here)
    ERROR_COLUMNS,
    NO_MODEL,
    PROVENANCE,
    SCORE_META,
    UNKNOWN,
    Reference,
    ScoreResult,
    combine,
    div_frame,
    finalize_scores,
    git_commit,
    per_image_frame,
    real_frame,
    tower_meta,
    write_core,
    write_csv,
)
from .parts import part_dir  # noqa: F401  (re-exported: the engine imports it from here)
from .profiles import COPY_REFERENCES, MetricProfile, get_metric_profile
from .registry import CLIP_I, CLIP_T, DINO
from .reuse import DIV_CSV, GROUP_COLUMNS, div_groups_of, prepare
from .towers import Towers


@dataclass
class ScoreOptions:
    """How :func:`score_folder` scores (every field is one of its keyword arguments).

    Attributes:
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
        progress: show progress bars.
        identifier: identifier removed from prompts for CLIP-T when the manifest has no ``prompt_plain``
            and the method's ``method.json`` names none.
        chunk_size: images per write of ``per_image.csv`` (default ``max(8 * batch_size, 256)``).
        log: where one-line progress messages go (default: nowhere).
        only: ``(label, subject)``: score only that manifest part and write only per_image.csv, div.csv,
            real.csv, errors.csv and score_meta.json (a part that :func:`merge_scores` combines).
        towers: a dict kept by the caller in which built backbones are shared across calls.
    """

    metric_profile: str = "paper"
    model_profile: str = "sd15"
    dino_weights: str | Path | None = None
    clip_weights: str | Path | None = None
    lpips_weights: str | Path | None = None
    device: str | None = None
    batch_size: int = 64
    num_workers: int | None = None
    cache_dir: str | Path | None = None
    progress: bool = True
    identifier: str = "sks"
    chunk_size: int | None = None
    log: Callable[[str], None] | None = None
    only: tuple[str, str] | None = None
    towers: dict | None = None


def score_folder(images_dir: str | Path, subjects_dir: str | Path, out_dir: str | Path,
                 options: ScoreOptions | None = None, **kwargs) -> ScoreResult:
    """Score every image of ``images_dir`` against the real photos in ``subjects_dir``; write ``out_dir``.

    ``options`` and/or keyword arguments: the fields of :class:`ScoreOptions` (``metric_profile``,
    ``model_profile``, ``dino_weights``, ``clip_weights``, ``lpips_weights``, ``device``, ``batch_size``,
    ``num_workers``, ``cache_dir``, ``progress``, ``identifier``, ``chunk_size``, ``log``, ``only``,
    ``towers``); a keyword argument overrides the same field of ``options``."""
    opts = dataclasses.replace(options or ScoreOptions(), **kwargs)
    return ScoringRun(Path(images_dir), Path(subjects_dir), Path(out_dir), opts).run()


@dataclass
class _Encoders:
    """The encoders of one call (None when nothing is to embed: no model is built)."""

    dino: ImageEncoder | None = None
    clip: ImageEncoder | None = None
    text: TextEncoder | None = None


@dataclass
class ScoringRun:
    """One :func:`score_folder` call: its inputs, then the state each numbered step of :meth:`run` adds."""

    images_dir: Path
    subjects_dir: Path
    out_dir: Path
    opts: ScoreOptions = field(default_factory=ScoreOptions)

    def run(self) -> ScoreResult:
        self.t0 = time.perf_counter()
        # 1. Resolve profiles, caches and tower ids (no model is built here)
        self.setup()
        # 2. Read and validate the manifest; content keys and what can be reused
        self.w = prepare(self.images_dir, self.subjects_dir, self.out_dir, self.prof, self.towers,
                         self.lpips_label, self.opts.identifier, self.opts.only)
        self.rows, self.errors, self.done = self.w.rows, self.w.errors, self.w.done
        assert self.w.ids is not None
        self.dev = torch.device(self.opts.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        # 3. Derived columns, fresh from the manifest on every run
        self.derive_columns()
        # 4. What is left to do; encoders and the real photos' embeddings only when something is
        self.plan_todo()
        self.embed_references()
        # 5. Embed and score the rows not done, compute the DIV groups to do (in chunks)
        self.score_rows()
        # 6. The output frames and score_meta.json
        frames = self.frames()
        meta = self.describe(*frames)
        # 7. Write: a part's core files, or the folder with everything derived
        return self.write(*frames, meta)

    # -- 1 -------------------------------------------------------------------------------------------------
    def setup(self) -> None:
        """Profiles, the say function, worker and chunk sizes, the embedding cache, the tower ids and the
        LPIPS trunk label; the subjects folder must exist."""
        o = self.opts
        self.say = o.log or (lambda s: None)
        self.prof = get_metric_profile(o.metric_profile)
        self.mprof = get_profile(o.model_profile)
        if not self.subjects_dir.is_dir():
            raise DataError(f"--subjects {self.subjects_dir}: folder not found (the dataset folder with one folder "
                            "per subject)")
        self.workers = o.num_workers or default_workers()
        self.chunk_size = o.chunk_size or max(8 * o.batch_size, 256)
        self.cache = EmbeddingCache(Path(o.cache_dir) if o.cache_dir is not None else default_cache_dir(self.out_dir))
        self.towers = Towers(self.prof, self.mprof, o.dino_weights, o.clip_weights, digests(o.cache_dir, self.out_dir),
                             shared=o.towers)
        self.lpips_label = lpips_trunk_label(self.prof.div, self.mprof.pretrained_weights, o.lpips_weights)

    # -- 3 -------------------------------------------------------------------------------------------------
    def derive_columns(self) -> None:
        """Columns made from the manifest on every run: ``gen_weights`` (the manifest's ``weights``),
        ``category``, ``metric_profile``, ``weights`` (generator and backbones), the tower ids, the SD
        source and digest, the method identity and the dreambench version; and the DIV label."""
        rows = self.rows
        if "weights" in rows.columns:
            rows = rows.rename(columns={"weights": "gen_weights"})
        gen = rows["gen_weights"].astype(str) if "gen_weights" in rows.columns else pd.Series("pretrained", rows.index)
        rows["category"] = _categories(rows) if len(rows) else pd.Series(dtype=str)
        rows["metric_profile"] = self.prof.name
        self.backbone_label = self.mprof.weights_label
        rows["weights"] = [combine(g, self.backbone_label) for g in gen]
        rows["dino_backbone"], rows["clip_backbone"] = self.w.ids
        no_sd = (gen == "real").to_numpy()  # images no SD model made (real photos): "none", not "unknown"
        for c in ("sd_source", "sd_digest"):
            vals = rows[c].astype(str) if c in rows.columns else pd.Series("", rows.index, dtype=str)
            rows[c] = np.where(vals != "", vals, np.where(no_sd, NO_MODEL, UNKNOWN))
        # The method's provider, version and code (methods.identity); unknown for images made before it was recorded.
        ident = rows["method_identity"].astype(str) if "method_identity" in rows.columns else pd.Series("", rows.index)
        rows["method_identity"] = np.where(ident != "", ident, UNKNOWN)
        rows["dreambench_version"] = __version__
        self.rows = rows
        trunk = "pretrained" if trunk_is_pretrained(self.lpips_label) else "random-init"
        self.div_label = combine(self.backbone_label, trunk)

    # -- 4 -------------------------------------------------------------------------------------------------
    def plan_todo(self) -> None:
        """The DIV groups and real sets to compute, the subjects whose real photos must be embedded, and
        the LPIPS model (built lazily, on its first group)."""
        w = self.w
        self.div_todo = {k: v for k, v in w.div_groups.items() if k not in w.div_done}
        self.real_todo = [s for s in w.real_sets if s not in w.real_done]
        self.need_refs = sorted(set(self.rows.loc[~self.done, "subject"]) | set(self.real_todo))
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.done_at_start = self.done.copy()
        self.lpips_model = Lpips(self.prof.div, self.mprof.pretrained_weights, self.dev, self.opts.lpips_weights)

    def embed_references(self) -> None:
        """Build the encoders and embed the real photos of the subjects to score (nothing when nothing is
        to compute); a subject whose photos cannot be embedded is dropped with its rows. Then the copy
        levels per subject (on the profile's DINO scale)."""
        w, o = self.w, self.opts
        self.enc = _Encoders()
        self.refs: dict[str, Reference] = {}
        if not self.need_refs and not self.div_todo:
            self.say(f"nothing to score: {len(self.rows)} rows, {len(w.div_groups)} DIV groups and {len(w.real_sets)} "
                     f"real sets are current (no model built)")
        else:
            tw, dev, prof = self.towers, self.dev, self.prof
            self.enc = _Encoders(ImageEncoder("dino", tw.backbone("dino"), prof.dino.transform, dev),
                                 ImageEncoder("clip", tw.backbone("clip"), prof.clip.transform, dev),
                                 TextEncoder(tw.backbone("clip"), dev))
            dino_id, clip_id = w.ids
            self.say(f"backbones: dino {dino_id}, clip {clip_id}, lpips {self.lpips_label} on {dev}")
            self.refs, bad = _reference_sets(self.need_refs, w.real_sets, self.enc.dino, self.enc.clip, self.cache,
                                             prof, o.batch_size, self.workers, o.progress)
            if bad:
                self._drop_subjects(bad)
        self.real_embedded = self.enc.dino.images if self.enc.dino is not None else 0
        self.levels = {s: float(self.prof.scale("dino").apply(r.copy_level)) for s, r in self.refs.items()}
        self.levels.update({s: float(r["copy_reference"]) for s, r in w.real_done.items()})

    def _drop_subjects(self, bad: dict[str, str]) -> None:
        """Leave out the subjects whose real photos turned out unusable (their rows become errors)."""
        w = self.w
        keep = ~self.rows["subject"].isin(list(bad)).to_numpy()
        self.rows = drop_subjects(self.rows, bad, self.errors)
        self.done = self.done[keep]
        self.done_at_start = self.done_at_start[keep]
        self.real_todo = [s for s in self.real_todo if s not in bad]
        w.real_done = {s: r for s, r in w.real_done.items() if s not in bad}
        groups = div_groups_of(self.rows)
        self.div_todo = {k: v for k, v in groups.items() if k not in w.div_done}
        w.div_done = {k: v for k, v in w.div_done.items() if k in groups}

    # -- 5 -------------------------------------------------------------------------------------------------
    def score_rows(self) -> None:
        """Embed and score the rows not done and compute the DIV groups to do, in chunks of whole groups,
        rewriting per_image.csv and div.csv after each chunk (an interrupted run loses at most one)."""
        rows, done = self.rows, self.done
        needs_div = np.zeros(len(rows), dtype=bool)
        for v in self.div_todo.values():
            needs_div[v] = True
        work = np.flatnonzero(~done | needs_div)
        self.failed = np.zeros(len(rows), dtype=bool)
        self.new_div: dict[tuple, dict] = {}
        self.timings = dict.fromkeys(("decode_wait_s", "embed_s", "div_s", "write_s"), 0.0)
        self.loop_s = 0.0
        if len(work):
            t_loop = time.perf_counter()
            self._chunk_loop(work, needs_div)
            self.loop_s = time.perf_counter() - t_loop
        self.done = self.done & ~self.failed

    def _chunk_loop(self, work: np.ndarray, needs_div: np.ndarray) -> None:
        rows, done, enc, o = self.rows, self.done, self.enc, self.opts
        self.text_emb, self.text_index = _embed_texts(rows, ~done, enc.text) if (~done).any() else (None, None)
        self.geo = [enc.dino.geometry, enc.clip.geometry] if enc.dino is not None else []
        lp_g = self.lpips_model.geometry
        abspaths = rows["abspath"].tolist()

        def load(i: int):
            geoms = (self.geo if not done[i] else []) + ([lp_g] if needs_div[i] else [])
            return decode(abspaths[i], list(dict.fromkeys(geoms)))

        self.say(f"{len(rows)} good rows: {int(done.sum())} already scored, {int((~done).sum())} to score, "
                 f"{len(self.div_todo)} DIV groups to compute; {len(self.errors)} bad rows")
        stream = prefetch_map(load, work.tolist(), self.workers, ahead=max(4 * self.workers, self.chunk_size))
        bar = tqdm(total=len(work), desc="scoring", unit="img", disable=not o.progress)
        for chunk in _chunks(rows, work, GROUP_COLUMNS, self.chunk_size):
            tic = time.perf_counter()
            decoded = self._decode_chunk(chunk, stream, bar)
            tic = _tick(self.timings, "decode_wait_s", tic)
            self._embed_chunk(chunk, decoded)
            tic = _tick(self.timings, "embed_s", tic)
            self._div_chunk(chunk, decoded)
            tic = _tick(self.timings, "div_s", tic)
            write_csv(per_image_frame(rows[done & ~self.failed], self.levels), self.out_dir / PER_IMAGE)
            write_csv(self._div_frame(), self.out_dir / DIV_CSV)
            _tick(self.timings, "write_s", tic)
        bar.close()

    def _decode_chunk(self, chunk: list[int], stream, bar) -> dict:
        """The decoded images of ``chunk``; a file that cannot be decoded becomes an error."""
        decoded = {}
        for _ in range(len(chunk)):
            i, res, err = next(stream)
            if err is None:
                decoded[i] = res
            else:
                self.failed[i] = True
                r = self.rows.iloc[i]
                self.errors.append(ScoreError(str(r["path"]), r["method"], r["subject"], int(r["prompt_index"]),
                                              str(err)))
            bar.update(1)
        return decoded

    def _embed_chunk(self, chunk: list[int], decoded: dict) -> None:
        """Embed the chunk's rows not done and fill their score columns."""
        emb_idx = np.array([i for i in chunk if not self.done[i] and i in decoded], dtype=int)
        if not emb_idx.size:
            return
        bs, geo = self.opts.batch_size, self.geo
        d = self.enc.dino.embed(torch.stack([decoded[i][geo[0]] for i in emb_idx]), bs)
        c = self.enc.clip.embed(torch.stack([decoded[i][geo[1]] for i in emb_idx]), bs)
        _score_rows(self.rows, emb_idx, d, c, self.text_emb[self.text_index[emb_idx]],
                    self.rows["subject"].to_numpy(), self.refs, self.prof)
        self.done[emb_idx] = True

    def _div_chunk(self, chunk: list[int], decoded: dict) -> None:
        """DIV of the chunk's groups to do (every group lies within one chunk)."""
        rows, lp_g = self.rows, self.lpips_model.geometry
        keys, groups = [], []
        cols = zip(*(rows[c].to_numpy()[chunk] for c in GROUP_COLUMNS))
        for k in dict.fromkeys(cols):
            k = (str(k[0]), str(k[1]), int(k[2]))
            ok = [i for i in self.div_todo.get(k, ()) if i in decoded]
            if len(ok) >= 2:
                keys.append((k, len(ok)))
                groups.append(stack_group([decoded[i][lp_g] for i in ok], k))
        for (k, n), (v, n_pairs) in zip(keys, self.lpips_model.groups_div(groups, self.opts.batch_size)):
            self.new_div[k] = {"div": v, "n_images": n, "n_pairs": n_pairs}

    def _div_frame(self) -> pd.DataFrame:
        return div_frame(self.w.div_done | self.new_div, self.rows, self.prof.name, self.lpips_label, self.w.div_keys)

    # -- 6 -------------------------------------------------------------------------------------------------
    def frames(self) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        """per_image, div, real and errors frames of what is scored now."""
        per_image = per_image_frame(self.rows[self.done], self.levels)
        div = self._div_frame()
        real = real_frame(self.refs, self.w, self.prof, sorted(self.w.real_sets))
        err_df = pd.DataFrame([e.__dict__ for e in self.errors], columns=ERROR_COLUMNS)
        return per_image, div, real, err_df

    def describe(self, per_image: pd.DataFrame, div: pd.DataFrame, real: pd.DataFrame, err_df: pd.DataFrame) -> dict:
        """score_meta.json: profiles, towers, labels, paths, device, timings, counts and the content key."""
        o, w, prof, enc = self.opts, self.w, self.prof, self.enc
        scored_now = int((self.done & ~self.done_at_start).sum())
        dino_id, clip_id = w.ids
        stats = {"rows": w.n_manifest, "scored": len(per_image),
                 "scored_now": scored_now, "reused": int(self.done_at_start.sum()), "errors": len(self.errors),
                 "div_groups_now": len(self.new_div), "div_groups_reused": len(w.div_done),
                 "real_now": len(self.real_todo), "real_reused": len(w.real_done),
                 "real_images_embedded": self.real_embedded, "cache_hits": self.cache.hits,
                 "cache_misses": self.cache.misses, "backbones_built": self.towers.built,
                 "lpips_built": self.lpips_model._model is not None,
                 "dino_images": enc.dino.images if enc.dino else 0, "clip_images": enc.clip.images if enc.clip else 0,
                 "texts": enc.text.texts if enc.text else 0}
        return {
            "metric_profile": prof.to_dict(), "metric_profile_key": w.profile_key,
            "model_profile": self.mprof.name,
            "weights": self.backbone_label,
            "backbones": {
                "dino": {"arch": prof.dino.arch, **tower_meta(dino_id, o.dino_weights),
                         "transform": prof.dino.transform.id},
                "clip": {"arch": prof.clip.arch, "tag": prof.clip.tag, **tower_meta(clip_id, o.clip_weights),
                         "transform": prof.clip.transform.id},
                "lpips": {"net": prof.div.net, "trunk": self.lpips_label, "size": prof.div.size,
                          "weights": self.div_label, "version": lib_version("lpips"),
                          "weights_file": str(o.lpips_weights) if o.lpips_weights else None},
            },
            "sd": sd_sources(per_image),
            "methods": method_identities(per_image),
            "labels": {"backbone": self.backbone_label, "div": self.div_label},
            "images_dir": str(self.images_dir), "subjects_dir": str(self.subjects_dir),
            "cache_dir": str(self.cache.root),
            "device": str(self.dev), "dtype": "bfloat16-autocast" if self.dev.type == "cuda" else "float32",
            "batch_size": o.batch_size, "workers": self.workers,
            "dreambench_version": __version__, "git_commit": git_commit(),
            "images_per_s": scored_now / self.loop_s if scored_now > 0 and self.loop_s > 0 else None,
            "loop_s": self.loop_s, "loop_timings_s": self.timings,
            "stats": stats, "bootstrap": BOOTSTRAP, "part": list(o.only) if o.only else None,
            "content_key": short_hash([sorted(per_image["score_key"]), sorted(div["div_key"]),
                                       sorted(real["real_key"])]),
        }

    # -- 7 -------------------------------------------------------------------------------------------------
    def write(self, per_image: pd.DataFrame, div: pd.DataFrame, real: pd.DataFrame, err_df: pd.DataFrame,
              meta: dict) -> ScoreResult:
        """A part (``only``): per_image, div, real, errors and score_meta.json; else every file
        (:func:`finalize_scores`)."""
        if self.opts.only is None:  # a whole folder: a subject left out entirely is named, as the merge does
            meta["missing"] = unscored_pairs(per_image, self.errors)
            return finalize_scores(self.out_dir, per_image, div, real, err_df, self.errors, meta, self.t0)
        write_core(self.out_dir, per_image, div, real, err_df)
        meta["wall_s"] = time.perf_counter() - self.t0
        meta["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        write_text_atomic(self.out_dir / SCORE_META, json.dumps(meta, indent=2, default=str) + "\n")
        return ScoreResult(self.out_dir, per_image, pd.DataFrame(), div, real, pd.DataFrame(), pd.DataFrame(),
                           self.errors, meta, meta["stats"])


def _categories(df: pd.DataFrame) -> pd.Series:
    """The prompt category per row: the manifest's ``category`` when given, else looked up in the
    ``dreambooth`` protocol by subject kind and prompt index; ``""`` when neither knows."""
    given = df["category"] if "category" in df.columns else pd.Series("", index=df.index)
    lookup: dict[tuple[str, int], str] = {}
    try:
        proto = load_protocol("dreambooth")
        for s in proto.subjects:
            for p in proto.prompts_for(s):
                lookup[(s.name, p.index)] = p.category
    except DreambenchError:
        pass
    fallback = [lookup.get((s, int(i)), "") for s, i in zip(df["subject"], df["prompt_index"])]
    return given.where(given.astype(str).str.len() > 0, pd.Series(fallback, index=df.index)).astype(str)


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
    subject_arr: np.ndarray, refs: dict[str, Reference], prof: MetricProfile,
) -> None:
    """Fill the score columns of rows ``idx`` from their embeddings, one matrix product per subject."""
    subj = subject_arr[idx]
    for s in np.unique(subj):
        m = subj == s
        ref = refs[s]
        pick = [ref.names.index(n) for n in rows.loc[idx[m], "reference"]] if prof.pairing == "one" else None
        dino_scale = prof.scale(DINO.scale)
        rows.loc[idx[m], DINO.column] = dino_scale.apply(F.cosine_to_reference(dino[m], ref.dino, pick))
        rows.loc[idx[m], "max_dino_real"] = dino_scale.apply(F.max_cosine_to_reference(dino[m], ref.dino))
        rows.loc[idx[m], CLIP_I.column] = prof.scale(CLIP_I.scale).apply(F.cosine_to_reference(clip[m], ref.clip, pick))
        rows.loc[idx[m], CLIP_T.column] = prof.scale(CLIP_T.scale).apply(F.rowwise_cosine(clip[m], text[m]))


def _reference_sets(
    subjects: list[str], real_sets: dict, dino: ImageEncoder, clip: ImageEncoder, cache: EmbeddingCache,
    profile: MetricProfile, batch_size: int, workers: int, progress: bool,
) -> tuple[dict[str, Reference], dict[str, str]]:
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
        refs[s] = Reference(d, c, dm, cm, n_pairs, F.real_pairs_stat(d, reduce),
                             tuple(p.name for p in real_sets[s][0]))
    return refs, bad
