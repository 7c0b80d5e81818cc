"""Analysis of the human study: answers export, majority votes, Table 2, metric-vs-human correlation.

Definitions
-----------
* An answer's *preference* is +1 (the image of ``method_a`` chosen), -1 (``method_b``) or 0
  ("Cannot Determine / Both Equally").
* A question's *majority* is the option (a | b | undecided) with strictly more answers than each other
  option; a tie for the most answers gives ``undecided``, as does a plurality of "cannot determine".
  With the paper's 3 raters per question: a,a,b -> a; a,b,undecided -> undecided; a,undecided,undecided
  -> undecided. Questions without answers are left out.
* Table 2 (:func:`preference_table`): per question type and method pair, the percentage of questions
  whose majority is a, b, undecided; ``n_planned`` questions the study made for the row and ``n_short``
  of them with fewer answers than the study asked for (``max_answers``; with 0, none). A row with
  ``n_short > 0`` is incomplete: its percentages are provisional, Table 2 shows its interval as n/a and
  both Table 2 and ``study analyze`` warn (:class:`IncompleteStudyWarning`).
* Metric correlation (:func:`metric_correlation`): x = metric(image of A) - metric(image of B) from the
  per-image score table; y = preference. Each question type is compared with the metrics whose declaration
  names it (:attr:`dreambench.metrics.registry.Metric.study`: subject fidelity with DINO and CLIP-I, prompt
  fidelity with CLIP-T). All method pairs in the database are pooled.
  ``unit="answer"`` (default) makes one point per answer; ``unit="question"`` one point per question
  with y its majority preference. Pearson r and Spearman rho with two-sided p-values from
  ``scipy.stats``; 95 % percentile bootstrap intervals resample *questions* with replacement (all the
  answers of a drawn question come along), ``n_resamples`` replicates from ``numpy.random.default_rng(seed)``.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import DataError, DreambenchError
from ..io import atomic_path, write_text_atomic, writes_under
from ..metrics.registry import list_metrics, study_metrics
from ..protocol import CLASS_PROMPT_INDEX
from . import db as sdb
from .questions import INSTRUCTIONS
from .rating_agreement import agreement_markdown, rating_agreement
from .ratings import load_ratings

PREFERENCE = {"a": 1, "b": -1, "undecided": 0}
ANSWER_COLUMNS = [
    "answer_id", "rater", "question_id", "question_type", "method_a", "method_b", "subject", "prompt_index",
    "prompt", "reference_text", "seed_a", "seed_b", "image_a", "image_b", "a_on_left", "shown", "choice",
    "preference", "created_at",
]
PREFERENCE_COLUMNS = ["question_type", "method_a", "method_b", "pct_a", "pct_b", "pct_undecided", "n_questions",
                      "n_planned", "n_short"]


class IncompleteStudyWarning(UserWarning):
    """A Table 2 row has questions with fewer answers than the study asked for."""
CORRELATION_COLUMNS = [
    "question_type", "metric", "unit", "n_questions", "n_points", "pearson_r", "pearson_p", "pearson_lo",
    "pearson_hi", "spearman_rho", "spearman_p", "spearman_lo", "spearman_hi", "n_resamples", "level",
    "n_unmatched", "metric_profile", "weights",
]
_TYPE_ORDER = {t: i for i, t in enumerate(sdb.QUESTION_TYPES)}


def majority(choices: Iterable[str]) -> str:
    """The majority of answers (a | b | undecided): see the module docstring. Empty -> undecided."""
    counts = Counter(choices)
    if not counts:
        return "undecided"
    top = max(counts.values())
    winners = [c for c, n in counts.items() if n == top]
    return winners[0] if len(winners) == 1 else "undecided"


def load_answers(db_path: str | Path) -> pd.DataFrame:
    """One row per answer with its question and images (columns :data:`ANSWER_COLUMNS`)."""
    conn = sdb.connect(db_path)
    try:
        df = pd.read_sql_query(
            "SELECT a.id AS answer_id, r.name AS rater, q.id AS question_id, q.qtype AS question_type,"
            " q.method_a, q.method_b, q.subject, q.prompt_index, q.prompt, q.reference_text,"
            " ia.seed AS seed_a, ib.seed AS seed_b, ia.relpath AS image_a, ib.relpath AS image_b,"
            " q.a_on_left, a.shown, a.choice, a.created_at"
            " FROM answers a JOIN raters r ON r.id = a.rater_id JOIN questions q ON q.id = a.question_id"
            " JOIN images ia ON ia.id = q.image_a JOIN images ib ON ib.id = q.image_b ORDER BY a.id",
            conn,
        )
    finally:
        conn.close()
    df["preference"] = df["choice"].map(PREFERENCE).astype(int)
    df["a_on_left"] = df["a_on_left"].astype(bool)
    return df[ANSWER_COLUMNS]


def export_answers(db_path: str | Path, out_csv: str | Path) -> pd.DataFrame:
    """Write every answer to ``out_csv`` (one row per answer, :data:`ANSWER_COLUMNS`); returns the table."""
    df = load_answers(db_path)
    with atomic_path(out_csv) as tmp:
        df.to_csv(tmp, index=False)
    return df


def majority_votes(db_path: str | Path) -> pd.DataFrame:
    """One row per answered question: question_id, question_type, method_a, method_b, subject,
    prompt_index, seed_a, seed_b, n_answers, n_a, n_b, n_undecided, majority, preference, n_asked (the
    answers the study asked for, ``max_answers``; 0: every rater) and complete (``n_answers >= n_asked``:
    a majority of fewer answers is provisional)."""
    ans = load_answers(db_path)
    keys = ["question_id", "question_type", "method_a", "method_b", "subject", "prompt_index", "seed_a", "seed_b"]
    asked = _asked(db_path)
    rows = []
    for key, g in ans.groupby(keys, sort=True):
        counts = g["choice"].value_counts()
        m = majority(g["choice"])
        n_asked = asked.get(int(key[0]), 0)
        rows.append(dict(zip(keys, key), n_answers=len(g), n_a=int(counts.get("a", 0)),
                         n_b=int(counts.get("b", 0)), n_undecided=int(counts.get("undecided", 0)),
                         majority=m, preference=PREFERENCE[m], n_asked=n_asked, complete=len(g) >= n_asked))
    cols = keys + ["n_answers", "n_a", "n_b", "n_undecided", "majority", "preference", "n_asked", "complete"]
    return pd.DataFrame(rows, columns=cols)


def _asked(db_path: str | Path) -> dict[int, int]:
    """Question id -> the answers the study asked for (``max_answers``)."""
    conn = sdb.connect(db_path)
    try:
        return {int(r[0]): int(r[1]) for r in conn.execute("SELECT id, max_answers FROM questions")}
    finally:
        conn.close()


def question_counts(db_path: str | Path) -> pd.DataFrame:
    """Per (question_type, method_a, method_b): ``n_planned`` questions in the study and ``n_short`` of
    them with fewer answers than asked for (below ``max_answers``, or none when ``max_answers`` is 0)."""
    conn = sdb.connect(db_path)
    try:
        q = pd.read_sql_query(
            "SELECT q.id, q.qtype AS question_type, q.method_a, q.method_b, q.max_answers, COUNT(a.id) AS n"
            " FROM questions q LEFT JOIN answers a ON a.question_id = q.id GROUP BY q.id", conn)
    finally:
        conn.close()
    q["short"] = (q["n"] == 0) | ((q["max_answers"] > 0) & (q["n"] < q["max_answers"]))
    keys = ["question_type", "method_a", "method_b"]
    return q.groupby(keys).agg(n_planned=("id", "size"), n_short=("short", "sum")).reset_index()


def incomplete_rows(pref: pd.DataFrame) -> list[str]:
    """One line per Table 2 row with ``n_short > 0``: which row and how many questions are short."""
    rows = pref[pref.get("n_short", pd.Series(0, pref.index)).fillna(0) > 0]
    return [f"{r.question_type} {r.method_a} vs {r.method_b}: {int(r.n_short)} of {int(r.n_planned)} questions "
            "have fewer answers than the study asked for (interval n/a, percentages provisional)"
            for r in rows.itertuples(index=False)]


def preference_table(db_path: str | Path) -> pd.DataFrame:
    """Table 2: per question type (subject | prompt) and method pair, the percentage (0-100) of answered
    questions whose majority prefers method A, method B, or is undecided; ``n_questions`` answered
    questions, ``n_planned`` and ``n_short`` (module docstring). Columns :data:`PREFERENCE_COLUMNS`;
    subject-fidelity rows first. Warns (:class:`IncompleteStudyWarning`) about incomplete rows."""
    mv = majority_votes(db_path)
    rows = []
    for (qtype, a, b), g in mv.groupby(["question_type", "method_a", "method_b"], sort=True):
        n = len(g)
        share = g["majority"].value_counts()
        rows.append({"question_type": qtype, "method_a": a, "method_b": b,
                     "pct_a": 100.0 * share.get("a", 0) / n, "pct_b": 100.0 * share.get("b", 0) / n,
                     "pct_undecided": 100.0 * share.get("undecided", 0) / n, "n_questions": n})
    df = pd.DataFrame(rows, columns=PREFERENCE_COLUMNS[:7])
    df = df.merge(question_counts(db_path), on=["question_type", "method_a", "method_b"], how="left")
    df[["n_planned", "n_short"]] = df[["n_planned", "n_short"]].fillna(0).astype(int)
    if len(df):
        df = df.sort_values(["question_type", "method_a", "method_b"],
                            key=lambda s: s.map(_TYPE_ORDER) if s.name == "question_type" else s,
                            kind="stable").reset_index(drop=True)
    for line in incomplete_rows(df):
        warnings.warn(f"{db_path}: {line}", IncompleteStudyWarning, stacklevel=2)
    return df[PREFERENCE_COLUMNS]


def _read_scores(per_image_csv: str | Path) -> pd.DataFrame:
    path = Path(per_image_csv)
    if not path.is_file():
        raise DataError(f"{path}: per-image scores not found (run `dreambench score` first)")
    df = pd.read_csv(path, keep_default_na=False, na_values=[""])
    need = ["method", "subject", "prompt_index", "seed"]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}")
    df["prompt_index"] = df["prompt_index"].astype(int)
    df["seed"] = df["seed"].astype(int)
    return df[df["prompt_index"] != CLASS_PROMPT_INDEX]


def _wcorr(w: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Row-wise weighted Pearson r: row k weighs point i by ``w[k, i]`` (its multiplicity in bootstrap
    replicate k). NaN where a side is constant."""
    sw = w.sum(axis=1, keepdims=True)
    xm = x - (w * x).sum(axis=1, keepdims=True) / sw
    ym = y - (w * y).sum(axis=1, keepdims=True) / sw
    cov, vx, vy = (w * xm * ym).sum(axis=1), (w * xm * xm).sum(axis=1), (w * ym * ym).sum(axis=1)
    den = np.sqrt(vx * vy)
    # relative threshold: a constant side leaves only rounding noise in its variance
    ok = (vx > 1e-12 * (w * x * x).sum(axis=1)) & (vy > 1e-12 * (w * y * y).sum(axis=1)) & (den > 0)
    return np.where(ok, cov / np.where(ok, den, 1.0), np.nan)


def _wranks(w: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Row-wise average ranks of ``a``'s points in the multiset where point i occurs ``w[k, i]`` times:
    (weight of smaller values) + (weight of equal values + 1) / 2, as ``scipy.stats.rankdata`` gives on the
    expanded replicate."""
    _, group = np.unique(a, return_inverse=True)
    order = np.argsort(group, kind="stable")
    starts = np.r_[0, np.nonzero(np.diff(group[order]))[0] + 1]
    wg = np.add.reduceat(w[:, order], starts, axis=1)  # weight of each distinct value
    rank_g = np.cumsum(wg, axis=1) - wg + (wg + 1) / 2
    return rank_g[:, group]


def bootstrap_replicates(x: np.ndarray, y: np.ndarray, cluster: np.ndarray, n_resamples: int = 1000,
                         seed: int = 0, chunk: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Pearson r and Spearman rho of ``n_resamples`` cluster-bootstrap replicates.

    Replicate k draws as many clusters (questions) as there are, with replacement, from
    ``numpy.random.default_rng(seed).integers(0, n_clusters, size=(n_resamples, n_clusters))[k]`` (clusters
    numbered in sorted order of their ids) and takes all points of each drawn cluster. Computed as weighted
    statistics over the original points (weight = multiplicity), ``chunk`` replicates at a time."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    _, cl = np.unique(np.asarray(cluster), return_inverse=True)
    n_cl = int(cl.max()) + 1
    picks = np.random.default_rng(seed).integers(0, n_cl, size=(n_resamples, n_cl))
    rs, rhos = np.empty(n_resamples), np.empty(n_resamples)
    for lo in range(0, n_resamples, chunk):
        p = picks[lo:lo + chunk]
        k = p.shape[0]
        wq = np.bincount((p + n_cl * np.arange(k)[:, None]).ravel(), minlength=k * n_cl).reshape(k, n_cl)
        w = wq[:, cl].astype(np.float64)
        rs[lo:lo + k] = _wcorr(w, x, y)
        rhos[lo:lo + k] = _wcorr(w, _wranks(w, x), _wranks(w, y))
    return rs, rhos


def _tests(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float, float]:
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        nan = float("nan")
        return nan, nan, nan, nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pr = stats.pearsonr(x, y)
        sr = stats.spearmanr(x, y)
    return float(pr.statistic), float(pr.pvalue), float(sr.statistic), float(sr.pvalue)


def _interval(v: np.ndarray, level: float) -> tuple[float, float]:
    """Percentile interval of the finite replicates (NaN when none)."""
    v = v[~np.isnan(v)]
    if v.size == 0:
        return float("nan"), float("nan")
    alpha = (1 - level) / 2
    lo, hi = np.quantile(v, [alpha, 1 - alpha])
    return float(lo), float(hi)


def _study_scores(scores: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """``scores`` with one column per metric declared for a study question type (its ``study``), named by
    the metric (a metric the scorer does not write is computed by its ``per_image``), and their names."""
    names = []
    for m in list_metrics():
        if not m.study:
            continue
        if m.per_image is not None and len(scores):
            scores = scores.assign(**{m.name: m.per_image(scores)})
        elif m.column != m.name and m.column in scores.columns:
            scores = scores.assign(**{m.name: scores[m.column]})
        if m.name in scores.columns:
            names.append(m.name)
    return scores, names


def correlation_points(db_path: str | Path, per_image_csv: str | Path, unit: str = "answer") -> pd.DataFrame:
    """The (x, y) points of the correlation analysis: one row per answer (``unit="answer"``) or per
    answered question (``unit="question"``) with question_id, question_type, preference and, for each
    metric in the score table, ``<metric>_a``, ``<metric>_b`` and ``<metric>_diff`` (A minus B).
    Questions whose images are absent from the score table are dropped."""
    if unit not in ("answer", "question"):
        raise DreambenchError(f"unit must be 'answer' or 'question' (got {unit!r})")
    scores, metrics = _study_scores(_read_scores(per_image_csv))
    keyed = scores.groupby(["method", "subject", "prompt_index", "seed"], as_index=False)[metrics].mean()
    pts = load_answers(db_path) if unit == "answer" else majority_votes(db_path)
    for side in ("a", "b"):
        right = keyed.rename(columns={"method": f"method_{side}", "seed": f"seed_{side}",
                                      **{m: f"{m}_{side}" for m in metrics}})
        pts = pts.merge(right, on=[f"method_{side}", "subject", "prompt_index", f"seed_{side}"], how="left")
    for m in metrics:
        pts[f"{m}_diff"] = pts[f"{m}_a"] - pts[f"{m}_b"]
    keep = ["question_id", "question_type", "method_a", "method_b", "subject", "prompt_index", "preference"]
    return pts[keep + [f"{m}_{s}" for m in metrics for s in ("a", "b", "diff")]]


def metric_correlation(db_path: str | Path, per_image_csv: str | Path, unit: str = "answer",
                       n_resamples: int = 1000, seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """Correlation between each metric's A-minus-B difference and the human preference (see the module
    docstring for the definitions). One row per (question type, metric) with columns
    :data:`CORRELATION_COLUMNS`; ``metric_profile`` and ``weights`` are copied from the score table
    (weights ``random-init`` means the metric backbones were untrained: not a quality result).
    ``n_unmatched`` counts questions without scores for both images (left out)."""
    pts = correlation_points(db_path, per_image_csv, unit)
    scores = _read_scores(per_image_csv)

    def label(col: str) -> str:
        vals = sorted({str(v) for v in scores[col].dropna().unique()}) if col in scores.columns else []
        return "|".join(vals)

    rows = []
    for qtype, metrics in study_metrics().items():
        sub = pts[pts["question_type"] == qtype]
        for metric in metrics:
            col = f"{metric}_diff"
            if col not in sub.columns:
                continue
            ok = sub[col].notna()
            unmatched = sub.loc[~ok, "question_id"].nunique()
            x = sub.loc[ok, col].to_numpy(np.float64)
            y = sub.loc[ok, "preference"].to_numpy(np.float64)
            q = sub.loc[ok, "question_id"].to_numpy()
            r, rp, rho, rhop = _tests(x, y)
            if x.size >= 3:
                rs, rhos = bootstrap_replicates(x, y, q, n_resamples, seed)
                (lo, hi), (rlo, rhi) = _interval(rs, level), _interval(rhos, level)
            else:
                lo = hi = rlo = rhi = float("nan")
            rows.append({
                "question_type": qtype, "metric": metric, "unit": unit, "n_questions": int(np.unique(q).size),
                "n_points": int(x.size), "pearson_r": r, "pearson_p": rp, "pearson_lo": lo, "pearson_hi": hi,
                "spearman_rho": rho, "spearman_p": rhop, "spearman_lo": rlo, "spearman_hi": rhi,
                "n_resamples": n_resamples, "level": level, "n_unmatched": int(unmatched),
                "metric_profile": label("metric_profile"), "weights": label("weights"),
            })
    if rows and all(r["n_points"] == 0 for r in rows) and len(pts):
        raise DataError(f"{per_image_csv}: no score rows match the study's images (same results folder?)")
    return pd.DataFrame(rows, columns=CORRELATION_COLUMNS)


# --- writing ----------------------------------------------------------------------------------------

def _fmt(v, digits: int = 3) -> str:
    if isinstance(v, float):
        return "n/a" if np.isnan(v) else f"{v:.{digits}f}"
    return str(v).replace("|", "\\|")  # a method label must not split a table cell


def _markdown(df: pd.DataFrame, columns: list[tuple[str, str]], digits: int = 3) -> str:
    head = "| " + " | ".join(title for _, title in columns) + " |"
    sep = "| " + " | ".join("---" for _ in columns) + " |"
    body = ["| " + " | ".join(_fmt(r[c], digits) for c, _ in columns) + " |" for _, r in df.iterrows()]
    return "\n".join([head, sep, *body]) + "\n"


def preference_markdown(df: pd.DataFrame) -> str:
    """Table 2 as Markdown (percentages with one decimal)."""
    cols = [("question_type", "question"), ("method_a", "method A"), ("method_b", "method B"),
            ("pct_a", "% A"), ("pct_b", "% B"), ("pct_undecided", "% undecided"), ("n_questions", "questions"),
            ("complete", "complete")]
    shown = df.assign(complete=[f"n/a: {s} of {p} questions short" if s else "yes"
                                for s, p in zip(df["n_short"], df["n_planned"])])
    short = "".join(f"- **incomplete**: {line}\n" for line in incomplete_rows(df))
    return ("# Table 2: human preference (majority vote per question)\n\n"
            "Subject fidelity: \"" + _instruction("subject") + "\"; prompt fidelity: \""
            + _instruction("prompt") + "\". A question's majority is the option with strictly most answers; "
            "ties and \"Cannot Determine / Both Equally\" count as undecided. complete: every question of the "
            "row has the answers the study asked for.\n\n" + short + ("\n" if short else "")
            + _markdown(shown, cols, 1))


def _instruction(qtype: str) -> str:
    return INSTRUCTIONS[qtype]


def correlation_markdown(df: pd.DataFrame) -> str:
    """The metric-vs-human correlation table as Markdown, with its definitions and weights label."""
    cols = [("question_type", "question"), ("metric", "metric"), ("unit", "unit"), ("n_questions", "questions"),
            ("n_points", "points"), ("pearson_r", "Pearson r"), ("pearson_lo", "r lo"), ("pearson_hi", "r hi"),
            ("pearson_p", "p"), ("spearman_rho", "Spearman rho"), ("spearman_lo", "rho lo"),
            ("spearman_hi", "rho hi"), ("spearman_p", "p (rho)"), ("weights", "weights")]
    note = ""
    if len(df) and df["weights"].astype(str).str.contains("random-init").any():
        note = ("\n**random-init**: the metric backbones had random weights; these numbers test the pipeline "
                "and are not quality results.\n")
    return ("# Metric vs. human preference\n\n"
            "x = metric(image of A) - metric(image of B); y = +1 (A preferred), -1 (B), 0 (undecided). "
            "unit = answer: one point per answer; unit = question: one point per question (majority). "
            "Intervals: 95% percentile bootstrap over questions. The paper reports Pearson r = 0.32 (DINO) "
            "and 0.27 (CLIP-I) for subject fidelity.\n" + note + "\n" + _markdown(df, cols, 3))


@writes_under("out_dir")
def write_analysis(db_path: str | Path, out_dir: str | Path, per_image_csv: str | Path | None = None,
                   n_resamples: int = 1000, seed: int = 0, judged_results: str | Path | None = None) -> list[Path]:
    """Write, for the pairwise answers, ``majority.csv``, ``preference.csv``/``.md`` and, with scores,
    ``correlation.csv``/``.md`` (both units); for the 0-4 ratings, ``ratings.csv`` and ``agreement.csv``/
    ``.md`` (:mod:`.rating_agreement`; judge rows with ``judged_results``) into ``out_dir``; returns the
    paths written."""
    out = Path(out_dir)
    written = []
    mv = majority_votes(db_path)
    ratings = load_ratings(db_path)
    if mv.empty and ratings.empty:
        raise DreambenchError(f"{db_path}: no answers yet; nothing to analyze")
    if not mv.empty:
        written += _write_pairwise(db_path, out, mv, per_image_csv, n_resamples, seed)
    if not ratings.empty:
        agreement = rating_agreement(db_path, per_image_csv, judged_results)
        for name, df in (("ratings.csv", ratings), ("agreement.csv", agreement)):
            with atomic_path(out / name) as tmp:
                df.to_csv(tmp, index=False)
            written.append(out / name)
        written.append(write_text_atomic(out / "agreement.md",
                                         agreement_markdown(agreement, _random_init(per_image_csv))))
    return written


def _random_init(per_image_csv: str | Path | None) -> bool:
    """Whether any score of ``per_image_csv`` comes from weights other than pretrained ones."""
    if per_image_csv is None:
        return False
    weights = pd.read_csv(per_image_csv, usecols=lambda c: c == "weights", keep_default_na=False)
    return "weights" in weights.columns and bool((weights["weights"].astype(str) != "pretrained").any())


def _write_pairwise(db_path: str | Path, out: Path, mv: pd.DataFrame, per_image_csv: str | Path | None,
                    n_resamples: int, seed: int) -> list[Path]:
    written = []
    with atomic_path(out / "majority.csv") as tmp:
        mv.to_csv(tmp, index=False)
    written.append(out / "majority.csv")
    pref = preference_table(db_path)
    with atomic_path(out / "preference.csv") as tmp:
        pref.to_csv(tmp, index=False)
    written += [out / "preference.csv", write_text_atomic(out / "preference.md", preference_markdown(pref))]
    if per_image_csv is not None:
        corr = pd.concat([metric_correlation(db_path, per_image_csv, unit, n_resamples, seed)
                          for unit in ("answer", "question")], ignore_index=True)
        with atomic_path(out / "correlation.csv") as tmp:
            corr.to_csv(tmp, index=False)
        written += [out / "correlation.csv", write_text_atomic(out / "correlation.md", correlation_markdown(corr))]
    return written
