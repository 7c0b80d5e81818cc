"""Table membership from real runs: every main label is in Table 1, in the documented order, for folders
the current code writes (roles recorded) and for folders of the release before roles (roles inferred).

Everything starts from ``tiny_results`` (a real ``dreambench run`` of dreambooth, textual-inversion,
pretrained, real and the example plug-in through the CLI); nothing here writes a method.json by hand
except to turn a real one into the older release's shape.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import realrun

#: The documented Table 1 order of the tiny run's labels (docs/tables.md, tables/select.py).
TABLE1 = ["Real Images", "dreambooth", "textual-inversion", "pretrained", "real", realrun.PLUGIN_METHOD]


def _table1_rows(tables: Path) -> dict[str, list[str]]:
    """The row labels of Table 1 as CSV, Markdown and LaTeX show them, in file order."""
    csv = list(pd.read_csv(tables / "table1_fidelity.csv", comment="#")["method"])
    md = [m.group(1).strip() for m in re.finditer(r"^\|([^|]+)\|", (tables / "table1_fidelity.md").read_text(), re.MULTILINE)]
    md = [x for x in md if x not in ("Method", "---") and not set(x) <= set("-:")]
    tex_body = (tables / "table1_fidelity.tex").read_text().split(r"\midrule", 1)[1].split(r"\bottomrule")[0]
    tex = [line.split("&")[0].strip() for line in tex_body.strip().splitlines() if "&" in line]
    return {"csv": csv, "md": md, "tex": tex}


def _method_infos(results: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sorted((results / "images").glob("*/method.json"))}


def test_real_run_records_roles_and_ppl(tiny_results):
    infos = _method_infos(tiny_results)
    assert set(infos) == set(realrun.TINY_METHODS)
    for label, info in infos.items():
        assert info["role"] == {"table": "main"}, label
    assert infos["dreambooth"]["ppl"] is True
    assert infos["textual-inversion"]["ppl"] is False  # trains, prior preservation off (its default)
    for label in ("pretrained", "real", realrun.PLUGIN_METHOD):  # does not apply: null, not "off"
        assert infos[label]["ppl"] is None, label


def test_table1_lists_every_main_label_in_documented_order(tiny_results):
    rows = _table1_rows(tiny_results / "tables")
    for fmt, labels in rows.items():
        assert labels == TABLE1, fmt


def _to_legacy(results: Path) -> None:
    """method.json as the release before roles wrote it: no role, ppl true only where prior preservation
    was on (false for pretrained, real, plug-ins and textual inversion alike)."""
    for p in (results / "images").glob("*/method.json"):
        info = json.loads(p.read_text())
        info.pop("role", None)
        info["ppl"] = bool(info["ppl"])
        p.write_text(json.dumps(info, indent=1))


def test_legacy_folder_gives_the_same_table1(tiny_results, tmp_path, cli_env):
    res = realrun.copy_run(tiny_results, tmp_path / "r")
    _to_legacy(res)
    assert all("role" not in i and i["ppl"] is not None for i in _method_infos(res).values())
    realrun.run_cli(["tables", res], cli_env)
    assert _table1_rows(res / "tables") == _table1_rows(tiny_results / "tables")
    before = pd.read_csv(tiny_results / "tables" / "table1_fidelity.csv", comment="#")
    after = pd.read_csv(res / "tables" / "table1_fidelity.csv", comment="#")
    pd.testing.assert_frame_equal(before, after)


def test_legacy_ppl_off_beside_ppl_on_is_the_ablation(tiny_results, tmp_path, cli_env):
    """A legacy paper-style folder: a second dreambooth label with ppl false next to the ppl-true one is
    Table 3's off row and stays out of Table 1, while textual inversion (ppl false too) stays in."""
    res = realrun.copy_run(tiny_results, tmp_path / "r")
    _to_legacy(res)
    pi_path = res / "scores" / "per_image.csv"
    pi = pd.read_csv(pi_path, keep_default_na=False)
    pd.concat([pi, pi[pi["method"] == "dreambooth"].assign(method="dreambooth-noppl")]).to_csv(pi_path, index=False)
    info = json.loads((res / "images" / "dreambooth" / "method.json").read_text())
    (res / "images" / "dreambooth-noppl").mkdir()
    (res / "images" / "dreambooth-noppl" / "method.json").write_text(
        json.dumps({**info, "label": "dreambooth-noppl", "ppl": False}))
    realrun.run_cli(["tables", res], cli_env)
    assert _table1_rows(res / "tables")["csv"] == TABLE1
    t3 = pd.read_csv(res / "tables" / "table3_prior_preservation.csv", comment="#")
    assert list(t3["method"]) == ["dreambooth", "dreambooth-noppl"] and list(t3["ppl"]) == ["yes", "no"]


def test_paper_plan_records_every_role():
    """--tables paper: each label's job spec carries its role (what method.json will record)."""
    from dreambench.engine.plan import RunSpec, build_plan, paper_method_runs
    from dreambench.protocol import load_protocol

    plan = build_plan(RunSpec(paper_method_runs(), subjects=["dog", "backpack"], profile="tiny", prompts=1,
                              score=False), load_protocol("dreambooth"))
    roles = {j.label: j.spec["job"]["role"] for j in plan.by_kind("subject")}
    main = {"table": "main"}
    assert roles["dreambooth"] == roles["textual-inversion"] == roles["real"] == roles["pretrained"] == main
    assert roles["dreambooth-noppl"] == {"table": "ablation", "axis": "ppl", "value": False}
    assert roles["dreambooth-noun-none"] == {"table": "ablation", "axis": "class_noun", "value": "none"}
    assert roles["dreambooth-noun-wrong"] == {"table": "ablation", "axis": "class_noun", "value": "wrong"}
    assert roles["dreambooth-n3"] == {"table": "ablation", "axis": "num_inputs", "value": 3}


def test_recorded_role_wins_over_settings():
    """A label recorded as main stays in Table 1 even with ppl false beside a ppl-true label (a user's own
    --method run with prior preservation off is a method, not the paper's ablation)."""
    from dreambench.tables import select

    base = {"method": "dreambooth", "profile": "tiny", "weights": "random-init", "class_noun_mode": "correct",
            "num_inputs": None}
    infos = {"a": {**base, "ppl": True, "role": {"table": "main"}},
             "b": {**base, "ppl": False, "role": {"table": "main"}},
             "c": {**base, "ppl": False, "role": {"table": "ablation", "axis": "ppl", "value": False}}}
    assert select.main_labels(["c", "b", "a"], infos) == ["a", "b"]
    assert select.ppl_ablation(["a", "b", "c"], infos) == {"a": True, "c": False}
