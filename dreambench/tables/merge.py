"""One table set from several results folders (``dreambench tables A B ... --out DIR``).

Folders can only be merged when their figures are comparable: same protocol, metric profile and model
profile (a difference is refused in one line naming the folders and values). A label may appear in
several folders only when both copies are the same job: equal ``method.json`` and equal per-image rows
(subject, prompt, seed, scores); it is then kept once. Real Images (real.csv) depend only on the dataset
and the metric profile; each subject is taken from the first folder that has it.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pandas as pd

from ..errors import DataError
from ..io import connect_readonly
from ..layout import ResultsLayout
from ..metrics.aggregate import with_real_rule
from ..protocol import free_name, name_problem
from ..schema import SCORE_COLUMNS
from .load import Results, RunMeta, load_results

_SAME_JOB_COLUMNS = ["subject", "prompt_index", "seed", *SCORE_COLUMNS]


def protocol_of(res: Results) -> str:
    """The protocol a folder was run with: score_meta.json's ``protocol``, else the subject jobs in
    state.sqlite, else ``unknown`` (a bare ``dreambench score`` folder)."""
    if res.score_meta.get("protocol"):
        return str(res.score_meta["protocol"])
    path = ResultsLayout(res.results_dir).state
    if not path.is_file():
        return "unknown"
    try:
        con = connect_readonly(path)  # creates no -shm/-wal file in the folder read
        try:
            specs = [json.loads(s or "{}") for (s,) in con.execute("SELECT spec FROM jobs WHERE kind='subject'")]
        finally:
            con.close()
    except sqlite3.Error:
        return "unknown"
    found = sorted({str(s["protocol"]) for s in specs if s.get("protocol")})
    return ",".join(found) or "unknown"


def check_compatible(parts: list[Results]) -> None:
    """Refuse (one line) folders that differ in protocol, metric profile or model profile."""
    first = parts[0]
    for what, get in (("protocol", protocol_of), ("metric profile", lambda r: r.meta.metric_profile),
                      ("model profile", lambda r: r.meta.profile)):
        for other in parts[1:]:
            a, b = get(first), get(other)
            if a != b:
                raise DataError(f"cannot merge {first.results_dir} and {other.results_dir}: {what} {a} vs {b}")


def _label_rows(res: Results, label: str) -> pd.DataFrame:
    rows = res.per_image[res.per_image["method"] == label][_SAME_JOB_COLUMNS]
    return rows.sort_values(_SAME_JOB_COLUMNS[:3]).reset_index(drop=True)


def _same_job(a: Results, b: Results, label: str) -> bool:
    if a.infos.get(label) != b.infos.get(label):
        return False
    ra, rb = _label_rows(a, label), _label_rows(b, label)
    return ra.shape == rb.shape and bool((ra.astype(str) == rb.astype(str)).all().all())


def _owners(parts: list[Results]) -> dict[str, Results]:
    """``label -> the folder whose rows are used``; a label in two folders must be the same job."""
    owner: dict[str, Results] = {}
    for res in parts:
        for label in res.labels:
            if label not in owner:
                owner[label] = res
            elif not _same_job(owner[label], res, label):
                raise DataError(
                    f"label {label!r} is in both {owner[label].results_dir} and {res.results_dir} with different "
                    f"jobs (method.json or images differ); give one of them another label in the merged tables, "
                    f"e.g. {_relabel_hint(parts, res, label)}"
                )
    return owner


def _relabel_hint(parts: list[Results], res: Results, label: str) -> str:
    """A ``--relabel`` that resolves the clash of ``label``: named by the folder's own label (before any
    ``--relabel`` already given), to a name no folder shows."""
    own = next((old for old, new in (res.relabeled or {}).items() if new == label), label)
    return f"--relabel {res.results_dir}:{own}={free_name(label, {lab for p in parts for lab in p.labels})}"


def _concat(frames: list[pd.DataFrame | None]) -> pd.DataFrame | None:
    frames = [f for f in frames if f is not None and len(f)]
    return pd.concat(frames, ignore_index=True) if frames else None


def _merged_meta(parts: list[Results]) -> RunMeta:
    metas = [p.meta for p in parts]

    def join(attr: str) -> str:
        return ",".join(dict.fromkeys(str(getattr(m, attr)) for m in metas))

    weights = "random-init" if any(m.random_init for m in metas) else join("weights")
    return RunMeta(run=" + ".join(m.run for m in metas), profile=metas[0].profile, weights=weights,
                   metric_profile=metas[0].metric_profile, backbones=join("backbones"), commit=metas[0].commit,
                   score_commit=join("score_commit"), sd=join("sd"),
                   methods="; ".join(dict.fromkeys(m.methods for m in metas)))


def _merged_per_subject(parts: list[Results], owner: dict[str, Results], per_image: pd.DataFrame | None,
                        real: pd.DataFrame | None) -> pd.DataFrame | None:
    """Each label's per_subject.csv rows from the folder that owns it; None (recompute every figure) when
    a folder has none. A real-photo label's DINO / CLIP-I are taken again from the merged real.csv (each
    subject from the first folder that has it), as the figures recomputed from the merged frames are."""
    if any(p.per_subject is None for p in parts) or per_image is None:
        return None

    long = _concat([p.per_subject[p.per_subject["method"].map(lambda lab, p=p: owner.get(lab) is p)]
                    for p in parts])
    if long is None:
        return None
    return with_real_rule(long, per_image, real)


def parse_relabels(items: list[str] | tuple[str, ...], dirs: list[Path]) -> dict[Path, dict[str, str]]:
    """``DIR:LABEL=NEW`` (``--relabel``) -> ``{resolved DIR: {LABEL: NEW}}``; DIR must be one of ``dirs``
    and NEW a valid label (:func:`dreambench.protocol.name_problem`)."""
    known = {Path(d).resolve(): d for d in dirs}
    out: dict[Path, dict[str, str]] = {}
    for item in items:
        where, _, rename = item.rpartition(":")
        old, _, new = rename.partition("=")
        if not where or not old or not new:
            raise DataError(f"--relabel {item!r}: expected DIR:LABEL=NEW")
        folder = Path(where).resolve()
        if folder not in known:
            raise DataError(f"--relabel {item!r}: {where} is not one of the folders given")
        problem = name_problem(new)
        if problem:
            raise DataError(f"--relabel {item!r}: {problem}")
        out.setdefault(folder, {})[old] = new
    return out


def relabel(res: Results, renames: dict[str, str]) -> Results:
    """``res`` with its labels renamed (``{old: new}``) in every frame and mapping the tables read."""
    if not renames:
        return res
    unknown = sorted(set(renames) - set(res.labels))
    if unknown:
        raise DataError(f"--relabel: {res.results_dir} has no label {', '.join(unknown)} "
                        f"(labels: {', '.join(res.labels)})")
    rename = lambda label: renames.get(label, label)
    res.per_image = res.per_image.assign(method=res.per_image["method"].map(rename))
    if res.div is not None:
        res.div = res.div.assign(method=res.div["method"].map(rename))
    if res.per_subject is not None:
        res.per_subject = res.per_subject.assign(method=res.per_subject["method"].map(rename))
    res.infos = {rename(k): {**v, "label": rename(k)} for k, v in res.infos.items()}
    res.names = {rename(k): v for k, v in res.names.items()}
    res.relabeled = dict(renames)
    return res


def load_many(dirs: list[Path], relabels: dict[Path, dict[str, str]] | None = None) -> Results:
    """The merged :class:`Results` of several folders (one folder: that folder's Results), each folder's
    labels renamed by ``relabels`` (:func:`parse_relabels`) first."""
    relabels = relabels or {}
    if len(dirs) == 1:
        return relabel(load_results(dirs[0]), relabels.get(Path(dirs[0]).resolve(), {}))
    seen = [Path(d).resolve() for d in dirs]
    if len(set(seen)) != len(seen):
        raise DataError("the same results folder is given twice")
    parts = [relabel(load_results(d), relabels.get(Path(d).resolve(), {})) for d in dirs]
    check_compatible(parts)
    owner = _owners(parts)
    per_image = _concat([p.per_image[p.per_image["method"].map(lambda lab, p=p: owner[lab] is p)] for p in parts])
    div = _concat([p.div[p.div["method"].map(lambda lab, p=p: owner.get(lab) is p)] if p.div is not None else None
                   for p in parts])
    real = _concat([p.real for p in parts])
    if real is not None:
        first_dir = {}
        for p in parts:
            for s in p.real["subject"].unique() if p.real is not None else []:
                first_dir.setdefault(s, id(p))
        real = _concat([p.real[p.real["subject"].map(lambda s, p=p: first_dir[s] == id(p))]
                        for p in parts if p.real is not None])
    infos = {lab: res.infos[lab] for lab, res in owner.items() if lab in res.infos}
    per_subject = _merged_per_subject(parts, owner, per_image, real)
    names: dict[str, str] = {}
    for p in parts:
        names.update({k: v for k, v in p.names.items() if k not in names})
    merged = Results(parts[0].results_dir, parts[0].scores_dir, per_image, div, real, parts[0].score_meta, infos,
                     images_dir=parts[0].images_dir, names=names, parts=parts, per_subject=per_subject)
    merged.meta = _merged_meta(parts)
    return merged
