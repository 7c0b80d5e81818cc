"""Plots of Tables 5 and 6: number of input images vs a metric, one line per subject (matplotlib, Agg)."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display: plots are files; must precede pyplot's import

import matplotlib.pyplot as plt
import pandas as pd

from ..io import atomic_path
from ..metrics.registry import PROMPT_ROWS, list_metrics


def plot_inputs(
    data: pd.DataFrame,
    metric: str,
    metric_name: str,
    path: Path,
    *,
    title: str = "",
    random_init: bool = False,
) -> Path:
    """Line plot of ``metric`` against ``num_inputs`` for each (group, subject) of a Table 5/6 frame,
    error bars = the 95% interval ``[<metric>_lo, <metric>_hi]``. Written atomically as PNG."""
    fig, ax = plt.subplots(figsize=(5.0, 3.6), dpi=120)
    series = ["group", "subject"] if "group" in data.columns and data["group"].nunique() > 1 else ["subject"]
    for key, d in data.groupby(series, sort=True):
        d = d.sort_values("num_inputs")
        y = d[metric].to_numpy(dtype=float)
        err = [y - d[f"{metric}_lo"].to_numpy(dtype=float), d[f"{metric}_hi"].to_numpy(dtype=float) - y]
        name = ": ".join(key) if isinstance(key, tuple) else str(key)
        ax.errorbar(d["num_inputs"], y, yerr=err, marker="o", capsize=3, label=name)
    ax.set_xlabel("number of input images")
    ax.set_ylabel(metric_name)
    if len(data):
        ax.set_xticks(sorted(data["num_inputs"].unique()))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _finish(fig, ax, path, title, random_init)


def _finish(fig, ax, path: Path, title: str, random_init: bool) -> Path:
    if random_init:
        title = (title + "\n" if title else "") + "random-init weights: not quality results"
    if title:
        ax.set_title(title, fontsize=9, color="darkred" if random_init else "black")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def plot_categories(
    cat: pd.DataFrame,
    labels: list[str],
    names: dict[str, str],
    path: Path,
    *,
    metrics: tuple[str, ...] | None = None,
    metric_names: dict[str, str] | None = None,
    title: str = "",
    random_init: bool = False,
    min_subjects: int = 3,
) -> Path:
    """Grouped bars of the per-category means (one panel per metric, one bar per method within each prompt
    category), error bars = the 95% interval where it is finite and ``n_subjects >= min_subjects``. ``cat`` is
    :func:`dreambench.tables.compute.per_category`'s frame."""
    if metrics is None:  # the per-category metrics of the prompt images (dreambench.metrics.registry)

        metrics = tuple(m.name for m in list_metrics() if m.per_category and m.rows == PROMPT_ROWS)
    categories = sorted(cat["category"].unique()) if len(cat) else []
    labels = [lab for lab in labels if lab in set(cat["method"])] if len(cat) else []
    # One panel per metric at a size read without zooming (about 470 px a panel at 110 dpi); the report
    # shows it at its natural width.
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.3 * len(metrics), 4.0), dpi=110, squeeze=False)
    width = 0.8 / max(1, len(labels))
    for ax, metric in zip(axes[0], metrics):
        d = cat[cat["metric"] == metric].set_index(["method", "category"]) if len(cat) else cat
        for i, lab in enumerate(labels):
            xs, ys, errs, with_ci = [], [], [[], []], []
            for j, c in enumerate(categories):
                if (lab, c) not in d.index:
                    continue
                r = d.loc[(lab, c)]
                mean, lo, hi = float(r["mean"]), float(r["lo"]), float(r["hi"])
                xs.append(j + (i - (len(labels) - 1) / 2) * width)
                ys.append(mean)
                n = float(r["n_subjects"]) if "n_subjects" in r else float("nan")
                # NaN interval, or fewer subjects than intervals need (as in the tables): no error bar.
                if not (math.isnan(lo) or math.isnan(hi)) and not n < min_subjects:
                    with_ci.append(len(xs) - 1)
                    errs[0].append(mean - lo)
                    errs[1].append(hi - mean)
            bars = ax.bar(xs, ys, width=width, label=names.get(lab, lab))
            if with_ci:  # only bars with an interval get an error bar (no zero-length caps on the others)
                ax.errorbar([xs[k] for k in with_ci], [ys[k] for k in with_ci], yerr=errs, fmt="none",
                            ecolor="#222", elinewidth=1, capsize=3, zorder=bars[0].zorder + 1)
        ax.set_xticks(range(len(categories)))
        ax.set_xticklabels(categories, fontsize=9, rotation=20, ha="right")
        ax.set_ylabel((metric_names or {}).get(metric, metric), fontsize=10)
        ax.grid(alpha=0.3, axis="y")
    if labels:
        axes[0][-1].legend(fontsize=8)
    return _finish(fig, axes[0][0], path, title, random_init)


def plot_tradeoff(
    dino: pd.Series,
    clip_t: pd.Series,
    labels: list[str],
    names: dict[str, str],
    path: Path,
    *,
    title: str = "",
    random_init: bool = False,
) -> Path:
    """Subject fidelity vs prompt fidelity: DINO (x) against CLIP-T (y) per method, one small point per
    subject and a large marker at the method's mean over subjects. ``dino``/``clip_t`` are per-subject
    means indexed by (method, subject) (:func:`dreambench.tables.compute.per_subject`)."""
    fig, ax = plt.subplots(figsize=(5.2, 4.0), dpi=110)
    both = pd.concat({"dino": dino, "clip_t": clip_t}, axis=1).dropna()
    for i, lab in enumerate(labels):
        if lab not in both.index.get_level_values("method"):
            continue
        d = both.xs(lab, level="method")
        color = f"C{i % 10}"
        ax.scatter(d["dino"], d["clip_t"], s=14, alpha=0.5, color=color)
        ax.scatter([d["dino"].mean()], [d["clip_t"].mean()], s=90, marker="D", color=color,
                   edgecolor="black", label=names.get(lab, lab))
    ax.set_xlabel("DINO (subject fidelity)")
    ax.set_ylabel("CLIP-T (prompt fidelity)")
    ax.grid(alpha=0.3)
    if len(both):
        ax.legend(fontsize=7)
    return _finish(fig, ax, path, title, random_init)
