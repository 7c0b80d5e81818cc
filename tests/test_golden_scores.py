"""Golden scores: a fixed tiny run scores as the release that wrote ``tests/golden/tiny_scores.json``.

The run: dreambooth, textual-inversion, pretrained and the example plug-in, on dog, backpack and cat, 3
prompts x 2 images, 5 training steps, tiny profile (random-init models: the numbers are no quality
result, only a fingerprint of the whole pipeline). Its per-image DINO / CLIP-I / CLIP-T, its DIV groups
and its aggregates (mean and interval bounds) must equal the stored ones within ``TOL``: a refactoring
that changes any number of the pipeline fails here.

Regenerate (only when a number is *meant* to change, saying why in the commit)::

    DREAMBENCH_DATA=... python tests/test_golden_scores.py write
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pandas as pd
import pytest
import realrun

GOLDEN = Path(__file__).resolve().parent / "golden" / "tiny_scores.json"
TOL = 1e-3
METHODS = ("dreambooth", "textual-inversion", "pretrained", realrun.PLUGIN_METHOD)
SUBJECTS = ("dog", "backpack", "cat")
EXTRA = ("--steps", "5", "--prompts", "3", "--images-per-prompt", "2")


def _frame(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, comment="#")


def fingerprint(results: Path) -> dict[str, dict[str, float]]:
    """``{"per_image": {key: value}, "div": ..., "aggregates": ...}`` of a finished run's score files."""
    scores = results / "scores"
    out: dict[str, dict[str, float]] = {"per_image": {}, "div": {}, "aggregates": {}}
    for r in _frame(scores / "per_image.csv").itertuples():
        for m in ("dino", "clip_i", "clip_t"):
            out["per_image"][f"{r.method}/{r.subject}/{r.prompt_index}/{r.seed}/{m}"] = float(getattr(r, m))
    for r in _frame(scores / "div.csv").itertuples():
        out["div"][f"{r.method}/{r.subject}/{r.prompt_index}"] = float(r.div)
    for r in _frame(scores / "aggregates.csv").itertuples():
        for col in ("mean", "lo", "hi"):
            out["aggregates"][f"{r.method}/{r.metric}/{col}"] = float(getattr(r, col))
        out["aggregates"][f"{r.method}/{r.metric}/n_subjects"] = float(r.n_subjects)
    return out


def golden_run(root: Path, data: Path, env: dict[str, str]) -> Path:
    return realrun.tiny_run(root / "results", data, env, methods=METHODS, subjects=SUBJECTS, extra=EXTRA)


def _close(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= TOL


@pytest.mark.slow
def test_tiny_run_scores_equal_the_golden_release(tmp_path, dataset_dir, cli_env):
    expected = json.loads(GOLDEN.read_text())
    got = fingerprint(golden_run(tmp_path, dataset_dir, cli_env))
    for part in ("per_image", "div", "aggregates"):
        assert set(got[part]) == set(expected[part]), part
        bad = {k: (got[part][k], expected[part][k]) for k in expected[part]
               if not _close(got[part][k], expected[part][k])}
        assert not bad, f"{part}: {len(bad)} value(s) differ by more than {TOL}: {dict(list(bad.items())[:5])}"
    assert len(expected["per_image"]) == 3 * len(METHODS) * len(SUBJECTS) * 3 * 2  # nothing dropped


def _write() -> None:
    import tempfile

    from dreambench.paths import default_data_dir

    with tempfile.TemporaryDirectory() as tmp:
        env = realrun.cli_env(realrun.install_plugin(Path(tmp) / "site"))
        fp = fingerprint(golden_run(Path(tmp), default_data_dir(), env))
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text(json.dumps(fp, indent=1, sort_keys=True, allow_nan=True) + "\n")
    print(f"wrote {GOLDEN}: {sum(len(v) for v in fp.values())} values")


if __name__ == "__main__" and sys.argv[1:] == ["write"]:
    _write()
