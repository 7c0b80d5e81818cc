"""Reading a results folder for tables and reports: the score files, method.json files and run metadata.

Everything here only reads what ``dreambench score`` and ``dreambench generate`` wrote (see
:mod:`dreambench.schema` and the scoring contract); no model is loaded.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..errors import DataError
from ..layout import (  # noqa: F401  (the layout declares them; re-exported)
    AGGREGATES,
    DIV,
    IMAGES,
    PER_CATEGORY,
    PER_SUBJECT,
    REAL,
    SCORE_META,
    SCORES,
    STUDY_DB,
    ResultsLayout,
)
from ..metrics.aggregate import REAL_METHOD, with_real_rule
from ..metrics.registry import get_metric, real_metrics
from ..paths import REPO_DIR
from ..provenance import identity_text
from ..schema import METHOD_INFO, PER_IMAGE, SCORE_COLUMNS
from .names import read_names

RANDOM_INIT = "random-init"


@dataclass
class RunMeta:
    """What every table and report page names: the run, the model, the backbones, the code version.

    ``commit`` is the dreambench checkout that made the tables; ``score_commit`` the one that scored."""

    run: str
    profile: str = "unknown"
    weights: str = "unknown"
    metric_profile: str = "unknown"
    backbones: str = "unknown"
    commit: str = "unknown"
    score_commit: str = "unknown"
    sd: str = "unknown"
    #: Which code made each method's images (:func:`_methods_summary`).
    methods: str = "unknown"
    version: str = "unknown"
    missing: list[str] = field(default_factory=list)

    @property
    def random_init(self) -> bool:
        return self.weights == RANDOM_INIT

    def lines(self) -> list[str]:
        """Human-readable provenance lines (no comment markers); the random-init warning comes first."""
        out = []
        if self.random_init:
            out.append("random-init weights: not quality results")
        out += [
            f"run: {self.run}",
            f"model profile: {self.profile}; weights: {self.weights}; metric profile: {self.metric_profile}",
            f"stable diffusion: {self.sd}",
            f"methods: {self.methods}",
            f"backbones: {self.backbones}",
            f"dreambench {self.version}",
            f"tables by dreambench commit {self.commit}"
            + (f"; scored at commit {self.score_commit}" if self.score_commit != "unknown" else ""),
        ]
        if self.missing:
            out.append(f"missing (not scored, see scores/missing.csv): {', '.join(self.missing)}")
        return out


@dataclass
class Results:
    """The parts of a results folder tables and reports read.

    ``per_image`` follows the scoring contract (one row per generated image, ``prompt_index == -1`` rows
    are class-prompt samples whose ``dino`` is PRES); ``div`` and ``real`` are ``None`` when absent;
    ``infos`` maps a method label to its ``method.json`` (empty when none exists)."""

    results_dir: Path
    scores_dir: Path
    per_image: pd.DataFrame
    div: pd.DataFrame | None
    real: pd.DataFrame | None
    score_meta: dict
    infos: dict[str, dict] = field(default_factory=dict)
    meta: RunMeta | None = None
    images_dir: Path | None = None
    #: Display names recorded in ``<results>/names.json`` (label -> text).
    names: dict[str, str] = field(default_factory=dict)
    #: For a table set built from several folders: each folder's own Results (else empty).
    parts: list[Results] = field(default_factory=list)
    #: Labels renamed when loaded (``tables --relabel``: old -> new); files on disk keep the old ones.
    relabeled: dict[str, str] = field(default_factory=dict)
    #: per_subject.csv's rows of the labels (method, subject, metric, value): the per-subject values the
    #: tables read instead of recomputing; None for a folder without a current one (:func:`read_per_subject`).
    per_subject: pd.DataFrame | None = None

    @property
    def labels(self) -> list[str]:
        return sorted(self.per_image["method"].unique())


def scores_dir_of(results_dir: Path) -> Path:
    """``<results>/scores`` or, for a bare ``dreambench score --out`` folder, the folder itself."""
    results_dir = Path(results_dir)
    for d in (ResultsLayout(results_dir).scores, results_dir):
        if (d / PER_IMAGE).is_file():
            return d
    raise DataError(
        f"{results_dir}: no {SCORES}/{PER_IMAGE}; run `dreambench score` (or `dreambench run`) first"
    )


def _read_csv(path: Path, required: list[str], numeric: list[str]) -> pd.DataFrame:
    try:
        df = pd.read_csv(path, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: unreadable CSV ({e})") from None
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}")
    for c in numeric:
        if c in df.columns:
            # Empty cells stay empty strings with keep_default_na=False; they become NaN here.
            df[c] = pd.to_numeric(df[c], errors="coerce")
    for c in ("method", "subject"):
        if c in df.columns:
            df[c] = df[c].astype(str)
    return df


def read_per_image(path: Path) -> pd.DataFrame:
    df = _read_csv(path, ["method", "subject", "prompt_index", *SCORE_COLUMNS], [*SCORE_COLUMNS, "seed"])
    try:
        df["prompt_index"] = pd.to_numeric(df["prompt_index"], errors="raise").astype(int)
    except (ValueError, TypeError) as e:
        raise DataError(f"{path}: prompt_index must be integers ({e})") from None
    return df


def _real_columns() -> list[str]:
    """real.csv's metric columns (the metrics declared ``real``)."""
    return [get_metric(m).column for m in real_metrics()]


def read_per_subject(sdir: Path) -> pd.DataFrame | None:
    """per_subject.csv's rows of the labels (the Real Images rows, method ``real-images``, left out: the
    tables take them from real.csv), or None when the folder has none, it is unreadable, or it is older
    than a file it is made from (per_image.csv, div.csv, real.csv: scoring rewrites per_image.csv and
    div.csv after every chunk and per_subject.csv only when it finishes, so an interrupted run's, or a
    hand-edited folder's, per_subject.csv is stale; its tables are then recomputed as they always were)."""
    path = sdir / PER_SUBJECT
    if not path.is_file():
        return None
    made = path.stat().st_mtime_ns
    if any(p.is_file() and p.stat().st_mtime_ns > made for p in (sdir / PER_IMAGE, sdir / DIV, sdir / REAL)):
        return None
    try:  # round_trip: the very floats scoring computed (pandas' default parser may differ in the last bit)
        df = pd.read_csv(path, keep_default_na=False, float_precision="round_trip")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
        return None
    if not {"method", "subject", "metric", "value"} <= set(df.columns):
        return None
    df = df.astype({"method": str, "subject": str})
    df["value"] = pd.to_numeric(df["value"], errors="coerce")
    df["metric"] = df["metric"].astype(str)
    return df[df["method"] != REAL_METHOD][["method", "subject", "metric", "value"]].reset_index(drop=True)


def images_dir_of(results_dir: Path, score_meta: dict) -> Path | None:
    """The images folder that was scored: ``<results>/images``, else score_meta.json's ``images_dir``
    (``dreambench score --images`` elsewhere); ``None`` when neither exists."""
    for d in (ResultsLayout(results_dir).images, Path(str(score_meta.get("images_dir") or "")).expanduser()):
        if str(d) not in ("", ".") and d.is_dir():
            return d
    return None


def read_method_infos(images_dir: Path) -> dict[str, dict]:
    """``label -> method.json`` for every ``<images>/<label>/method.json``."""
    infos = {}
    if not images_dir.is_dir():
        return infos
    for p in sorted(images_dir.glob(f"*/{METHOD_INFO}")):
        try:
            infos[p.parent.name] = json.loads(p.read_text())
        except json.JSONDecodeError as e:
            raise DataError(f"{p}: invalid JSON ({e})") from None
    return infos


def git_commit(repo: Path = REPO_DIR) -> str:
    """``git rev-parse HEAD`` of the dreambench checkout, or ``"unknown"`` (installed package, no git)."""
    if not (repo / ".git").exists():
        return "unknown"
    try:
        out = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def _format_backbones(backbones) -> str:
    """``dino: arch (weights_id); clip: arch/tag (weights_id); lpips: net (weights)`` from score_meta's
    ``backbones`` (a mapping role -> description, or a list of descriptions)."""
    if not backbones:
        return "unknown"
    items = backbones.items() if isinstance(backbones, dict) else enumerate(backbones)
    parts = []
    for role, b in items:
        if not isinstance(b, dict):
            parts.append(f"{role}: {b}")
            continue
        role = role if isinstance(role, str) else b.get("name", role)
        arch = "/".join(str(b[k]) for k in ("arch", "tag") if b.get(k)) or str(
            b.get("net") or b.get("name") or "?"
        )
        wid = b.get("weights_id") or b.get("trunk") or b.get("weights")
        if b.get("digest") and wid and str(b["digest"]) not in str(wid):
            wid = f"{wid} digest {b['digest']}"
        parts.append(f"{role}: {arch}" + (f" ({wid})" if wid else ""))
    return "; ".join(parts)


def _sd_summary(df: pd.DataFrame, infos: dict) -> str:
    """``source (digest)`` of the Stable Diffusion weights that made the images (manifest columns or
    method.json), several joined by ``; ``; ``unknown`` for results made before this was recorded."""
    pairs = set()
    if df is not None and "sd_source" in df.columns:
        cols = [c for c in ("sd_source", "sd_digest") if c in df.columns]
        pairs |= {tuple(map(str, r)) for r in df[cols].dropna(subset=["sd_source"]).drop_duplicates()
                  .itertuples(index=False)}
    pairs |= {(str(i["sd_source"]), str(i.get("sd_digest"))) for i in infos.values() if i.get("sd_source")}
    pairs = {p for p in pairs if p[0] != "none"}  # real photos: no SD model made them
    return "; ".join(f"{p[0]} (digest {p[1]})" if len(p) > 1 else p[0] for p in sorted(pairs)) or "unknown"


def _methods_summary(df: pd.DataFrame, infos: dict) -> str:
    """``names: identity; ...``: the methods grouped by the provider, version and revision or code digest
    that made their images (method.json's ``method_identity``, else the per-image ``method_identity``
    column, by label); ``unknown`` for results made before identities were recorded."""
    groups: dict[str, set[str]] = {}
    known = set()
    for label, info in infos.items():
        if info.get("method_identity"):
            groups.setdefault(identity_text(info["method_identity"]), set()).add(str(info.get("method") or label))
            known.add(label)
    if df is not None and "method_identity" in df.columns:
        for (label, text), _ in df[~df["method"].isin(known)].groupby(["method", "method_identity"]):
            if str(text) not in ("", "unknown"):
                groups.setdefault(str(text), set()).add(str(label))
    return "; ".join(f"{', '.join(sorted(names))}: {text}" for text, names in sorted(groups.items())) or "unknown"


def _first(d: dict, *keys, default="unknown"):
    for k in keys:
        v = d.get(k)
        if isinstance(v, dict):
            v = v.get("name")
        if v not in (None, ""):
            return str(v)
    return default


def _values(df: pd.DataFrame, col: str) -> set[str]:
    return {v for v in df[col].astype(str) if v} if col in df.columns else set()


def run_meta(results: Results) -> RunMeta:
    """Provenance of a results folder.

    Weights: ``random-init`` when anything says so (score_meta.json's ``weights``, per-image ``weights``
    or ``gen_weights``, a method.json): a random generator with pretrained metric backbones still makes
    images that are not quality results. Model profile: the generator's (per-image ``profile``,
    method.json), else score_meta.json's ``model_profile``."""
    sm, df = results.score_meta, results.per_image
    weights = {_first(sm, "weights", "weights_label", default="")} - {""}
    weights |= _values(df, "weights") | _values(df, "gen_weights")
    weights |= {str(i["weights"]) for i in results.infos.values() if i.get("weights")}
    if RANDOM_INIT in weights:
        weights_label = RANDOM_INIT
    else:
        weights_label = ",".join(sorted(weights)) or "unknown"
    profiles = _values(df, "profile") | {
        str(i["profile"]) for i in results.infos.values() if i.get("profile")
    }
    profile = ",".join(sorted(profiles)) or _first(sm, "model_profile", "profile")
    metric_profile = _first(sm, "metric_profile", default="") or ",".join(
        sorted(_values(df, "metric_profile"))
    )
    return RunMeta(
        run=results.results_dir.resolve().name,
        profile=profile,
        weights=weights_label,
        metric_profile=metric_profile or "unknown",
        backbones=_format_backbones(sm.get("backbones")),
        sd=_sd_summary(df, results.infos),
        methods=_methods_summary(df, results.infos),
        commit=git_commit(),
        score_commit=_first(sm, "git_commit", "commit"),
        version=str(sm.get("dreambench_version") or "unknown"),
        missing=[f"{m.get('method')}/{m.get('subject')}" for m in sm.get("missing") or [] if isinstance(m, dict)],
    )


def load_results(results_dir: str | Path) -> Results:
    """Read ``<results>/scores/{per_image,div,real}.csv``, ``score_meta.json`` and the method.json files.

    Raises :class:`DataError` naming the file when per_image.csv is missing or malformed."""
    results_dir = Path(results_dir)
    sdir = scores_dir_of(results_dir)
    per_image = read_per_image(sdir / PER_IMAGE)
    div = (
        _read_csv(sdir / DIV, ["method", "subject", "prompt_index", "div"], ["div"])
        if (sdir / DIV).is_file()
        else None
    )
    real = (
        _read_csv(sdir / REAL, ["subject", *_real_columns()], [*_real_columns(), "n_pairs"])
        if (sdir / REAL).is_file()
        else None
    )
    meta_path = sdir / SCORE_META
    try:
        score_meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    except json.JSONDecodeError as e:
        raise DataError(f"{meta_path}: invalid JSON ({e})") from None
    images_dir = images_dir_of(results_dir, score_meta)
    infos = read_method_infos(images_dir) if images_dir else {}
    per_subject = read_per_subject(sdir)
    if per_subject is not None:
        # The one real row again from real.csv: a no-op for what `score` writes now, and the same figures
        # as recomputing for a folder scored before that rule existed.
        per_subject = with_real_rule(per_subject, per_image, real)
    res = Results(results_dir, sdir, per_image, div, real, score_meta, infos, images_dir=images_dir,
                  per_subject=per_subject)
    res.meta = run_meta(res)
    res.names = read_names(results_dir)
    return res
