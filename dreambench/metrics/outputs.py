"""The score files: their frames (columns and order), provenance stamps and atomic writers.

What each file holds is described in :mod:`dreambench.metrics.scoring`; :func:`finalize_scores` writes the
per-image, DIV and real tables and everything derived from them (per_subject, aggregates, per_category,
paired, errors, score_meta.json, missing.csv).
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .. import __version__
from ..io import atomic_path, write_text_atomic
from ..layout import AGGREGATES, ERRORS, MISSING, PAIRED, PER_CATEGORY, PER_SUBJECT, SCORE_META
from ..paths import REPO_DIR
from ..schema import MANIFEST_COLUMNS, MANIFEST_OPTIONAL, PER_IMAGE, SCORE_COLUMNS
from . import functional as F
from .aggregate import (
    REAL_METHOD,
    aggregate_table,
    paired_table,
    per_category_table,
    per_subject_table,
    profile_of,
)
from .inputs import ScoreError
from .keys import short_hash
from .profiles import MetricProfile
from .registry import CLIP_I, DINO, DIV_ROWS, get_metric, list_metrics, real_metrics
from .reuse import DIV_CSV, REAL_CSV, Work

#: sd_source / sd_digest of images no SD model made (the ``real`` method copies photos), and of rows
#: from manifests that predate the columns.
NO_MODEL = "none"
UNKNOWN = "unknown"
ERROR_COLUMNS = ["path", "method", "subject", "prompt_index", "message"]


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


@dataclass
class Reference:
    """A subject's real images: embeddings and real-vs-real statistics (raw cosines)."""

    dino: np.ndarray
    clip: np.ndarray
    dino_mean: float
    clip_mean: float
    n_pairs: int
    copy_level: float
    names: tuple[str, ...] = ()  # file names of the photos, in embedding order (one-reference pairing)


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(REPO_DIR), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5, check=False)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def write_csv(df: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)


def combine(*labels: str) -> str:
    return "random-init" if any(lbl != "pretrained" for lbl in labels) else "pretrained"


_DROP = {"abspath", "copy_flag"}  # columns of the working rows that per_image.csv never carries as extras
_TAIL = ["clip_t_text", *SCORE_COLUMNS, "max_dino_real", "copy_flag", "image_sha256", "real_set",
         "score_key", "metric_profile", "weights", "sd_source", "sd_digest", "method_identity", "dino_backbone",
         "clip_backbone", "dreambench_version"]
#: Provenance columns of every score file (per method where the file has a method, else the run's).
PROVENANCE = ["metric_profile", "weights", "sd_source", "sd_digest", "method_identity", "dino_backbone",
              "clip_backbone", "dreambench_version"]
#: Provenance columns that differ per method label.
_PER_METHOD = ("sd_source", "sd_digest", "method_identity", "weights")


def per_image_frame(sub: pd.DataFrame, levels: dict[str, float]) -> pd.DataFrame:
    """The per_image.csv table of scored rows, with the copy flag from the subject's real-vs-real level
    (``levels``: per subject, on the profile's DINO scale)."""
    sub = sub.copy()
    level = sub["subject"].map(levels)
    sub["copy_flag"] = F.copy_flags(sub["max_dino_real"].to_numpy(), level.to_numpy(dtype=np.float64))
    head = MANIFEST_COLUMNS + [c for c in MANIFEST_OPTIONAL if c in sub.columns and c != "weights"]
    head += [c for c in ("gen_weights",) if c in sub.columns]
    extra = [c for c in sub.columns if c not in head and c not in _TAIL and c not in _DROP]
    return sub[head + extra + _TAIL].reset_index(drop=True)


DIV_COLUMNS = ["method", "subject", "prompt_index", "div", "n_images", "n_pairs", "category", "lpips",
                "metric_profile", "div_key"]


def div_frame(divs: dict[tuple, dict], rows: pd.DataFrame, profile_name: str, lpips_label: str,
               div_keys: dict[tuple, str]) -> pd.DataFrame:
    cats = rows.groupby(["method", "subject", "prompt_index"])["category"].first().to_dict() if len(rows) else {}
    recs = [{"method": k[0], "subject": k[1], "prompt_index": k[2], "div": v["div"], "n_images": v["n_images"],
             "n_pairs": v["n_pairs"], "category": cats.get(k, ""), "lpips": lpips_label,
             "metric_profile": profile_name, "div_key": div_keys[k]} for k, v in sorted(divs.items()) if k in div_keys]
    return pd.DataFrame(recs, columns=DIV_COLUMNS)


REAL_COLUMNS = ["subject", DINO.column, CLIP_I.column, "n_pairs", "n_images", "copy_reference", "real_set", "real_key"]


def real_frame(refs: dict[str, Reference], w: Work, prof: MetricProfile, subjects: list[str]) -> pd.DataFrame:
    """Real Images per subject: mean over ordered pairs i != j of distinct real images (new or reused)."""
    recs = []
    ids = w.ids or ("?", "?")
    for s in subjects:
        if s in refs:
            r = refs[s]
            set_key = w.real_sets[s][1]
            recs.append({"subject": s, DINO.column: float(prof.scale(DINO.scale).apply(r.dino_mean)),
                         CLIP_I.column: float(prof.scale(CLIP_I.scale).apply(r.clip_mean)), "n_pairs": r.n_pairs,
                         "n_images": len(r.dino), "copy_reference": float(prof.scale(DINO.scale).apply(r.copy_level)),
                         "real_set": set_key, "real_key": short_hash([set_key, w.profile_key, *ids])})
        elif s in w.real_done:
            recs.append({c: w.real_done[s][c] for c in REAL_COLUMNS})
    return pd.DataFrame(recs, columns=REAL_COLUMNS)


def _run_provenance(per_image: pd.DataFrame, meta: dict) -> dict[str, str]:
    """The provenance of a whole scores folder (files without a method column: real, paired)."""
    def joined(col: str, default: str) -> str:
        vals = sorted({str(v) for v in per_image[col] if str(v) not in ("", NO_MODEL)}) if col in per_image else []
        return ",".join(vals) or default

    bb = meta["backbones"]
    return {"metric_profile": meta["metric_profile"]["name"],
            "weights": combine(meta["weights"], *per_image["weights"].astype(str).unique()) if len(per_image)
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
                                 "weights": combine(*g["weights"].astype(str).unique())}
    for col in PROVENANCE:
        if col in df.columns and col in ("weights", "metric_profile"):
            continue
        if method_col and col in _PER_METHOD and len(df):
            df[col] = [by_method.get(str(m), run).get(col, run[col]) for m in df[method_col]]
        else:
            df[col] = run[col]
    return df


_WHERE = {"file": "file", "pretrained": "hub cache"}


def tower_meta(tower_id: str, weights_file) -> dict:
    """score_meta.json's description of a tower from its id ``name@origin:digest``."""
    name, wid = tower_id.split("@", 1)
    origin, _, digest = wid.rpartition(":")
    return {"name": name, "weights_id": wid, "where": _WHERE.get(origin, "random-init"), "digest": digest,
            "weights_file": str(weights_file) if weights_file else None}


def write_core(out_dir: Path, per_image: pd.DataFrame, div: pd.DataFrame, real: pd.DataFrame,
                err_df: pd.DataFrame) -> None:
    write_csv(per_image, out_dir / PER_IMAGE)
    write_csv(div, out_dir / DIV_CSV)
    write_csv(real, out_dir / REAL_CSV)
    write_csv(err_df, out_dir / ERRORS)


def finalize_scores(out_dir: Path, per_image: pd.DataFrame, div: pd.DataFrame, real: pd.DataFrame,
                    err_df: pd.DataFrame, errors: list[ScoreError], meta: dict, t0: float) -> ScoreResult:
    """Write the per-image, DIV and real tables and everything derived from them (per_subject, aggregates,
    per_category, paired, errors, score_meta.json, and missing.csv when parts are missing), each with the
    provenance columns."""
    run = _run_provenance(per_image, meta)
    div = _stamp(div, per_image, run)
    real_out = _stamp(real, per_image, run, None)
    real_out["weights"] = meta["labels"]["backbone"]
    write_core(out_dir, per_image, div, real_out, err_df)
    per_subject = per_subject_table(per_image, div, real)
    columns = {get_metric(m).column: m for m in real_metrics()}  # real.csv column -> metric
    real_long = real.melt(["subject"], list(columns), var_name="metric", value_name="value").assign(
        method=REAL_METHOD).dropna(subset=["value"])
    real_long["metric"] = real_long["metric"].map(columns)
    per_subject_all = pd.concat([per_subject, real_long[["method", "subject", "metric", "value"]]], ignore_index=True)
    write_csv(_stamp(per_subject_all, per_image, run), out_dir / PER_SUBJECT)
    labels = weights_labels(per_image, meta["labels"]["div"], meta["labels"]["backbone"])
    aggregates = _stamp(aggregate_table(per_subject_all, labels, run["metric_profile"]), per_image, run)
    write_csv(aggregates, out_dir / AGGREGATES)
    per_category = _stamp(per_category_table(per_image, div), per_image, run)
    write_csv(per_category, out_dir / PER_CATEGORY)
    paired = _stamp(paired_table(per_subject, profile_of(per_image)), per_image, run, None)
    write_csv(paired, out_dir / PAIRED)
    missing = pd.DataFrame(meta.get("missing") or [], columns=["method", "subject", "reason"])
    if len(missing) or (out_dir / MISSING).is_file():
        write_csv(missing, out_dir / MISSING)
    meta = {**meta, "provenance": run, "wall_s": time.perf_counter() - t0,
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    write_text_atomic(out_dir / SCORE_META, json.dumps(meta, indent=2, default=str) + "\n")
    return ScoreResult(out_dir, per_image, aggregates, div, real_out, per_category, paired, errors, meta,
                       meta.get("stats", {}))


def weights_labels(per_image: pd.DataFrame, div_label: str, backbone_label: str) -> dict[tuple[str, str], str]:
    """Weights label per (method, metric): random-init when the generator or a metric network was."""
    out = {}
    for method, g in per_image.groupby("method"):
        lbl = combine(*g["weights"].astype(str).unique())
        for metric in list_metrics():  # a DIV metric is also made by the LPIPS trunk
            out[(method, metric.name)] = combine(lbl, div_label) if metric.rows == DIV_ROWS else lbl
    for metric in real_metrics():
        out[(REAL_METHOD, metric)] = backbone_label
    return out
