"""Builders for the human-study tests: a tiny synthetic results folder, dataset folder and study database."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from PIL import Image, ImageDraw

from dreambench.study import db as sdb
from dreambench.study.questions import create_study

METHOD_A, METHOD_B = "zeta-method", "omega-method"  # distinctive: tests check raters never see them
SUBJECTS = {"dog": "dog", "backpack": "backpack"}
PROMPTS = ["a {V} {class} in the jungle", "a {V} {class} on the beach", "a red {V} {class}"]
SEEDS = [0, 1]


def _picture(path: Path, size: tuple[int, int], color: tuple[int, int, int], label: str) -> None:
    im = Image.new("RGB", size, color)
    d = ImageDraw.Draw(im)
    d.ellipse([size[0] // 4, size[1] // 4, 3 * size[0] // 4, 3 * size[1] // 4], fill=(250, 250, 250))
    d.text((8, 8), label, fill=(0, 0, 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path)


def make_dataset(root: Path) -> Path:
    """``root/data/<subject>/0{0,1,2}.jpg``: three reference pictures per subject."""
    data = root / "data"
    for i, s in enumerate(SUBJECTS):
        for j in range(3):
            _picture(data / s / f"{j:02d}.jpg", (320, 256), (60 * i + 40, 90, 30 * j + 60), f"{s} ref {j}")
    return data


def make_results(root: Path, plain_override: str | None = None) -> Path:
    """``root/results/images``: 2 methods x 2 subjects x 3 prompts x 2 seeds (64 px PNGs) plus class-prompt
    samples, with a manifest. ``plain_override`` replaces every identifier-free prompt (escaping tests)."""
    results = root / "results"
    images = results / "images"
    rows = []
    for mi, m in enumerate((METHOD_A, METHOD_B)):
        for s, noun in SUBJECTS.items():
            for p, tmpl in [(-1, "a {class}"), *enumerate(PROMPTS)]:
                for seed in SEEDS:
                    idx = "class" if p == -1 else f"{p:02d}"
                    rel = f"{m}/{s}/{idx}_{seed}.png"
                    _picture(images / rel, (64, 64), (200 * mi + 30, 40 * (p + 1), 100 + 50 * seed), f"{s} {p} {seed}")
                    prompt = tmpl.replace("{V}", "sks").replace("{class}", noun)
                    plain = " ".join(tmpl.replace("{V}", "").replace("{class}", noun).split())
                    rows.append({"method": m, "subject": s, "prompt_index": p, "prompt": prompt, "seed": seed,
                                 "path": rel, "prompt_plain": plain_override or plain, "class_noun": noun})
    pd.DataFrame(rows).to_csv(images / "manifest.csv", index=False)
    return results


@dataclass
class StudyEnv:
    root: Path
    results: Path
    data: Path
    db: Path
    tokens: dict[str, str]
    admin: str


def make_env(root: Path, n_per_type: int = 3, max_answers: int = 2, raters=("alice", "bob"),
             plain_override: str | None = None) -> StudyEnv:
    data = make_dataset(root)
    results = make_results(root, plain_override)
    db_path = root / "study.sqlite"
    create_study(db_path, results, METHOD_A, METHOD_B, n_per_type=n_per_type, seed=0, data_dir=data,
                 max_answers=max_answers)
    conn = sdb.connect(db_path)
    try:
        tokens = {name: sdb.add_rater(conn, name) for name in raters}
        admin = sdb.new_admin_token(conn)
    finally:
        conn.close()
    return StudyEnv(root, results, data, db_path, tokens, admin)


def question_id_of(html: str) -> int:
    m = re.search(r'name="question_id" value="(\d+)"', html)
    assert m, "no question form in the page"
    return int(m.group(1))


def form(env: StudyEnv, token: str, qid: int) -> dict[str, str]:
    """The hidden fields of the answer form of question ``qid`` as the server renders them for the rater
    of ``token`` (question id and per-form token)."""
    conn = sdb.connect(env.db)
    try:
        rater = sdb.rater_by_token(conn, token)
        return {"question_id": str(qid), "form_token": sdb.form_token(sdb.form_secret(conn), rater["id"], qid)}
    finally:
        conn.close()
