"""The merge: the current score parts of a run combined into one scores folder (every derived file)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from ..errors import DataError
from ..provenance import method_identities, sd_sources
from ..schema import PER_IMAGE
from .inputs import ScoreError
from .outputs import (
    DIV_COLUMNS,
    ERROR_COLUMNS,
    ERRORS,
    REAL_COLUMNS,
    SCORE_META,
    UNKNOWN,
    ScoreResult,
    finalize_scores,
    git_commit,
)
from .parts import part_current, part_dir
from .reuse import DIV_CSV, REAL_CSV, read_csv_or_none


def merge_scores(scores_dir: str | Path, parts: list[tuple[str, str]], images_dir: str | Path,
                 subjects_dir: str | Path, *, metric_profile: str = "paper", model_profile: str = "sd15",
                 metric_weights: dict | None = None, log: Callable[[str], None] | None = None,
                 cache_dir: str | Path | None = None) -> ScoreResult:
    """Combine the current score parts of ``parts`` into ``scores_dir`` (per_image, div, real and all
    derived files). A part that is absent or no longer matches its inputs (its subject job failed, or
    it was not re-scored) is left out and listed in missing.csv and score_meta.json's ``missing``.
    ``cache_dir``: the cache the parts were scored with (:func:`dreambench.metrics.parts.part_current`)."""
    t0 = time.perf_counter()
    say = log or (lambda s: None)
    scores_dir = Path(scores_dir)
    frames: dict[str, list[pd.DataFrame]] = {"per_image": [], "div": [], "real": [], "errors": []}
    missing, used, metas = [], {}, []
    for label, subject in parts:
        d = part_dir(scores_dir, label, subject)
        ok, why = part_current(scores_dir, images_dir, subjects_dir, label, subject, metric_profile=metric_profile,
                               model_profile=model_profile, metric_weights=metric_weights, cache_dir=cache_dir)
        if not ok:
            missing.append({"method": label, "subject": subject, "reason": why})
            continue
        meta = json.loads((d / SCORE_META).read_text())
        if not meta["stats"]["scored"]:
            errs = read_csv_or_none(d / ERRORS)
            first = str(errs["message"].iloc[0]) if errs is not None and len(errs) else "no image scored"
            missing.append({"method": label, "subject": subject, "reason": first})
            continue
        metas.append(meta)
        used[f"{label}/{subject}"] = meta["content_key"]
        for name, fname in (("per_image", PER_IMAGE), ("div", DIV_CSV), ("real", REAL_CSV), ("errors", ERRORS)):
            df = read_csv_or_none(d / fname)
            if df is not None and len(df):
                frames[name].append(df)
    if not metas:
        raise DataError(f"{scores_dir}: no current score part to merge ({len(missing)} missing)")
    cat = {k: pd.concat(v, ignore_index=True) if v else None for k, v in frames.items()}
    per_image = cat["per_image"] if cat["per_image"] is not None else pd.DataFrame()
    per_image = per_image.astype({"method": str, "subject": str}).sort_values(
        ["method", "subject", "prompt_index", "seed", "path"], kind="stable").reset_index(drop=True)
    div = cat["div"] if cat["div"] is not None else pd.DataFrame(columns=DIV_COLUMNS)
    div = div.astype({"method": str, "subject": str}).sort_values(["method", "subject", "prompt_index"]).reset_index(drop=True)
    real = cat["real"] if cat["real"] is not None else pd.DataFrame(columns=REAL_COLUMNS)
    real = real.astype({"subject": str}).drop_duplicates("subject").sort_values("subject").reset_index(drop=True)
    err_df = cat["errors"] if cat["errors"] is not None else pd.DataFrame(columns=ERROR_COLUMNS)
    errors = [ScoreError(str(r.path), str(r.method), str(r.subject), r.prompt_index, str(r.message))
              for r in err_df.itertuples(index=False)]
    meta = {k: v for k, v in metas[0].items() if k not in ("part", "content_key", "stats", "wall_s", "finished_at")}
    if len(per_image):  # parts scored before identities were recorded have no such column
        per_image["method_identity"] = per_image.get("method_identity", pd.Series(UNKNOWN, per_image.index)) \
            .fillna(UNKNOWN)
    meta.update(parts=used, missing=missing, images_dir=str(images_dir), git_commit=git_commit(),
                stats={"scored": len(per_image), "parts": len(used), "missing": len(missing)},
                sd=sd_sources(per_image), methods=method_identities(per_image))
    say(f"merged {len(used)} score part(s) into {scores_dir}; {len(missing)} missing")
    return finalize_scores(scores_dir, per_image, div, real, err_df, errors, meta, t0)
