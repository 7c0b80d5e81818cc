"""Plots of Tables 5 and 6: number of input images vs a metric, one line per subject (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display: plots are files; must precede pyplot's import

import matplotlib.pyplot as plt
import pandas as pd

from ..io import atomic_path


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
    if random_init:
        title = (title + "\n" if title else "") + "random-init weights: not quality results"
    if title:
        ax.set_title(title, fontsize=9, color="darkred" if random_init else "black")
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path
