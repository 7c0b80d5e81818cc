"""DreamBench++-style ratings in the human study: a rater scores one generated image from 0 to 4 for
Concept Preservation (CP: against the subject's reference photo) or Prompt Following (PF: against the
prompt), the scale the judge uses, so people and judge rate the very same items.

*Items* are the judge's (:func:`dreambench.judge.items.items_from_results`): image 0 of a (label, subject,
prompt), its kind (animal, human, object, style), the PF text without identifier and the reference photo.
:func:`create_ratings` draws ``n_prompts`` (subject, prompt) pairs that every chosen label has (seeded,
subjects in round-robin over a random order, as the pairwise questions are drawn) and stores, for each
label's image of each pair, one CP item and one PF item, with the image's sha256 (so an analysis never
pairs a rating with a score of a changed image).

Tables (added to the study database; a database made before them gets them on first use)::

    rating_items(id, metric, label, subject, prompt_index, kind, prompt, image_id, reference_id,
                 image_sha256, max_answers, created_at)        metric = cp | pf
    ratings(id, rater_id, item_id, score, created_at)          score 0-4, UNIQUE(rater_id, item_id)
    rating_served(rater_id, item_id, served_at)                the items the server showed to each rater
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError, DreambenchError
from ..judge.items import items_from_results, protocol_data_dir
from ..layout import ResultsLayout
from . import db as sdb

METRICS = ("cp", "pf")
SCORES = (0, 1, 2, 3, 4)
#: What a rater reads above the image (the kind picks the CP text: a style is not a subject).
INSTRUCTIONS = {
    "cp": "How well does the generated image preserve the subject of the reference image (its type, shape, "
          "colours and details)?",
    "cp_style": "How well does the generated image preserve the style of the reference image (its colours, "
                "brushwork, composition and mood)?",
    "pf": "How well does the generated image follow the text (every object, attribute, action and style it "
          "asks for)?",
}
SCORE_LABELS = {0: "0: not at all", 1: "1: slightly", 2: "2: partly", 3: "3: mostly", 4: "4: completely"}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rating_items (
    id INTEGER PRIMARY KEY,
    metric TEXT NOT NULL CHECK (metric IN ('cp', 'pf')),
    label TEXT NOT NULL, subject TEXT NOT NULL, prompt_index INTEGER NOT NULL, kind TEXT NOT NULL,
    prompt TEXT NOT NULL,
    image_id INTEGER NOT NULL REFERENCES images(id),
    reference_id INTEGER NOT NULL REFERENCES images(id),
    image_sha256 TEXT NOT NULL,
    max_answers INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    UNIQUE (metric, image_id)
);
CREATE TABLE IF NOT EXISTS ratings (
    id INTEGER PRIMARY KEY,
    rater_id INTEGER NOT NULL REFERENCES raters(id),
    item_id INTEGER NOT NULL REFERENCES rating_items(id),
    score INTEGER NOT NULL CHECK (score BETWEEN 0 AND 4),
    created_at TEXT NOT NULL,
    UNIQUE (rater_id, item_id)
);
CREATE INDEX IF NOT EXISTS ratings_item ON ratings(item_id);
CREATE TABLE IF NOT EXISTS rating_served (
    rater_id INTEGER NOT NULL REFERENCES raters(id),
    item_id INTEGER NOT NULL REFERENCES rating_items(id),
    served_at TEXT NOT NULL,
    PRIMARY KEY (rater_id, item_id)
);
"""
RATING_COLUMNS = ["rating_id", "rater", "item_id", "metric", "label", "subject", "prompt_index", "kind", "prompt",
                  "seed", "image_sha256", "score", "created_at"]


def ensure_tables(conn: sqlite3.Connection) -> None:
    """Add the rating tables to a study database (idempotent)."""
    conn.executescript(_SCHEMA)


def has_tables(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'ratings'").fetchone() is not None


def form_token(secret: str, rater_id: int, item_id: int) -> str:
    """The token of one (rater, item) rating form: :func:`dreambench.study.db.form_token` in the ``rating:``
    scope, so a question's token never passes for an item's."""
    return sdb.form_token(secret, rater_id, item_id, scope="rating:")


def instruction(metric: str, kind: str) -> str:
    return INSTRUCTIONS["cp_style" if metric == "cp" and kind == "style" else metric]


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def sample_pairs(items: list, labels: list[str], n_prompts: int, seed: int) -> list[tuple[str, int]]:
    """``n_prompts`` (subject, prompt index) pairs every label has, drawn with ``numpy.random.default_rng(seed)``:
    subjects in round-robin over a random order, prompts of a subject in random order (all pairs when
    fewer exist)."""
    have = [{(it.subject, it.prompt_index) for it in items if it.label == lab} for lab in labels]
    shared = sorted(set.intersection(*have)) if have else []
    if not shared:
        raise DataError(f"labels {', '.join(labels)} share no judged (subject, prompt)")
    by_subject: dict[str, list[int]] = {}
    for s, p in shared:
        by_subject.setdefault(s, []).append(p)
    rng = np.random.default_rng(seed)
    subjects = sorted(by_subject)
    pools = {s: [by_subject[s][i] for i in rng.permutation(len(by_subject[s]))] for s in subjects}
    order = [subjects[i] for i in rng.permutation(len(subjects))]
    picks: list[tuple[str, int]] = []
    while len(picks) < min(n_prompts, len(shared)):
        for s in order:
            if pools[s] and len(picks) < n_prompts:
                picks.append((s, pools[s].pop()))
    return picks


def create_ratings(db_path: str | Path, results_dir: str | Path, labels: list[str] | None = None,
                   n_prompts: int = 50, seed: int = 0, data_dir: str | Path | None = None,
                   protocol: str | None = None, max_answers: int = 2) -> int:
    """Store CP and PF rating items of ``labels`` (default: every label) for ``n_prompts`` sampled (subject,
    prompt) pairs into the study database ``db_path`` (created if missing); returns the items stored.
    ``max_answers``: ratings per item (the reference had two groups of raters; 0 = every rater rates every
    item). ``data_dir``/``protocol``: as for the judge (default: the folder's own)."""
    if n_prompts < 1:
        raise DreambenchError(f"--prompts must be at least 1 (got {n_prompts})")
    if max_answers < 0:
        raise DreambenchError(f"--max-answers must be at least 0 (got {max_answers})")
    data = Path(data_dir) if data_dir is not None else protocol_data_dir(results_dir, protocol)
    items, _ = items_from_results(results_dir, data, protocol, labels)
    labels = labels or sorted({it.label for it in items})
    picks = set(sample_pairs(items, labels, n_prompts, seed))
    chosen = [it for it in items if it.label in labels and (it.subject, it.prompt_index) in picks]
    images = ResultsLayout(Path(results_dir)).images
    conn = sdb.connect(db_path, create=True)
    try:
        ensure_tables(conn)
        with sdb.transaction(conn):
            stored = 0
            for it in chosen:
                ref = sdb.add_image(conn, it.reference.parent.parent, f"{it.subject}/{it.reference.name}",
                                    "reference", it.subject)
                img = sdb.add_image(conn, images, Path(it.image).resolve().relative_to(images.resolve()).as_posix(),
                                    "generated", it.subject, it.label, it.prompt_index, it.seed)
                sha = _sha256(it.image)
                for metric in METRICS:
                    cur = conn.execute(
                        "INSERT OR IGNORE INTO rating_items (metric, label, subject, prompt_index, kind, prompt,"
                        " image_id, reference_id, image_sha256, max_answers, created_at)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (metric, it.label, it.subject, it.prompt_index, it.kind, it.prompt, img, ref, sha,
                         int(max_answers), sdb.now()))
                    stored += cur.rowcount
    finally:
        conn.close()
    return stored


def next_item_id(conn: sqlite3.Connection, rater_id: int) -> int | None:
    """The item rater ``rater_id`` rates next (the least-rated open one, ties in a per-rater hash order, as
    :func:`dreambench.study.db.next_question_id` orders questions), or ``None``."""
    rows = conn.execute(
        "SELECT i.id, i.max_answers, COUNT(r.id) AS n FROM rating_items i LEFT JOIN ratings r ON r.item_id = i.id"
        " WHERE i.id NOT IN (SELECT item_id FROM ratings WHERE rater_id = ?) GROUP BY i.id", (rater_id,)).fetchall()
    open_ = [r for r in rows if r["max_answers"] <= 0 or r["n"] < r["max_answers"]]
    if not open_:
        return None
    return int(min(open_, key=lambda r: (r["n"], hashlib.sha256(f"{rater_id}:r{r['id']}".encode()).hexdigest()))["id"])


def mark_served(conn: sqlite3.Connection, rater_id: int, item_id: int) -> None:
    with sdb.transaction(conn):
        conn.execute("INSERT OR IGNORE INTO rating_served VALUES (?, ?, ?)", (rater_id, item_id, sdb.now()))


def record_rating(conn: sqlite3.Connection, rater_id: int, item_id: int, score: int) -> bool:
    """Store a rater's 0-4 score of an item, in one write transaction (so ``max_answers`` holds under
    concurrent raters). False when this rater rated it already; ``ValueError`` for a bad score or item,
    :class:`~dreambench.study.db.NotServed` / :class:`~dreambench.study.db.QuestionFull` as for answers."""
    if score not in SCORES:
        raise ValueError(f"score {score!r} is not one of {SCORES}")
    with sdb.transaction(conn):
        item = conn.execute("SELECT max_answers FROM rating_items WHERE id = ?", (item_id,)).fetchone()
        if item is None:
            raise ValueError(f"unknown item {item_id}")
        if conn.execute("SELECT 1 FROM rating_served WHERE rater_id = ? AND item_id = ?",
                        (rater_id, item_id)).fetchone() is None:
            raise sdb.NotServed(f"item {item_id} was not served to rater {rater_id}")
        if conn.execute("SELECT 1 FROM ratings WHERE rater_id = ? AND item_id = ?",
                        (rater_id, item_id)).fetchone() is not None:
            return False
        n = conn.execute("SELECT COUNT(*) FROM ratings WHERE item_id = ?", (item_id,)).fetchone()[0]
        if item["max_answers"] > 0 and n >= item["max_answers"]:
            raise sdb.QuestionFull(f"item {item_id} has its {item['max_answers']} ratings")
        conn.execute("INSERT INTO ratings (rater_id, item_id, score, created_at) VALUES (?, ?, ?, ?)",
                     (rater_id, item_id, int(score), sdb.now()))
    return True


def rating_count(conn: sqlite3.Connection, rater_id: int) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM ratings WHERE rater_id = ?", (rater_id,)).fetchone()[0])


def progress(conn: sqlite3.Connection) -> list[sqlite3.Row]:
    """Per label and metric: items, items rated at least once, items holding their ``max_answers`` ratings,
    ratings (the admin page's table)."""
    return conn.execute(
        "SELECT label, metric, COUNT(*) AS items, SUM(n > 0) AS rated, MAX(max_answers) AS max_answers,"
        " SUM(max_answers > 0 AND n >= max_answers) AS complete, SUM(n) AS ratings"
        " FROM (SELECT i.id, i.label, i.metric, i.max_answers, COUNT(r.id) AS n FROM rating_items i"
        "       LEFT JOIN ratings r ON r.item_id = i.id GROUP BY i.id)"
        " GROUP BY label, metric ORDER BY label, metric").fetchall()


def load_ratings(db_path: str | Path) -> pd.DataFrame:
    """One row per rating (:data:`RATING_COLUMNS`), in the order stored; empty when there are none."""
    conn = sdb.connect(db_path)
    try:
        if not has_tables(conn):  # a study made before ratings existed: read, never altered here
            return pd.DataFrame(columns=RATING_COLUMNS)
        return pd.read_sql_query(
            "SELECT r.id AS rating_id, t.name AS rater, i.id AS item_id, i.metric, i.label, i.subject,"
            " i.prompt_index, i.kind, i.prompt, g.seed, i.image_sha256, r.score, r.created_at"
            " FROM ratings r JOIN raters t ON t.id = r.rater_id JOIN rating_items i ON i.id = r.item_id"
            " JOIN images g ON g.id = i.image_id ORDER BY r.id", conn)
    finally:
        conn.close()
