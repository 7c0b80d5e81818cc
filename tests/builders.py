"""Builders of a synthetic results folder, shared by test_tables.py and test_report.py.

The folder (``make_results``) follows the scoring contract. Each score is
``BASE[label][metric] + SUBJ[subject] + PROMPT[prompt] + SEED[seed]`` with the offsets summing to zero per
subject (see test_tables.py for what that makes the tables). ``tests/`` is on ``sys.path`` through
``pythonpath`` in pyproject.toml's ``[tool.pytest.ini_options]``, so test modules ``import builders``
under any pytest import mode.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from dreambench.schema import image_relpath

SUBJECTS = {"backpack": ("backpack", "object"), "dog": ("dog", "live")}
SUBJ = {"backpack": -0.10, "dog": 0.10}
PROMPT = {0: 0.04, 1: -0.04}
SEED = {0: 0.01, 1: -0.01}
PROMPTS = {
    0: ("a sks {c} in the jungle", "recontextualization"),
    # A prompt with markup: the report must show it as text, never run it.
    1: ("a sks {c} <script>alert(1)</script> & a red hat", "accessorization"),
}
BASE = {
    "dreambooth": {"dino": 0.60, "clip_i": 0.80, "clip_t": 0.30, "pres": 0.50, "div": 0.40},
    "dreambooth-noppl": {"dino": 0.62, "clip_i": 0.81, "clip_t": 0.29, "pres": 0.70, "div": 0.30},
    "dreambooth-noun-none": {"dino": 0.40, "clip_i": 0.70, "clip_t": 0.28, "pres": 0.55, "div": 0.35},
    "dreambooth-noun-wrong": {"dino": 0.50, "clip_i": 0.74, "clip_t": 0.27, "pres": 0.56, "div": 0.36},
    "dreambooth-n1": {"dino": 0.30, "clip_i": 0.60, "clip_t": 0.31, "pres": 0.50, "div": 0.40},
    "dreambooth-n2": {"dino": 0.40, "clip_i": 0.65, "clip_t": 0.32, "pres": 0.50, "div": 0.40},
    "dreambooth-n3": {"dino": 0.50, "clip_i": 0.70, "clip_t": 0.33, "pres": 0.50, "div": 0.40},
    "textual-inversion": {"dino": 0.45, "clip_i": 0.75, "clip_t": 0.25, "pres": 0.60, "div": 0.45},
}
INFO = {  # (method, ppl, class_noun_mode, num_inputs)
    "dreambooth": ("dreambooth", True, "correct", None),
    "dreambooth-noppl": ("dreambooth", False, "correct", None),
    "dreambooth-noun-none": ("dreambooth", True, "none", None),
    "dreambooth-noun-wrong": ("dreambooth", True, "wrong", None),
    "dreambooth-n1": ("dreambooth", True, "correct", 1),
    "dreambooth-n2": ("dreambooth", True, "correct", 2),
    "dreambooth-n3": ("dreambooth", True, "correct", 3),
    # The release before roles wrote ppl false (not null) for methods without prior preservation.
    "textual-inversion": ("textual-inversion", False, "correct", None),
}
REAL = {"backpack": (0.70, 0.85), "dog": (0.80, 0.90)}
RUN = "run-synthetic"


def _png(path: Path, color: tuple[int, int, int], size: int = 16) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), color).save(path)


def make_dataset(root: Path) -> Path:
    """A fake dataset folder: two real JPEGs per subject (64x48, to be thumbnailed)."""
    for i, s in enumerate(SUBJECTS):
        for j in range(2):
            p = root / s / f"{j:02d}.jpg"
            p.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (64, 48), (40 + 100 * i, 90 + 60 * j, 160)).save(p)
    return root


def make_results(root: Path, weights: str = "random-init", with_info: bool = True) -> Path:
    """A results folder named RUN with images, method.json files and scores per the contract."""
    res = root / RUN
    images, scores = res / "images", res / "scores"
    rows, divs = [], []
    for li, (label, base) in enumerate(BASE.items()):
        if with_info:
            method, ppl, noun, n_in = INFO[label]
            info = {
                "method": method,
                "config": {"lr": 5e-6},
                "recipe": "paper",
                "ppl": ppl,
                "class_noun_mode": noun,
                "num_inputs": n_in,
                "profile": "tiny",
                "weights": weights,
                "identifier": "sks",
            }
            (images / label).mkdir(parents=True, exist_ok=True)
            (images / label / "method.json").write_text(json.dumps(info))
        for subject, (noun_word, _kind) in SUBJECTS.items():
            for p_idx in [*PROMPTS, -1]:
                for seed, seed_off in SEED.items():
                    rel = image_relpath(label, subject, p_idx, seed)
                    _png(images / rel, ((37 * li) % 256, 120 + 40 * p_idx, 60 + 100 * seed))
                    off = SUBJ[subject] + seed_off
                    if p_idx == -1:
                        prompt, cat = f"a {noun_word}", ""
                        vals = {"dino": base["pres"] + off, "clip_i": np.nan, "clip_t": np.nan}
                    else:
                        tmpl, cat = PROMPTS[p_idx]
                        prompt = tmpl.format(c=noun_word)
                        off += PROMPT[p_idx]
                        vals = {m: base[m] + off for m in ("dino", "clip_i", "clip_t")}
                    rows.append(
                        dict(
                            method=label,
                            subject=subject,
                            prompt_index=p_idx,
                            prompt=prompt,
                            seed=seed,
                            path=rel,
                            prompt_plain=prompt.replace("sks ", ""),
                            category=cat,
                            class_noun=noun_word,
                            profile="tiny",
                            weights=weights,
                            **vals,
                            max_dino_real=0.5,
                            copy_flag=False,
                            metric_profile="paper",
                        )
                    )
                if p_idx >= 0:
                    divs.append(
                        {
                            "method": label,
                            "subject": subject,
                            "prompt_index": p_idx,
                            "div": base["div"] + SUBJ[subject] + PROMPT[p_idx],
                        }
                    )
    scores.mkdir(parents=True)
    pd.DataFrame(rows).to_csv(scores / "per_image.csv", index=False)
    pd.DataFrame(rows)[["method", "subject", "prompt_index", "prompt", "seed", "path"]].to_csv(
        images / "manifest.csv", index=False
    )
    pd.DataFrame(divs).to_csv(scores / "div.csv", index=False)
    pd.DataFrame([{"subject": s, "dino": d, "clip_i": c, "n_pairs": 2} for s, (d, c) in REAL.items()]).to_csv(
        scores / "real.csv", index=False
    )
    agg = [
        {
            "method": lab,
            "metric": m,
            "mean": v,
            "lo": float("nan"),  # two subjects: no interval (dreambench.stats.MIN_SUBJECTS)
            "hi": float("nan"),
            "n_subjects": 2,
            "metric_profile": "paper",
            "weights": weights,
        }
        for lab, b in BASE.items()
        for m, v in b.items()
    ]
    agg += [
        {
            "method": "real-images",
            "metric": "dino",
            "mean": 0.75,
            "lo": float("nan"),
            "hi": float("nan"),
            "n_subjects": 2,
            "metric_profile": "paper",
            "weights": weights,
        }
    ]
    pd.DataFrame(agg).to_csv(scores / "aggregates.csv", index=False)
    meta = {
        "metric_profile": {"name": "paper", "scale": 1.0},
        "backbones": {
            "dino": {"arch": "vit_small_patch16_224.dino", "tag": None, "weights_id": "dino-tiny-rand"},
            "clip": {"arch": "ViT-B-32", "tag": "openai", "weights_id": "clip-tiny-rand"},
        },
        "model_profile": "tiny",
        "weights": weights,
        "dreambench_version": "0.1.0",
        "git_commit": "feedbeef",
        "images_per_s": 12.5,
    }
    (scores / "score_meta.json").write_text(json.dumps(meta))
    return res
