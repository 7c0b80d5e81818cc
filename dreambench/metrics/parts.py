"""The score parts layout and freshness: where the score job of one (label, subject) writes, which parts
a merge combines, and whether a scores folder (or a part, or a merge) is still current. Checked without
torch or any model: a resume with nothing to do must build nothing.

::

    <scores>/parts/<label>/<subject>/   one part: per_image.csv, div.csv, real.csv, errors.csv, score_meta.json
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import DreambenchError
from ..layout import SCORE_META, SCORE_PARTS
from ..models.profiles import get_profile
from ..protocol import name_problem
from ..schema import PER_IMAGE
from .keys import TowerIds, default_cache_dir, digests, lpips_label
from .profiles import get_metric_profile
from .reuse import prepare

#: The parts folder under a scores folder (dreambench.layout.SCORE_PARTS).
PARTS = SCORE_PARTS


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
    if not (out_dir / SCORE_META).is_file() or not (out_dir / PER_IMAGE).is_file():
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
                  if (d / SCORE_META).is_file() and not name_problem(d.parent.name) and not name_problem(d.name))


def merge_parts(scores_dir: str | Path, planned: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The parts a merge combines: the run's own, then every other part on disk, in name order."""
    planned = [tuple(p) for p in planned]
    return planned + [p for p in parts_on_disk(scores_dir) if p not in planned]


def part_current(scores_dir: str | Path, images_dir: str | Path, subjects_dir: str | Path, label: str, subject: str,
                 *, metric_profile: str, model_profile: str, metric_weights: dict | None = None,
                 cache_dir: str | Path | None = None) -> tuple[bool, str]:
    """Whether one score part still matches its inputs (as :func:`inputs_current`). ``cache_dir`` must be
    the cache the part was scored with (a run's score jobs use ``<results>/cache``); default
    :func:`default_cache_dir` of ``scores_dir``, as ``dreambench score``."""
    return inputs_current(images_dir, subjects_dir, part_dir(scores_dir, label, subject), metric_profile=metric_profile,
                          model_profile=model_profile, only=(label, subject),
                          cache_dir=cache_dir if cache_dir is not None else default_cache_dir(scores_dir),
                          **weights_kwargs(metric_weights))


def merged_current(scores_dir: str | Path, parts: list[tuple[str, str]]) -> bool:
    """Whether ``scores_dir`` holds the merge of exactly the current contents of ``parts`` (cheap: reads
    the parts' score_meta.json; the parts themselves are checked by their own jobs)."""
    scores_dir = Path(scores_dir)
    try:
        meta = json.loads((scores_dir / SCORE_META).read_text())
    except (OSError, ValueError):
        return False
    if not (scores_dir / PER_IMAGE).is_file() or "parts" not in meta:
        return False
    now = {}
    for label, subject in parts:
        try:
            now[f"{label}/{subject}"] = json.loads(
                (part_dir(scores_dir, label, subject) / SCORE_META).read_text())["content_key"]
        except (OSError, ValueError, KeyError):
            continue
    missing = {f"{m['method']}/{m['subject']}" for m in meta.get("missing", [])}
    return meta["parts"] == {k: v for k, v in now.items() if k not in missing} and \
        set(meta["parts"]) | missing == {f"{a}/{b}" for a, b in parts}
