"""The report of a real CLI run (tiny profile, every Table 1 method and the example plug-in): thumbnail
strips, plots, comparison pages, offline links, and a headless-Chromium check that every image loads."""

from __future__ import annotations

import os
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pandas as pd
import pytest
import realrun

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
DB_NAME = "DreamBooth (Stable Diffusion)"


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def tags(path: Path) -> list[tuple[str, dict]]:
    p = _Tags()
    p.feed(path.read_text())
    return p.tags


@pytest.fixture(scope="module")
def report(tiny_results, dataset_dir, cli_env, tmp_path_factory) -> Path:
    res = realrun.copy_run(tiny_results, tmp_path_factory.mktemp("report") / "r")
    realrun.run_cli(["report", res, "--data", dataset_dir, "--name", f"dreambooth={DB_NAME}"], cli_env)
    return res / "report"


def test_links_are_relative_and_resolve(report):
    pages = [report / "index.html", *sorted((report / "compare").glob("*.html")),
             *sorted((report / "pages").glob("*.html"))]
    assert len(list((report / "compare").glob("*.html"))) == len(realrun.TINY_SUBJECTS)
    for html in pages:
        for tag, attrs in tags(html):
            for k in ("src", "href"):
                v = attrs.get(k)
                if not v:
                    continue
                assert "://" not in v and not v.startswith("//"), f"{html.name}: {v} (offline: no CDN)"
                assert (html.parent / unquote(v)).resolve().is_file(), f"{html.name}: {v}"
            assert tag not in ("script", "link"), f"{html.name}: <{tag}> (the report is self-contained)"


def test_index_strips_plots_and_compare_links(report):
    index = report / "index.html"
    t = tags(index)
    imgs = [a["src"] for tag, a in t if tag == "img"]
    for subject in realrun.TINY_SUBJECTS:
        for label in realrun.TINY_METHODS:
            strip = [s for s in imgs if s.startswith(f"thumbs/{label}/{subject}/")]
            assert len(strip) == 2, (label, subject)  # the first image of each of the 2 prompts
        assert f"compare/{subject}.html" in [a.get("href") for tag, a in t if tag == "a"]
    assert "plots/categories.png" in imgs and "plots/tradeoff.png" in imgs
    html = index.read_text()
    assert f"<th>{DB_NAME}</th>" in html and realrun.PLUGIN_METHOD in html
    # The plug-in is a row of Table 1 (HTML and CSV).
    t1 = html[html.index('id="table1"'):html.index("</section>", html.index('id="table1"'))]
    assert f'<td class="id">{realrun.PLUGIN_METHOD}</td>' in t1 and f'<td class="id">{DB_NAME}</td>' in t1
    csv = pd.read_csv(report.parent / "tables" / "table1_fidelity.csv", comment="#")
    assert realrun.PLUGIN_METHOD in set(csv["method"])


def test_plots_are_real_images(report):
    from PIL import Image

    for name in ("categories.png", "tradeoff.png"):
        with Image.open(report / "plots" / name) as im:
            assert im.width > 300 and im.height > 200
            assert len(im.convert("RGB").getcolors(1 << 16) or []) > 20  # not a blank canvas


def test_comparison_page_real_photos_then_methods_side_by_side(report, tiny_results):
    from dreambench.tables import select
    from dreambench.tables.load import load_results

    page = report / "compare" / "dog.html"
    html = page.read_text()
    assert html.index('id="real-photos"') < html.index('id="compare"')
    real = [a["src"] for tag, a in tags(page) if tag == "img" and a["src"].startswith("../real/")]
    assert len(real) == len(list((report / "real" / "dog").glob("*.jpg"))) > 0
    res = load_results(tiny_results)
    order = select.table1_order(res.labels, res.infos)
    header = html[html.index("<thead>"):html.index("</thead>")]
    shown = re.findall(r'<th><a href="\.\./pages/([^"]+)__dog\.html">', header)
    assert shown == order and DB_NAME in header
    pi = res.per_image
    dog = pi[(pi["subject"] == "dog") & (pi["prompt_index"] >= 0)]
    for idx, g in dog.groupby("prompt_index"):
        row = html[html.index(f'id="prompt-{idx + 1}"'):]
        row = row[:row.index("</tr>")]
        assert g["prompt_plain"].iloc[0] in row and g["category"].iloc[0] in row
        cells = row.split("<td>")[1:]
        assert len(cells) == len(order)
        for label, cell in zip(order, cells):
            n = len(g[g["method"] == label])
            assert cell.count(f"../../images/{label}/dog/") == 2 * n  # link + img per image
            for r in g[g["method"] == label].to_dict("records"):
                assert f"DINO {r['dino']:.3f} / CLIP-T {r['clip_t']:.3f}" in cell


@pytest.fixture
def browser(tmp_path):
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        pytest.skip(f"needs {CHROMIUM} and {CHROMEDRIVER} (apt-get install chromium chromium-driver)")
    pytest.importorskip("selenium")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--window-size=1280,1000", "--allow-file-access-from-files",
                f"--user-data-dir={tmp_path / 'chrome-profile'}"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


_LOADED = """
const imgs = Array.from(document.images);
imgs.forEach(i => { i.loading = 'eager'; i.scrollIntoView(); });
return imgs.map(i => [i.getAttribute('src'), i.complete, i.naturalWidth]);
"""


def _all_loaded(driver, url: str) -> list:
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    WebDriverWait(driver, 30).until(
        lambda d: all(c and w > 0 for _s, c, w in d.execute_script(_LOADED)) or None)
    return driver.execute_script(_LOADED)


def test_every_image_loads_in_headless_chromium(report, browser):
    from selenium.common.exceptions import TimeoutException

    for page in (report / "index.html", report / "compare" / "dog.html"):
        try:
            states = _all_loaded(browser, page.resolve().as_uri())
        except TimeoutException:
            states = browser.execute_script(_LOADED)
            broken = [s for s, c, w in states if not (c and w > 0)]
            pytest.fail(f"{page.name}: images not loaded: {broken[:10]}")
        assert len(states) >= 10 and all(w > 0 for _s, _c, w in states)
        if page.name == "index.html":
            sizes = {s: w for s, _c, w in states}
            assert sizes["plots/categories.png"] > 300 and sizes["plots/tradeoff.png"] > 300
            # The plots render on the page (laid out with a size, not collapsed or hidden).
            for pid in ("plot-categories", "plot-tradeoff"):
                box = browser.execute_script(
                    f"const r = document.getElementById('{pid}').getBoundingClientRect(); return [r.width, r.height];")
                assert box[0] > 100 and box[1] > 100, (pid, box)


def test_prompts_are_numbered_from_1_everywhere(report, tiny_results):
    """Issue 25: the index's thumbnails, the method pages and the comparison pages number a prompt alike
    (prompt_index + 1)."""
    res = __import__("dreambench.tables.load", fromlist=["load_results"]).load_results(tiny_results)
    dog = res.per_image[(res.per_image["subject"] == "dog") & (res.per_image["prompt_index"] >= 0)]
    first = dog.sort_values("prompt_index").iloc[0]
    for page in (report / "compare" / "dog.html", *sorted((report / "pages").glob("*__dog.html"))):
        html = page.read_text()
        if 'class="prompt"' not in html:
            continue
        labels = re.findall(r'<div class="prompt">(\d+)\. ', html)
        assert labels and labels[0] == "1" and "0" not in labels, (page.name, labels)
        assert 'id="prompt-0"' not in html and 'id="prompt-1"' in html, page.name
    alts = [a["alt"] for tag, a in tags(report / "index.html") if tag == "img" and "/ dog, prompt" in a.get("alt", "")]
    numbers = {int(a.rsplit(" ", 1)[1]) for a in alts}
    assert alts and min(numbers) == int(first["prompt_index"]) + 1 == 1, alts


def test_category_plot_draws_no_error_bar_without_an_interval(tiny_results, tmp_path, monkeypatch):
    """Issue 25: the tiny run has 2 subjects, so no interval: no error bar is drawn (not zero-length ones)."""
    import matplotlib.axes

    from dreambench.metrics.registry import display_names
    from dreambench.tables import build_tables
    from dreambench.tables.plots import plot_categories

    calls = []
    real_errorbar = matplotlib.axes.Axes.errorbar
    monkeypatch.setattr(matplotlib.axes.Axes, "errorbar", lambda self, *a, **k: calls.append(a) or real_errorbar(self, *a, **k))
    ts = build_tables(tiny_results)
    cat = ts.per_category
    assert len(cat) and cat["n_subjects"].max() < 3
    plot_categories(cat, sorted(set(cat["method"])), {}, tmp_path / "c.png", metric_names=display_names())
    assert calls == []
    # With three subjects' intervals, each bar gets its own error bar.
    cat3 = cat.assign(n_subjects=3, lo=cat["mean"] - 0.01, hi=cat["mean"] + 0.01)
    plot_categories(cat3, sorted(set(cat["method"])), {}, tmp_path / "c3.png", metric_names=display_names())
    assert calls


def test_category_plot_is_readable_in_headless_chromium(report, browser, tmp_path):
    """Issue 25: the per-category plot is shown at a readable size (not squeezed into ~390 px): screenshot
    of the element in a 1280 px window."""
    from PIL import Image

    browser.get((report / "index.html").resolve().as_uri())
    el = browser.find_element("id", "plot-categories")
    browser.execute_script("arguments[0].scrollIntoView();", el)
    natural, shown = browser.execute_script(
        "const i = arguments[0]; return [i.naturalWidth, i.getBoundingClientRect().width];", el)
    shot = tmp_path / "categories.png"
    assert el.screenshot(str(shot))
    width, height = Image.open(shot).size
    assert natural >= 1200, natural  # three panels of about 470 px
    assert shown >= 1000 and width >= 1000 and height >= 300, (natural, shown, width, height)
