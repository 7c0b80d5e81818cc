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
    assert re.fullmatch(r"\| Real Images \| \d\.\d{3} \| \d\.\d{3} \| N/A \| 2 \|", real_line)
    assert not [ln for ln in md.splitlines() if ln.startswith("| ") and "n/a" in ln]  # issue 25: no "± n/a"
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


def _compile(tmp_path: Path, name: str, texs: list[Path], options: str = "twocolumn") -> str:
    """pdflatex of ``texs`` in one ``article`` document with ``options``; returns the log."""
    doc = tmp_path / f"{name}.tex"
    inputs = "\n".join(f"\\input{{{t.as_posix()}}}\n\\clearpage" for t in texs)
    doc.write_text(f"\\documentclass[{options}]{{article}}\n\\usepackage{{booktabs,graphicx}}\n\\begin{{document}}\n"
                   f"{inputs}\n\\end{{document}}\n")
    proc = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", doc.name],
                          check=False, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{name} does not compile:\n{proc.stdout[-3000:]}"
    return (tmp_path / f"{name}.log").read_text(errors="replace")


def _overfull(log: str) -> list[float]:
    return [float(x) for x in re.findall(r"Overfull \\hbox \(([\d.]+)pt too wide\)", log)]


def test_tables_paste_into_a_two_column_paper(paper_tables, tiny_results, cli_env, tmp_path):
    """Issue 25: every .tex of a real run's table set (+ the paper's rows) pastes into
    \\documentclass[twocolumn]{article}: no overfull box over 1 pt as table* (the default) or as a
    one-column table (--latex-float table); captions without "Table N:" or the run folder; a rule between
    measured and reported rows; Table 2's reported rows marked; --bold-best bolds the best measured value."""
    if shutil.which("pdflatex") is None:
        pytest.skip("pdflatex not installed (.ci/run installs texlive-latex-base, texlive-latex-recommended)")
    texs = sorted(paper_tables.glob("*.tex"))
    assert {t.stem for t in texs} >= {"table1_fidelity", "table2_preference", "table3_prior_preservation",
                                      "table4_class_noun"}
    for tex in texs:
        text = tex.read_text()
        caption = next(ln for ln in text.splitlines() if ln.startswith("\\caption{"))
        assert not re.search(r"Table \d", caption) and "Run " not in caption and "r/" not in caption, caption
        assert "\\begin{table*}" in text and "n/a" not in text.split("\\begin{table*}")[1], tex.name
        body = text.split("\\midrule", 1)[1]
        if "(reported)" in body and "source" in read_csv(tex.with_suffix(".csv")).columns:
            measured = (read_csv(tex.with_suffix(".csv"))["source"] == "measured").any()
            rows = body.splitlines()
            first = next(i for i, ln in enumerate(rows) if "(reported)" in ln)
            # A rule above the first reported row when measured rows come before it.
            assert (rows[first - 1] == "\\midrule") == bool(measured), (tex.name, rows[first - 1])
    for suffix in (".tex", ".md", ".csv"):  # reported rows only: no random-init banner, caption or line
        assert "random-init weights" not in (paper_tables / f"table4_class_noun{suffix}").read_text().lower()
    assert "random-init weights" in (paper_tables / "table1_fidelity.tex").read_text().lower()
    t2 = (paper_tables / "table2_preference.md").read_text()
    assert sum("(reported)" in ln for ln in t2.splitlines() if ln.startswith("| ")) == 2, t2
    readme = (paper_tables / "README.md").read_text()
    not_written = readme.split("## Not written")[1] if "## Not written" in readme else ""
    assert "Table 4" not in not_written and "- Table 4: the paper's reported rows only" in readme, readme
    log = _compile(tmp_path, "two_column", texs)
    assert not [x for x in _overfull(log) if x > 1.0], log[-3000:]

    res = realrun.copy_run(tiny_results, tmp_path / "r")
    realrun.run_cli(["tables", res, "--reference", "paper", "--latex-float", "table", "--bold-best"], cli_env)
    one = sorted((res / "tables").glob("*.tex"))
    assert all("\\begin{table}" in t.read_text() for t in one)
    log = _compile(tmp_path, "one_column", one)
    assert not [x for x in _overfull(log) if x > 1.0], log[-3000:]
    t1 = read_csv(res / "tables" / "table1_fidelity.csv")
    cand = t1[(t1["source"] == "measured") & ~t1["method"].isin(["Real Images", "real"])]
    best = f"{pd.to_numeric(cand['dino']).max():.3f}"
    bold = re.findall(r"\\textbf\{([\d.]+)", (res / "tables" / "table1_fidelity.tex").read_text())
    assert best in bold, bold


def test_bad_name_option_exits_2_and_writes_nothing(tiny_results, cli_env, tmp_path):
    res = realrun.copy_run(tiny_results, tmp_path / "r")
    shutil.rmtree(res / "tables", ignore_errors=True)
    proc = realrun.run_cli(["tables", res, "--name", "dreambooth"], cli_env, check=False)
    assert proc.returncode == 2 and "--name" in proc.stderr and "LABEL=TEXT" in proc.stderr
    assert not (res / "tables").exists()
    proc = realrun.run_cli(["tables", res, res, "--reference", "paper"], cli_env, check=False)
    assert proc.returncode == 2 and "--out" in proc.stderr
