"""The metric registry: each metric declared once, everything else derived from the declarations.

The end-to-end test adds a metric the way an outside package does (a ``dreambench.metrics`` entry point
of a distribution on ``PYTHONPATH``, never installed into the venv) and runs the real CLI: the metric
reaches per_subject.csv, aggregates.csv, Table 1 and the report with no dreambench file touched.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import realrun

from dreambench.metrics.profiles import get_metric_profile
from dreambench.metrics.registry import (
    display_names,
    get_metric,
    list_metrics,
    real_metrics,
    study_metrics,
    table_metrics,
)

TOY = "dino_clip_mean"
TOY_DISPLAY = "DINO+CLIP-I mean"


def test_builtin_declarations():
    assert [m.name for m in list_metrics()][:5] == ["dino", "clip_i", "clip_t", "pres", "div"]
    assert table_metrics(1) == ["dino", "clip_i", "clip_t"]
    assert table_metrics(3) == ["pres", "div", "dino", "clip_i", "clip_t"]
    assert table_metrics(4) == ["dino", "clip_i"]
    assert table_metrics(5) == ["dino"] and table_metrics(6) == ["clip_t"]
    assert real_metrics() == ["dino", "clip_i"]
    assert study_metrics() == {"subject": ("dino", "clip_i"), "prompt": ("clip_t",)}
    assert display_names()["clip_i"] == "CLIP-I"
    assert get_metric("pres").higher_is_better is False and get_metric("pres").column == "dino"


def test_value_range_comes_from_the_declaration():
    paper, x100 = get_metric_profile("paper"), get_metric_profile("x100")
    assert paper.value_range("dino") == (-1.0, 1.0)
    assert x100.value_range("pres") == (-100.0, 100.0)
    assert paper.value_range("div") == (0.0, math.inf)
    assert get_metric("div").value_range(None) == (-math.inf, math.inf)


def _toy_plugin(site: Path) -> Path:
    """A distribution ``toy-metric`` on ``site``: its module registers the toy metric and its entry point
    in the ``dreambench.metrics`` group names it."""
    site.mkdir(parents=True)
    (site / "toy_metric.py").write_text(textwrap.dedent(f'''
        from dreambench.metrics.registry import Metric


        def _mean(rows):
            return (rows["dino"] + rows["clip_i"]) / 2


        METRIC = Metric({TOY!r}, {TOY_DISPLAY!r}, True, {TOY!r}, per_image=_mean, scale="dino",
                        tables={{1: 3}}, description="mean of DINO and CLIP-I per image")
    '''))
    info = site / "toy_metric-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-metric\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[dreambench.metrics]\n{TOY} = toy_metric:METRIC\n")
    (info / "top_level.txt").write_text("toy_metric\n")
    return site


@pytest.mark.slow
def test_a_registered_metric_reaches_every_output(tmp_path, dataset_dir):
    env = realrun.cli_env(_toy_plugin(tmp_path / "site"))
    results = realrun.tiny_run(tmp_path / "results", dataset_dir, env, methods=("pretrained",),
                               subjects=("dog", "backpack", "cat"))
    scores = results / "scores"
    per_image = pd.read_csv(scores / "per_image.csv")
    regular = per_image[per_image["prompt_index"] >= 0]
    want = ((regular["dino"] + regular["clip_i"]) / 2).groupby(regular["subject"]).mean()

    per_subject = pd.read_csv(scores / "per_subject.csv")
    toy = per_subject[per_subject["metric"] == TOY].set_index("subject")["value"]
    assert sorted(toy.index) == ["backpack", "cat", "dog"]
    assert (toy - want.loc[toy.index]).abs().max() < 1e-9

    agg = pd.read_csv(scores / "aggregates.csv")
    row = agg[(agg["metric"] == TOY) & (agg["method"] == "pretrained")]
    assert len(row) == 1 and abs(float(row["mean"].iloc[0]) - want.mean()) < 1e-9
    assert int(row["n_subjects"].iloc[0]) == 3

    realrun.run_cli(["tables", results], env)
    t1 = pd.read_csv(results / "tables" / "table1_fidelity.csv", comment="#")
    assert [c for c in t1.columns if c in (*table_metrics(1), TOY)] == [*table_metrics(1), TOY]
    measured = t1[t1["method"] == "pretrained"]
    assert abs(float(measured[TOY].iloc[0]) - want.mean()) < 1e-9
    assert TOY_DISPLAY in (results / "tables" / "table1_fidelity.md").read_text()

    realrun.run_cli(["report", results, "--data", dataset_dir], env)
    assert TOY_DISPLAY in (results / "report" / "index.html").read_text()
