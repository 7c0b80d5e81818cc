"""A static HTML report of a results folder: ``<results>/report/index.html``, opened from disk.

Layout (all links relative, so the results folder can be moved or zipped)::

    report/index.html            provenance, Tables 1-6 (HTML), plots (per-category bars, DINO vs CLIP-T
                                 trade-off, Tables 5/6), per-category breakdown, links to every
                                 comparison page, a thumbnail strip per method x subject
    report/compare/<subject>.html   real photos, then one row per prompt, methods side by side
    report/pages/<method>__<subject>.html   real images, then one row per prompt with its images
    report/real/<subject>/*.jpg  thumbnails of the real images (the dataset is not needed to view)
    report/thumbs/<method>/<subject>/*.jpg  the index's thumbnail strips
    report/plots/*.png           the plots

Generated images are linked from ``../images`` (the results folder's images). All text is escaped by
Jinja2's autoescape. Random-init runs carry a banner on every page. When the folder was judged
(``dreambench judge``), each judged image shows its CP and PF per run and the judge's raw answers
(:mod:`dreambench.judge.judged`).
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections import defaultdict
from pathlib import Path

import pandas as pd
from jinja2 import Environment, FileSystemLoader, select_autoescape
from tqdm import tqdm

from ..errors import DreambenchError
from ..io import write_text_atomic, writes_under
from ..judge.items import protocol_data_dir, recorded_protocol
from ..judge.judged import JudgedImage, attach, load_judged
from ..layout import REPORT as LAYOUT_REPORT
from ..layout import TABLES, ResultsLayout
from ..metrics.registry import (
    CLIP_T,
    DINO,
    PROMPT_ROWS,
    display_names,
    get_metric,
    list_metrics,
    table_metrics,
)
from ..paths import default_data_dir
from ..protocol import CLASS_PROMPT_INDEX, load_protocol
from ..tables import TableSet, build_tables, display_frame, select, write_table_set
from ..tables.compute import metric_range, per_subject
from ..tables.load import Results
from ..tables.plots import plot_categories, plot_tradeoff
from ..tables.render import MIN_SUBJECTS, fmt
from .compare import compare_rows
from .grid import grid_rows, mean_of, page_values, url_of
from .names import compare_name, page_name, slug
from .thumbs import THUMB_SIZE, real_thumbnails, thumbnail

STRIP_IMAGES = 6  # thumbnails per method x subject on the index: the first image of the first prompts
STRIP_SIZE = 96

REPORT = LAYOUT_REPORT  # the layout declares it (dreambench.layout)
TEMPLATES = Path(__file__).parent / "templates"
RANDOM_BANNER = "random-init weights: images are noise, numbers are not quality results"


def _env() -> Environment:
    return Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _table_ctx(ts: TableSet, ci: bool, plot_dir: Path) -> list[dict]:
    out = []
    for t in ts.tables:
        disp = display_frame(t, ci)
        plot = None
        if t.plot is not None and Path(t.plot).is_file():
            shutil.copyfile(t.plot, plot_dir / Path(t.plot).name)
            plot = f"plots/{Path(t.plot).name}"
        out.append(
            {
                "number": t.number,
                "title": t.title,
                "columns": list(disp.columns),
                "n_left": 1 if t.pivot else len(t.ids),
                "rows": disp.astype(str).values.tolist(),
                "notes": t.notes,
                "plot": plot,
            }
        )
    return out


def _fmt_row(r: dict, ci: bool, value_range: tuple[float, float] | None = None) -> str:
    """A per-category cell; the interval is n/a below MIN_SUBJECTS subjects, and shown as its bounds where
    mean ± half-width would leave the metric's range, as in the tables."""
    n = r.get("n_subjects")
    few = n is not None and not math.isnan(float(n)) and int(n) < MIN_SUBJECTS
    nan = float("nan")
    return fmt(r["mean"], nan if few else r["lo"], nan if few else r["hi"], 3, ci, value_range=value_range)


def _category_ctx(cat: pd.DataFrame | None, ci: bool, names: dict[str, str],
                  order: tuple[str, ...] = (), per_image: pd.DataFrame | None = None) -> list[dict]:
    """Per-category blocks; categories in ``order`` (the protocol's) first, any others after, sorted."""
    if cat is None or cat.empty:
        return []
    blocks = []
    present = set(cat["category"].unique())
    categories = [c for c in order if c in present] + sorted(present - set(order))
    shown = display_names()
    for metric in (m.name for m in list_metrics() if m.per_category and m.rows == PROMPT_ROWS):
        d = cat[cat["metric"] == metric]
        bounds = metric_range(per_image, metric) if per_image is not None else None
        rows = []
        for method, g in d.groupby("method", sort=True):
            by = {r["category"]: _fmt_row(r, ci, bounds) for r in g.to_dict("records")}
            rows.append([names.get(method, method), *[by.get(c, "N/A") for c in categories]])
        blocks.append(
            {"metric": shown[metric], "columns": ["Method", *categories], "rows": rows, "n_left": 1}
        )
    return blocks


def _strip(recs: list[dict], images_dir: Path, out: Path, method: str, subject: str) -> list[tuple[str, int]]:
    """Index thumbnails of one (method, subject): (url, prompt number) of the first image of each of the
    first prompts. Prompts are numbered from 1 everywhere in the report (``prompt_index + 1``)."""
    firsts: dict[int, dict] = {}
    for r in sorted(recs, key=lambda r: (int(r["prompt_index"]), r.get("seed", 0))):
        if int(r["prompt_index"]) != CLASS_PROMPT_INDEX and str(r.get("path", "")):
            firsts.setdefault(int(r["prompt_index"]), r)
    urls = []
    for r in list(firsts.values())[:STRIP_IMAGES]:
        rel = Path(slug(method)) / slug(subject) / f"{Path(str(r['path'])).stem}.jpg"
        if thumbnail(images_dir / str(r["path"]), out / "thumbs" / rel, STRIP_SIZE) is not None:
            urls.append((url_of("thumbs/", rel.as_posix()), int(r["prompt_index"]) + 1))
    return urls


def _pages_ctx(res: Results, methods: list[str], by_pair: dict, images_dir: Path, out: Path) -> list[dict]:
    """Per-subject rows of the index: for each method, the link to its page, its DINO / CLIP-T means and
    its thumbnail strip; plus the subject's comparison page."""
    pi = res.per_image
    means = {m: per_subject(pi, m) for m in (DINO.name, CLIP_T.name)}  # the subject / prompt fidelity pair
    shown = display_names()
    rows = []
    for s in sorted(pi["subject"].unique()):
        cells = []
        for method in methods:
            if (method, s) not in by_pair:
                cells.append(None)
                continue
            scores = " / ".join(
                f"{shown[m]} {means[m].get((method, s), float('nan')):.3f}" for m in means
            )
            cells.append({"href": f"pages/{page_name(method, s)}", "scores": scores, "name": method,
                          "strip": _strip(by_pair[(method, s)], images_dir, out, method, s)})
        rows.append({"subject": s, "cells": cells, "compare": f"compare/{compare_name(s)}"})
    return rows


def _plots_ctx(ts: TableSet, methods: list[str], names: dict[str, str], out: Path) -> list[dict]:
    """The plots every report has: per-category bars with intervals and the DINO vs CLIP-T trade-off."""
    meta, pi = ts.meta, ts.results.per_image
    cat = ts.per_category if ts.per_category is not None else pd.DataFrame()
    plots = []
    if len(cat):
        path = plot_categories(cat, methods, names, out / "plots" / "categories.png", metric_names=display_names(),
                               min_subjects=MIN_SUBJECTS,
                               title=f"Per prompt category ({meta.run})", random_init=meta.random_init)
        plots.append({"src": "plots/categories.png", "id": "plot-categories",
                      "caption": "Mean over subjects per prompt category; error bars: 95% interval "
                                 f"(none below {MIN_SUBJECTS} subjects)", "wide": True})
    path = plot_tradeoff(per_subject(pi, DINO.name), per_subject(pi, CLIP_T.name), methods, names,
                         out / "plots" / "tradeoff.png", title=f"Subject vs prompt fidelity ({meta.run})",
                         random_init=meta.random_init)
    plots.append({"src": f"plots/{path.name}", "id": "plot-tradeoff",
                  "caption": "DINO vs CLIP-T: small points one subject each, diamonds the method's mean"})
    return plots


def _write_compare_pages(env, common: dict, res: Results, methods: list[str], names: dict[str, str],
                         real: dict[str, list[str]], data_dir: Path, out: Path, images_prefix: str,
                         judged: dict[tuple[str, str, int], JudgedImage]) -> None:
    tpl = env.get_template("compare.html")
    by_subject: dict[str, list[dict]] = defaultdict(list)
    for r in res.per_image.to_dict("records"):
        by_subject[r["subject"]].append(r)
    for subject, recs in sorted(by_subject.items()):
        present = {r["method"] for r in recs}
        cols = [m for m in methods if m in present]
        mine = {m: attach(judged, [r for r in recs if r["method"] == m]) for m in cols} if judged else None
        html = tpl.render(**common, title=f"{subject}: methods side by side", subject=subject,
                          methods=[{"label": m, "name": names.get(m, m), "href": f"../pages/{page_name(m, subject)}"}
                                   for m in cols],
                          real=real[subject], data_dir=str(data_dir),
                          rows=compare_rows(recs, cols, images_prefix, mine))
        write_text_atomic(out / "compare" / compare_name(subject), html)
    _remove_stale(out / "compare", {compare_name(s) for s in by_subject})


def _remove_stale(folder: Path, current: set[str]) -> None:
    for old in folder.glob("*.html"):
        if old.name not in current:  # a label or subject no longer in the scores
            old.unlink()


@writes_under("results_dir", "out_dir")
def write_report(
    results_dir: str | Path,
    *,
    out_dir: str | Path | None = None,
    data_dir: str | Path | None = None,
    ci: bool = True,
    study_db: str | Path | None = None,
    inputs_subjects: list[str] | None = None,
    thumb_size: int = THUMB_SIZE,
    progress: bool = True,
    names: dict[str, str] | None = None,
    reference: str | None = None,
) -> Path:
    """Write ``<results_dir>/report/`` (and refresh ``<results_dir>/tables/``); returns index.html's path.
    With ``out_dir``, the report and its ``tables/`` go there instead and nothing is written into
    ``results_dir`` (a read-only results folder can be reported on).

    ``data_dir``: the dataset folder holding ``<subject>/*.jpg`` real images (default: the data folder of
    the protocol the folder was run with, :func:`dreambench.judge.items.protocol_data_dir`: DreamBench++'s
    prepared subjects, else the DreamBooth dataset); subjects missing there get a note instead of images.
    ``names`` / ``reference``: as for :func:`dreambench.tables.build_tables`."""
    results_dir = Path(results_dir)
    data_dir = Path(data_dir) if data_dir else _default_data(results_dir)
    subjects = _protocol_subjects(results_dir)
    judged = load_judged(results_dir)
    # 1. The tables from the scores, written to tables/ (beside the report when out_dir is given).
    ts = build_tables(results_dir, study_db=study_db, inputs_subjects=inputs_subjects, names=names,
                      reference=reference)
    out = Path(out_dir) if out_dir is not None else ResultsLayout(results_dir).report
    write_table_set(ts, out / TABLES if out_dir is not None else ResultsLayout(results_dir).tables, ci=ci)
    res = ts.results
    names = {**res.names, **(names or {})}
    (out / "plots").mkdir(parents=True, exist_ok=True)
    env = _env()
    common = _common_ctx(ts.meta)
    # 2. Thumbnails of each subject's real photos.
    real = _real_thumbs(sorted(res.per_image["subject"].unique()), data_dir, out, thumb_size, progress)
    # 3. One page per (method, subject), linking into the scored images folder.
    images_dir = res.images_dir or ResultsLayout(results_dir).images
    images_prefix = Path(os.path.relpath(images_dir.resolve(), (out / "pages").resolve())).as_posix() + "/"
    by_pair = _write_pages(env, common, res, names, real, data_dir, out, images_prefix, progress, subjects,
                           judged)
    # 4. One page per subject comparing the methods.
    methods = select.table1_order(res.labels, res.infos)
    _write_compare_pages(env, common, res, methods, names, real, data_dir, out, images_prefix, judged)
    # 5. The index: tables, plots, categories and links to every page.
    index = env.get_template("index.html").render(
        **common,
        title=f"dreambench report: {ts.meta.run}",
        tables=_table_ctx(ts, ci, out / "plots"),
        skipped=sorted(ts.skipped.items()),
        problems=ts.problems,
        categories=_category_ctx(ts.per_category, ci, names, subjects.get("", ()), res.per_image),
        plots=_plots_ctx(ts, methods, names, out),
        page_methods=[names.get(m, m) for m in methods],
        page_rows=_pages_ctx(res, methods, by_pair, images_dir, out),
        ci=ci,
    )
    return write_text_atomic(out / "index.html", index)


def _default_data(results_dir: Path) -> Path:
    """The recorded protocol's own data folder (:func:`dreambench.judge.items.protocol_data_dir`), else the
    DreamBooth dataset's default (a folder run with several protocols has no one protocol to ask)."""
    try:
        return protocol_data_dir(results_dir)
    except DreambenchError:
        return default_data_dir()


def _protocol_subjects(results_dir: Path) -> dict:
    """Subject -> its kind in the protocol the folder was run with, and ``""`` -> the protocol's prompt
    categories in order; empty when no protocol is recorded or it cannot be loaded (its data is gone)."""
    try:
        name = recorded_protocol(results_dir)
        proto = load_protocol(name) if name else None
    except DreambenchError:
        proto = None
    if proto is None:
        return {}
    return {"": tuple(proto.categories), **{s.name: s.kind for s in proto.subjects}}


def _common_ctx(meta) -> dict:
    """What every page of the report shows: the run's metadata and the random-init banner."""
    return {
        "meta": meta,
        "meta_lines": [x for x in meta.lines() if not x.startswith("random-init")],
        "banner": RANDOM_BANNER if meta.random_init else None,
    }


def _real_thumbs(subjects: list[str], data_dir: Path, out: Path, thumb_size: int,
                 progress: bool) -> dict[str, list[str]]:
    """Subject -> the report-relative URLs of its real photos' thumbnails (written under ``out/real``)."""
    real: dict[str, list[str]] = {}
    for s in tqdm(subjects, desc="real thumbnails", disable=not progress):
        thumbs = real_thumbnails(data_dir / s, out / "real" / slug(s), thumb_size)
        real[s] = [url_of("../real/", f"{slug(s)}/{p.name}") for p in thumbs]
    return real


def _write_pages(env, common: dict, res: Results, names: dict[str, str], real: dict[str, list[str]],
                 data_dir: Path, out: Path, images_prefix: str, progress: bool, subjects: dict,
                 judged: dict[tuple[str, str, int], JudgedImage]) -> dict:
    """Write ``pages/<method>__<subject>.html`` for every (method, subject) scored, remove pages of pairs
    no longer scored; returns (method, subject) -> its per-image records. ``subjects``: subject -> its kind
    in the protocol (:func:`_protocol_subjects`); ``judged``: the judge's calls (:func:`dreambench.judge.judged.load_judged`)."""
    page_tpl = env.get_template("page.html")
    by_pair: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in res.per_image.to_dict("records"):
        by_pair[(r["method"], r["subject"])].append(r)
    div_by_pair: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in res.div.to_dict("records") if res.div is not None else []:
        div_by_pair[(r["method"], r["subject"])].append(r)
    for method, subject in tqdm(sorted(by_pair), desc="report pages", disable=not progress):
        recs = by_pair[(method, subject)]
        rows = grid_rows(recs, div_by_pair.get((method, subject)), images_prefix, attach(judged, recs))
        gen = [r for r in recs if r["prompt_index"] != CLASS_PROMPT_INDEX]
        summary = {m.display: f"{mean_of(page_values(gen, m)):.3f}" for m in map(get_metric, table_metrics(1))}
        class_noun = str(gen[0].get("class_noun", "")) if gen else ""
        html = page_tpl.render(
            **common,
            title=f"{names.get(method, method)} / {subject}",
            method=names.get(method, method),
            subject=subject,
            class_noun=class_noun,
            kind=subjects.get(subject, ""),
            info_json=json.dumps(res.infos[method], indent=1) if method in res.infos else None,
            real=real[subject],
            data_dir=str(data_dir),
            rows=rows,
            summary=summary,
            compare=f"../compare/{compare_name(subject)}",
        )
        write_text_atomic(out / "pages" / page_name(method, subject), html)
    _remove_stale(out / "pages", {page_name(m, s) for m, s in by_pair})
    return by_pair


__all__ = ["RANDOM_BANNER", "compare_name", "page_name", "slug", "write_report"]
