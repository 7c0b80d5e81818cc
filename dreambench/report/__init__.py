"""A static HTML report of a results folder: ``<results>/report/index.html``, opened from disk.

Layout (all links relative, so the results folder can be moved or zipped)::

    report/index.html            provenance, Tables 1-6 (HTML), plots of Tables 5/6, per-category
                                 breakdown, links to every method/subject page
    report/pages/<method>__<subject>.html   real images, then one row per prompt with its images
    report/real/<subject>/*.jpg  thumbnails of the real images (the dataset is not needed to view)
    report/plots/*.png           copies of the Table 5/6 plots

Generated images are linked from ``../images`` (the results folder's images). All text is escaped by
Jinja2's autoescape. Random-init runs carry a banner on every page.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections import defaultdict
from pathlib import Path

import pandas as pd
from jinja2 import Environment, FileSystemLoader, select_autoescape
from tqdm import tqdm

from ..io import write_text_atomic, writes_under
from ..paths import default_data_dir
from ..protocol import CLASS_PROMPT_INDEX
from ..tables import TableSet, build_tables, display_frame, write_table_set
from ..tables.compute import METRIC_NAMES, per_subject
from ..tables.load import IMAGES, Results
from ..tables.render import fmt
from .grid import grid_rows, mean_of, url_of
from .thumbs import THUMB_SIZE, real_thumbnails

REPORT = "report"
TEMPLATES = Path(__file__).parent / "templates"
RANDOM_BANNER = "random-init weights: images are noise, numbers are not quality results"


def _env() -> Environment:
    return Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def slug(text: str) -> str:
    """A file-name-safe form of a label or subject name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("._") or "_"


def page_name(method: str, subject: str) -> str:
    return f"{slug(method)}__{slug(subject)}.html"


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


def _category_ctx(cat: pd.DataFrame | None, ci: bool) -> list[dict]:
    if cat is None or cat.empty:
        return []
    blocks = []
    categories = sorted(cat["category"].unique())
    for metric in ("dino", "clip_i", "clip_t"):
        d = cat[cat["metric"] == metric]
        rows = []
        for method, g in d.groupby("method", sort=True):
            by = {r["category"]: fmt(r["mean"], r["lo"], r["hi"], 3, ci) for r in g.to_dict("records")}
            rows.append([method, *[by.get(c, "N/A") for c in categories]])
        blocks.append(
            {"metric": METRIC_NAMES[metric], "columns": ["Method", *categories], "rows": rows, "n_left": 1}
        )
    return blocks


def _pages_ctx(res: Results) -> tuple[list[str], list[dict]]:
    """Methods (columns) and per-subject rows of links to each page, with its DINO / CLIP-T means."""
    pi = res.per_image
    means = {m: per_subject(pi, m) for m in ("dino", "clip_t")}
    methods = res.labels
    present = set(zip(pi["method"], pi["subject"]))
    rows = []
    for s in sorted(pi["subject"].unique()):
        cells = []
        for method in methods:
            if (method, s) not in present:
                cells.append(None)
                continue
            scores = " / ".join(
                f"{METRIC_NAMES[m]} {means[m].get((method, s), float('nan')):.3f}" for m in means
            )
            cells.append({"href": f"pages/{page_name(method, s)}", "scores": scores})
        rows.append({"subject": s, "cells": cells})
    return methods, rows


@writes_under("results_dir")
def write_report(
    results_dir: str | Path,
    *,
    data_dir: str | Path | None = None,
    ci: bool = True,
    study_db: str | Path | None = None,
    inputs_subjects: list[str] | None = None,
    thumb_size: int = THUMB_SIZE,
    progress: bool = True,
) -> Path:
    """Write ``<results_dir>/report/`` (and refresh ``<results_dir>/tables/``); returns index.html's path.

    ``data_dir``: the dataset folder holding ``<subject>/*.jpg`` real images (default:
    :func:`dreambench.paths.default_data_dir`); subjects missing there get a note instead of images."""
    results_dir = Path(results_dir)
    data_dir = Path(data_dir) if data_dir else default_data_dir()
    ts = build_tables(results_dir, study_db=study_db, inputs_subjects=inputs_subjects)
    write_table_set(ts, results_dir / "tables", ci=ci)
    res, meta = ts.results, ts.meta
    out = results_dir / REPORT
    (out / "plots").mkdir(parents=True, exist_ok=True)
    env = _env()
    common = {
        "meta": meta,
        "meta_lines": [x for x in meta.lines() if not x.startswith("random-init")],
        "banner": RANDOM_BANNER if meta.random_init else None,
    }

    pi = res.per_image
    subjects = sorted(pi["subject"].unique())
    real: dict[str, list[str]] = {}
    for s in tqdm(subjects, desc="real thumbnails", disable=not progress):
        thumbs = real_thumbnails(data_dir / s, out / "real" / slug(s), thumb_size)
        real[s] = [url_of("../real/", f"{slug(s)}/{p.name}") for p in thumbs]

    page_tpl = env.get_template("page.html")
    # Relative links into the scored images folder (normally <results>/images, i.e. ../../images/).
    images_dir = res.images_dir or results_dir / IMAGES
    images_prefix = Path(os.path.relpath(images_dir.resolve(), (out / "pages").resolve())).as_posix() + "/"
    by_pair: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in pi.to_dict("records"):
        by_pair[(r["method"], r["subject"])].append(r)
    div_by_pair: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in res.div.to_dict("records") if res.div is not None else []:
        div_by_pair[(r["method"], r["subject"])].append(r)
    for method, subject in tqdm(sorted(by_pair), desc="report pages", disable=not progress):
        recs = by_pair[(method, subject)]
        rows = grid_rows(recs, div_by_pair.get((method, subject)), images_prefix)
        gen = [r for r in recs if r["prompt_index"] != CLASS_PROMPT_INDEX]
        summary = {
            name: f"{mean_of(r[m] for r in gen):.3f}"
            for m, name in METRIC_NAMES.items()
            if m in ("dino", "clip_i", "clip_t")
        }
        class_noun = str(gen[0].get("class_noun", "")) if gen else ""
        html = page_tpl.render(
            **common,
            title=f"{method} / {subject}",
            method=method,
            subject=subject,
            class_noun=class_noun,
            info_json=json.dumps(res.infos[method], indent=1) if method in res.infos else None,
            real=real[subject],
            data_dir=str(data_dir),
            rows=rows,
            summary=summary,
        )
        write_text_atomic(out / "pages" / page_name(method, subject), html)
    current = {page_name(m, s) for m, s in by_pair}
    for old in (out / "pages").glob("*.html"):
        if old.name not in current:  # a label or subject no longer in the scores
            old.unlink()

    page_methods, page_rows = _pages_ctx(res)
    index = env.get_template("index.html").render(
        **common,
        title=f"dreambench report: {meta.run}",
        tables=_table_ctx(ts, ci, out / "plots"),
        skipped=sorted(ts.skipped.items()),
        problems=ts.problems,
        categories=_category_ctx(ts.per_category, ci),
        page_methods=page_methods,
        page_rows=page_rows,
        ci=ci,
    )
    return write_text_atomic(out / "index.html", index)


__all__ = ["RANDOM_BANNER", "page_name", "slug", "write_report"]
