"""Sampling the comparison questions of a human study (the DreamBooth paper's user study, Sec. 4.1).

A question shows two generated images, one from each of two methods, for the same subject and prompt,
side by side in a random (seeded) left/right order, and asks one of two things:

* subject fidelity: the subject's real (reference) images are shown with
  :data:`INSTRUCTIONS` ``["subject"]``;
* prompt fidelity: the prompt text (without the rare-token identifier, i.e. ``prompt_plain`` when the
  manifest has it) is shown with :data:`INSTRUCTIONS` ``["prompt"]``.

Answers are A (left), B (right) or "Cannot determine / Both equally".
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError, DreambenchError
from ..images import list_images
from ..io import atomic_path
from ..layout import ResultsLayout
from ..manifest import read_manifest, row_problem
from ..paths import default_data_dir
from ..protocol import CLASS_PROMPT_INDEX
from . import db as sdb

INSTRUCTIONS = {
    "subject": "Which of the two images best reproduces the identity (e.g. item type and details) "
               "of the reference item?",
    "prompt": "Which of the two images is best described by the reference text?",
}
ANSWER_LABELS = {"left": "A", "right": "B", "undecided": "Cannot Determine / Both Equally"}


@dataclass(frozen=True)
class ImageRef:
    """One generated image: its manifest identity and its path relative to the images folder."""

    method: str
    subject: str
    prompt_index: int
    seed: int
    relpath: str


@dataclass(frozen=True)
class Question:
    """A sampled question (before storage). ``a``/``b`` are the images of ``method_a``/``method_b``."""

    qtype: str
    subject: str
    prompt_index: int
    prompt: str
    reference_text: str
    a: ImageRef
    b: ImageRef
    a_on_left: bool
    reference_images: list[str] = field(default_factory=list)  # relative to the data folder


def _reference_text(row: pd.Series) -> str:
    plain = str(row.get("prompt_plain", "") or "").strip()
    return plain or str(row["prompt"])


def sample_questions(manifest: pd.DataFrame, method_a: str, method_b: str, n_per_type: int, seed: int = 0,
                     data_dir: str | Path | None = None) -> list[Question]:
    """Sample ``n_per_type`` subject-fidelity and ``n_per_type`` prompt-fidelity questions.

    (subject, prompt) pairs are drawn from those both methods have images for (class-prompt samples
    excluded), subjects in round-robin over a random order so that each subject gets a near-equal share
    and no (subject, prompt) repeats within a question type until all are used; one image (seed) per
    method is drawn uniformly; the side of method A is a fair coin. Everything comes from one
    ``numpy.random.default_rng(seed)``: the same inputs and seed give the same questions.

    With ``data_dir`` the subject's reference images (``data_dir/<subject>/*``) are attached to every
    question (shown for subject fidelity); a missing subject folder raises :class:`DataError`."""
    if method_a == method_b:
        raise DreambenchError("--method-a and --method-b must differ")
    if n_per_type < 1:
        raise DreambenchError(f"--questions must be at least 1 (got {n_per_type})")
    m = manifest[manifest["prompt_index"] != CLASS_PROMPT_INDEX]
    present = set(m["method"].unique())
    for name in (method_a, method_b):
        if name not in present:
            raise DreambenchError(f"method {name!r} has no images in the manifest; methods: "
                                  f"{', '.join(sorted(present)) or '(none)'}")
    groups = {k: g.sort_values("seed") for k, g in m.groupby(["method", "subject", "prompt_index"], sort=True)}
    keys_a = {(s, p) for (meth, s, p) in groups if meth == method_a}
    keys_b = {(s, p) for (meth, s, p) in groups if meth == method_b}
    shared = sorted(keys_a & keys_b)
    if not shared:
        raise DreambenchError(f"methods {method_a!r} and {method_b!r} share no (subject, prompt)")
    by_subject: dict[str, list[int]] = {}
    for s, p in shared:
        by_subject.setdefault(s, []).append(p)
    subjects = sorted(by_subject)

    refs: dict[str, list[str]] = {}
    if data_dir is not None:
        data_dir = Path(data_dir)
        for s in subjects:
            folder = data_dir / s
            if not folder.is_dir():
                raise DataError(f"{folder}: reference images of subject {s!r} not found (check --data)")
            files = list_images(folder)
            if not files:
                raise DataError(f"{folder}: no reference images of subject {s!r}")
            refs[s] = [f"{s}/{f.name}" for f in files]

    rng = np.random.default_rng(seed)
    out: list[Question] = []
    for qtype in sdb.QUESTION_TYPES:
        pools: dict[str, list[int]] = {}
        picks: list[tuple[str, int]] = []
        while len(picks) < n_per_type:
            for s in (subjects[i] for i in rng.permutation(len(subjects))):
                if not pools.get(s):
                    pools[s] = [by_subject[s][i] for i in rng.permutation(len(by_subject[s]))]
                picks.append((s, pools[s].pop()))
                if len(picks) == n_per_type:
                    break
        for s, p in picks:
            imgs = []
            for meth in (method_a, method_b):
                g = groups[(meth, s, p)]
                row = g.iloc[int(rng.integers(len(g)))]
                imgs.append((row, ImageRef(meth, s, int(p), int(row["seed"]), str(row["path"]))))
            row_a = imgs[0][0]
            out.append(Question(
                qtype=qtype, subject=s, prompt_index=int(p), prompt=str(row_a["prompt"]),
                reference_text=_reference_text(row_a), a=imgs[0][1], b=imgs[1][1],
                a_on_left=bool(rng.random() < 0.5), reference_images=refs.get(s, []),
            ))
    return out


class ManifestWarning(UserWarning):
    """Manifest rows left out of a study (their path or names may not be used)."""


def safe_rows(manifest: pd.DataFrame, images_dir: Path) -> tuple[pd.DataFrame, list[dict]]:
    """The manifest rows that may be served, and ``{path, method, subject, prompt_index, error}`` for the
    others (see :func:`dreambench.manifest.row_problem`)."""
    keep, rejected = [], []
    for i, row in enumerate(manifest.to_dict("records")):
        why = row_problem(images_dir, row)
        if why:
            rejected.append({k: row.get(k) for k in ("path", "method", "subject", "prompt_index")} | {"error": why})
        else:
            keep.append(i)
    return manifest.iloc[keep].reset_index(drop=True), rejected


def create_study(db_path: str | Path, results_dir: str | Path, method_a: str, method_b: str,
                 n_per_type: int = 50, seed: int = 0, data_dir: str | Path | None = None,
                 max_answers: int = 3, append: bool = False) -> int:
    """Sample questions from ``<results_dir>/images`` and store them in the study database ``db_path``
    (created if missing). Returns the number of questions stored (2 × ``n_per_type``).

    ``max_answers`` caps how many raters answer one question (the paper used 3; 0 = every rater answers
    every question). A database that already holds questions of the same method pair is refused unless
    ``append``. Missing image files raise :class:`DataError` naming them."""
    images_dir = ResultsLayout(results_dir).images
    if not images_dir.is_dir():
        raise DataError(f"{images_dir}: no images folder (expected <results>/images)")
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    manifest, rejected = safe_rows(read_manifest(images_dir), images_dir)
    if rejected:  # never served; listed beside the database, like score's errors.csv
        errors_csv = Path(f"{db_path}.errors.csv")
        with atomic_path(errors_csv) as tmp:
            pd.DataFrame(rejected).to_csv(tmp, index=False)
        warnings.warn(f"{len(rejected)} manifest row(s) refused (reasons in {errors_csv}), e.g. "
                      f"{rejected[0]['path']}: {rejected[0]['error']}", ManifestWarning, stacklevel=2)
    questions = sample_questions(manifest, method_a, method_b, n_per_type, seed, data_dir)
    for q in questions:
        for ref in (q.a, q.b):
            if not (images_dir / ref.relpath).is_file():
                raise DataError(f"{images_dir / ref.relpath}: image listed in the manifest is missing")
    conn = sdb.connect(db_path, create=True)
    try:
        existing = conn.execute(
            "SELECT COUNT(*) FROM questions WHERE (method_a = ? AND method_b = ?) OR (method_a = ? AND method_b = ?)",
            (method_a, method_b, method_b, method_a),
        ).fetchone()[0]
        if existing and not append:
            raise DreambenchError(f"{db_path} already holds {existing} questions comparing {method_a} and "
                                  f"{method_b} (use another --db, or --append)")
        with sdb.transaction(conn):
            for q in questions:
                ref_ids = [sdb.add_image(conn, data_dir, r, "reference", q.subject) for r in q.reference_images]
                ids = [sdb.add_image(conn, images_dir, im.relpath, "generated", im.subject, im.method,
                                     im.prompt_index, im.seed) for im in (q.a, q.b)]
                sdb.add_question(
                    conn, qtype=q.qtype, subject=q.subject, prompt_index=q.prompt_index, prompt=q.prompt,
                    reference_text=q.reference_text, method_a=q.a.method, method_b=q.b.method,
                    image_a=ids[0], image_b=ids[1], a_on_left=q.a_on_left, reference_images=ref_ids,
                    max_answers=max_answers,
                )
    finally:
        conn.close()
    return len(questions)
