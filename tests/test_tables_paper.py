"""Tables a paper author pastes, from results folders the real CLI wrote (tiny profile): display names,
the paper's order, the ``n`` column, n/a intervals below 3 subjects, reported rows, several folders in one
table set, and every .tex compiled by pdflatex."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import realrun

DB_NAME = "DreamBooth & co_1 (100%)"  # LaTeX specials: the compile test must see them escaped


def read_csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, comment="#", keep_default_na=False)


@pytest.fixture(scope="module")
def paper_tables(tiny_results, cli_env, tmp_path_factory) -> Path:
    res = realrun.copy_run(tiny_results, tmp_path_factory.mktemp("paper") / "r")
    realrun.run_cli(["tables", res, "--name", f"dreambooth={DB_NAME}", "--name", "pretrained=Pretrained SD",
                     "--reference", "paper"], cli_env)
    return res / "tables"


def test_table1_names_order_n_and_na_intervals(paper_tables, tiny_results):
    from dreambench.tables import select
    from dreambench.tables.load import load_results

    t1 = read_csv(paper_tables / "table1_fidelity.csv")
    measured = t1[t1["source"] == "measured"]
    res = load_results(tiny_results)
    # Real Images first, then the methods in tables.select's order (the paper's).
    assert list(measured["method"]) == ["Real Images", *select.main_labels(res.labels, res.infos)]
    names = dict(zip(measured["method"], measured["name"]))
    if "dreambooth" in names:
        assert names["dreambooth"] == DB_NAME
    if "pretrained" in names:
        assert names["pretrained"] == "Pretrained SD"
    assert set(measured["n_subjects"].astype(int)) == {len(realrun.TINY_SUBJECTS)}
    md = (paper_tables / "table1_fidelity.md").read_text()
    assert "| Method | DINO | CLIP-I | CLIP-T | n |" in md
    real_line = next(line for line in md.splitlines() if line.startswith("| Real Images |"))
    # Two subjects: no interval is shown, whatever the bootstrap gave.
    assert re.fullmatch(r"\| Real Images \| \d\.\d{3} ± n/a \| \d\.\d{3} ± n/a \| N/A \| 2 \|", real_line)
    assert "± 0.0" not in md


def test_reported_rows_marked_and_apart(paper_tables):
    t1 = read_csv(paper_tables / "table1_fidelity.csv")
    rep = t1[t1["source"] == "reported"]
    assert list(rep["name"]) == ["Real Images (reported)", "DreamBooth (Imagen) (reported)",
                                 "DreamBooth (Stable Diffusion) (reported)",
                                 "Textual Inversion (Stable Diffusion) (reported)"]
    assert list(pd.to_numeric(rep["dino"])) == [0.774, 0.696, 0.668, 0.569]
    assert list(rep["clip_t"]) == ["", "0.306", "0.305", "0.255"]
    assert set(rep["dino_lo"]) == {""}  # never an interval, never mixed into one
    assert t1.index[t1["source"] == "reported"].min() > t1.index[t1["source"] == "measured"].max()
    md = (paper_tables / "table1_fidelity.md").read_text()
    assert "| DreamBooth (Imagen) (reported) | 0.696 | 0.812 | 0.306 | 30 |" in md
    assert "DreamBooth (Imagen): Imagen, 30 subjects" in md
    tex3 = (paper_tables / "table3_prior_preservation.tex").read_text()
    assert "Imagen, 15 subjects" in tex3 and "0.493" in tex3 and "0.664" in tex3
    t4 = read_csv(paper_tables / "table4_class_noun.csv")
    assert list(t4["class_noun"]) == ["correct", "none", "wrong"] and set(t4["source"]) == {"reported"}
    assert "Imagen, 5 subjects" in (paper_tables / "table4_class_noun.md").read_text()
    t2 = read_csv(paper_tables / "table2_preference.csv")
    assert list(pd.to_numeric(t2["pct_a"])) == [68.0, 81.0] and list(pd.to_numeric(t2["pct_undecided"])) == [10, 7]
    readme = (paper_tables / "README.md").read_text()
    assert "reported rows only" in readme


def test_every_tex_names_its_packages_and_compiles(paper_tables, tmp_path):
    if shutil.which("pdflatex") is None:
        pytest.skip("pdflatex not installed (.ci/run installs texlive-latex-base, texlive-latex-recommended)")
    texs = sorted(paper_tables.glob("*.tex"))
    assert len(texs) >= 4
    for tex in texs:
        first = tex.read_text().splitlines()[0]
        m = re.fullmatch(r"% LaTeX packages needed: ([\w, -]+) \(\\usepackage\{([\w,]+)\}\)", first)
        assert m, f"{tex.name}: first line {first!r}"
        doc = tmp_path / f"{tex.stem}_doc.tex"
        doc.write_text(f"\\documentclass{{article}}\n\\usepackage{{{m.group(2)}}}\n\\begin{{document}}\n"
                       f"\\input{{{tex.as_posix()}}}\n\\end{{document}}\n")
        proc = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", doc.name],
                              check=False, cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, f"{tex.name} does not compile:\n{proc.stdout[-3000:]}"
        assert (tmp_path / f"{tex.stem}_doc.pdf").stat().st_size > 1000


def test_bad_name_option_exits_2_and_writes_nothing(tiny_results, cli_env, tmp_path):
    res = realrun.copy_run(tiny_results, tmp_path / "r")
    shutil.rmtree(res / "tables", ignore_errors=True)
    proc = realrun.run_cli(["tables", res, "--name", "dreambooth"], cli_env, check=False)
    assert proc.returncode == 2 and "--name" in proc.stderr and "LABEL=TEXT" in proc.stderr
    assert not (res / "tables").exists()
    proc = realrun.run_cli(["tables", res, res, "--reference", "paper"], cli_env, check=False)
    assert proc.returncode == 2 and "--out" in proc.stderr
