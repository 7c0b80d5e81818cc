"""The static HTML report on the synthetic results folder of builders.py (escaping, links, thumbnails,
random-init banner) and, when Chromium is installed, a headless render that must not be blank."""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
from builders import BASE, RUN, SUBJECTS, make_dataset, make_results
from PIL import Image


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        for k, v in attrs:
            if k in ("src", "href") and v:
                self.links.append(v)


def links_of(html_path: Path) -> list[str]:
    p = _Links()
    p.feed(html_path.read_text())
    return p.links


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    """One report for the module's tests (writing it is the slow part)."""
    from dreambench.report import write_report

    root = tmp_path_factory.mktemp("report")
    res = make_results(root)
    index = write_report(res, data_dir=make_dataset(root / "data"), progress=False)
    assert index == res / "report" / "index.html"
    return res


def test_index_and_pages_exist_and_links_resolve(report: Path):
    from dreambench.report import page_name

    out = report / "report"
    pages = sorted((out / "pages").glob("*.html"))
    assert len(pages) == len(BASE) * len(SUBJECTS)
    n_img = 0
    for html in [out / "index.html", *pages]:
        for link in links_of(html):
            assert "://" not in link, link  # everything relative: opens from disk, no server
            target = (html.parent / unquote(link)).resolve()
            assert target.is_file(), f"{html.name}: {link} -> {target}"
            n_img += target.suffix == ".png"
    assert n_img > 0
    page = out / "pages" / page_name("dreambooth", "dog")
    srcs = [s for s in links_of(page) if s.endswith(".png")]
    # 2 prompts + the class prompt, 2 seeds each; images linked into the results folder's images/.
    assert len(set(srcs)) == 6 and all(s.startswith("../../images/dreambooth/dog/") for s in srcs)
    index_links = links_of(out / "index.html")
    assert f"pages/{page_name('textual-inversion', 'backpack')}" in index_links
    assert "plots/table5_inputs_dino.png" in index_links


def test_prompts_are_escaped_and_in_order(report: Path):
    from dreambench.report import page_name

    html = (report / "report" / "pages" / page_name("dreambooth", "dog")).read_text()
    assert "<script>" not in html
    assert "a sks dog &lt;script&gt;alert(1)&lt;/script&gt; &amp; a red hat" in html
    # Real images first, then prompts 1 and 2 (numbered from 1, issue 25), then the class prompt.
    positions = [
        html.index(s)
        for s in (
            "Real images",
            "1. a sks dog in the jungle",
            "2. a sks dog &lt;script&gt;",
            "class prompt (PRES)",
        )
    ]
    assert positions == sorted(positions)
    assert "DINO 0.740" in html  # prompt 0 of dog: 0.60 + 0.10 + 0.04
    assert "<summary>method.json</summary>" in html and "class_noun_mode" in html


def test_real_thumbnails_are_small_copies(report: Path):
    thumbs = sorted((report / "report" / "real").rglob("*.jpg"))
    assert len(thumbs) == 2 * len(SUBJECTS)
    for t in thumbs:
        with Image.open(t) as im:
            assert max(im.size) <= 128 and im.format == "JPEG"


def test_banner_tables_and_categories(report: Path):
    html = (report / "report" / "index.html").read_text()
    assert "random-init weights: images are noise, numbers are not quality results" in html
    assert f"run: {RUN}" in html
    for n in (1, 3, 4, 5, 6):
        assert f'id="table{n}"' in html
    assert '<td class="id">Real Images</td><td>0.750</td>' in html
    assert "Table 2: no study database" in html
    assert "Per prompt category" in html and "accessorization" in html and "recontextualization" in html
    assert (report / "tables" / "table1_fidelity.csv").is_file()  # the report refreshes the tables too


def test_report_without_dataset_says_so(tmp_path: Path):
    from dreambench.report import page_name, write_report

    res = make_results(tmp_path, weights="pretrained")
    write_report(res, data_dir=tmp_path / "no-dataset", ci=False, progress=False)
    html = (res / "report" / "pages" / page_name("dreambooth", "dog")).read_text()
    assert "real images not found in" in html
    index = (res / "report" / "index.html").read_text()
    assert "random-init" not in index and "±" not in index


def test_cli_report(tmp_path: Path):
    from click.testing import CliRunner

    from dreambench.commands.tables import report_cmd

    res = make_results(tmp_path)
    r = CliRunner().invoke(report_cmd, [str(res), "--data", str(make_dataset(tmp_path / "data"))])
    assert r.exit_code == 0, r.output
    assert (res / "report" / "index.html").is_file() and "index.html" in r.output


def _chromium() -> str | None:
    for name in ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.mark.browser
@pytest.mark.skipif(_chromium() is None, reason="chromium not installed")
def test_headless_chromium_renders_report(report: Path, tmp_path: Path):
    """One render of index.html (Chromium starts slowly on a busy 2-core machine; the per-page grid was
    checked by eye): the banner, the tables and the Table 5 plot must be drawn."""
    html = report / "report" / "index.html"
    shot = tmp_path / "index.png"
    cmd = [
        _chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--hide-scrollbars",
        f"--screenshot={shot}",
        "--window-size=1200,2000",
        html.resolve().as_uri(),
    ]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120)
    assert shot.is_file(), f"no screenshot; chromium said: {proc.stderr[-2000:]}"
    with Image.open(shot) as im:
        a = np.asarray(im.convert("RGB"), dtype=np.float64)
    assert a.shape[:2] == (2000, 1200)
    # Not blank: text, table rules, the red banner and the plot give many colours and contrast.
    assert a.std() > 10 and len(np.unique(a.reshape(-1, 3), axis=0)) > 50
    red = (a[..., 0] > 150) & (a[..., 1] < 60) & (a[..., 2] < 60)
    assert red.sum() > 1000  # the random-init banner
    # The Table 5 plot (an <img> loaded from plots/): matplotlib's first line colour (31, 119, 180).
    blue = (np.abs(a[..., 0] - 31) < 8) & (np.abs(a[..., 1] - 119) < 8) & (np.abs(a[..., 2] - 180) < 8)
    assert blue.sum() > 100
    shutil.copyfile(shot, report / "screenshot_index.png")  # kept for a look by hand


def test_no_script_anywhere(report: Path):
    for html in (report / "report").rglob("*.html"):
        assert not re.search(r"<script", html.read_text(), re.IGNORECASE), html
