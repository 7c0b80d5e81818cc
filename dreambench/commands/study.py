"""`dreambench study` commands: create a human study, serve it, manage raters, export and analyze answers."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import click

from ..errors import DreambenchError
from ..layout import ResultsLayout
from ..study import db as sdb
from .options import resolve_results, results_option

_db_option = click.option("--db", "db_path", type=click.Path(dir_okay=False, path_type=Path), required=True,
                          help="The study database (SQLite).")
DEFAULT_BASE_URL = "http://127.0.0.1:8000"


def _print_links(names_tokens: list[tuple[str, str]], base_url: str) -> None:
    for name, token in names_tokens:
        click.echo(f"  {name}: {base_url.rstrip('/')}/r/{token}")


def _make_raters(db_path: Path, count: int, names: tuple[str, ...]) -> list[tuple[str, str]]:
    """Create ``count`` numbered raters plus the named ones that do not exist yet; returns (name, token)."""
    conn = sdb.connect(db_path)
    try:
        existing = set(sdb.rater_names(conn))
        made = [(n, sdb.add_rater(conn, n)) for n in sdb.next_rater_names(conn, count)]
        for n in dict.fromkeys(names):
            if n in existing:
                click.echo(f"rater {n!r} exists: use the link printed when it was made "
                           f"(or `dreambench study raters reset --db {db_path} {n}`)")
            else:
                made.append((n, sdb.add_rater(conn, n)))
    finally:
        conn.close()
    return made


@click.group("study")
def study() -> None:
    """Human study (the paper's user study): pairwise questions and DreamBench++-style 0-4 ratings, a web app
    for raters, Table 2, the metric-vs-human correlation and the ratings' agreement with the judge."""


@study.command("create")
@results_option
@click.option("--method-a", required=True, help="First method label (as in the manifest).")
@click.option("--method-b", required=True, help="Second method label.")
@click.option("--questions", "n_questions", type=int, default=50, show_default=True,
              help="Questions per question type (subject fidelity and prompt fidelity each).")
@click.option("--seed", type=int, default=0, show_default=True, help="Sampling and left/right order seed.")
@_db_option
@click.option("--data", "data_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="DreamBooth dataset folder with the reference images (default: $DREAMBENCH_DATA or the shared copy).")
@click.option("--max-answers", type=int, default=3, show_default=True,
              help="Raters per question (0: every rater answers every question).")
@click.option("--append", is_flag=True, help="Add to a database that already compares these two methods.")
@click.option("--raters", "n_raters", type=int, default=0, help="Also create N raters and print their links.")
@click.option("--base-url", default=DEFAULT_BASE_URL, show_default=True, help="Prefix of printed links.")
@click.pass_context
def create(ctx: click.Context, results: Path | None, method_a: str, method_b: str, n_questions: int, seed: int,
           db_path: Path, data_dir: Path | None, max_answers: int, append: bool, n_raters: int,
           base_url: str) -> None:
    """Sample comparison questions of two methods from RESULTS/images into a study database."""
    import warnings

    from ..study.questions import create_study  # heavy: pandas (this module is imported by --help)

    results_dir = resolve_results(ctx, results)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        n = create_study(db_path, results_dir, method_a, method_b, n_questions, seed, data_dir, max_answers, append)
    for w in caught:
        click.echo(f"warning: {w.message}", err=True)
    click.echo(f"{db_path}: stored {n} questions ({n // 2} subject fidelity, {n // 2} prompt fidelity) "
               f"comparing {method_a} and {method_b}")
    if n_raters:
        click.echo("rater links (printed once; tokens are stored hashed):")
        _print_links(_make_raters(db_path, n_raters, ()), base_url)


@study.command("create-ratings")
@results_option
@_db_option
@click.option("--labels", default=None, metavar="A,B", help="Labels whose images are rated (default: all).")
@click.option("--prompts", "n_prompts", type=click.IntRange(min=1), default=50, show_default=True,
              help="(subject, prompt) pairs sampled; each label's image of each is rated for CP and for PF.")
@click.option("--seed", type=int, default=0, show_default=True, help="Sampling seed.")
@click.option("--data", "data_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder of the subjects' reference photos (default: the folder's protocol's, as the judge).")
@click.option("--protocol", default=None, help="Protocol of the subjects' kinds (default: the one recorded).")
@click.option("--max-answers", type=click.IntRange(min=0), default=2, show_default=True,
              help="Ratings per item (the reference's two groups of raters; 0: every rater rates every item).")
@click.option("--raters", "n_raters", type=int, default=0, help="Also create N raters and print their links.")
@click.option("--base-url", default=DEFAULT_BASE_URL, show_default=True, help="Prefix of printed links.")
@click.pass_context
def create_ratings_cmd(ctx: click.Context, results: Path | None, db_path: Path, labels: str | None, n_prompts: int,
                       seed: int, data_dir: Path | None, protocol: str | None, max_answers: int, n_raters: int,
                       base_url: str) -> None:
    """Add DreamBench++-style rating items (one image, 0-4, CP against the reference photo and PF against
    the prompt) of the images the judge judges (image 0 of each prompt) to a study database."""
    from ..study.ratings import create_ratings  # heavy: pandas

    results_dir = resolve_results(ctx, results)
    chosen = [x.strip() for x in labels.split(",") if x.strip()] if labels else None
    n = create_ratings(db_path, results_dir, chosen, n_prompts, seed, data_dir, protocol, max_answers)
    click.echo(f"{db_path}: stored {n} rating items ({n // 2} CP, {n // 2} PF)")
    if n_raters:
        click.echo("rater links (printed once; tokens are stored hashed):")
        _print_links(_make_raters(db_path, n_raters, ()), base_url)


@study.command("serve")
@_db_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", type=int, default=8000, show_default=True)
@click.option("--raters", "n_raters", type=int, default=0, help="Create N new numbered raters and print their links.")
@click.option("--rater", "names", multiple=True, help="Create a rater with this name (repeatable).")
def serve(db_path: Path, host: str, port: int, n_raters: int, names: tuple[str, ...]) -> None:
    """Run the rating web app (uvicorn). Prints a fresh admin link and any new rater links."""
    import uvicorn

    from ..study.app import create_app  # heavy: starlette, jinja2, pandas

    app = create_app(db_path)
    conn = sdb.connect(db_path)
    try:
        admin = sdb.new_admin_token(conn)
        n_questions = sdb.question_count(conn)
    finally:
        conn.close()
    base = f"http://{host if ':' not in host else f'[{host}]'}:{port}"
    made = _make_raters(db_path, n_raters, names)
    click.echo(f"{db_path}: {n_questions} questions")
    if made:
        click.echo("rater links (printed once; tokens are stored hashed):")
        _print_links(made, base)
    click.echo(f"admin (progress) link, valid until the next `study serve`: {base}/admin/{admin}")
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        click.echo(f"warning: serving on {host}, reachable from other machines; links are the only protection",
                   err=True)
    uvicorn.run(app, host=host, port=port, log_level="info")


@study.group("raters")
def raters() -> None:
    """Add, list or reset raters (each has a secret link /r/<token>)."""


@raters.command("add")
@_db_option
@click.argument("names", nargs=-1)
@click.option("--count", type=int, default=0, help="Create N numbered raters (rater-01, ...).")
@click.option("--base-url", default=DEFAULT_BASE_URL, show_default=True, help="Prefix of printed links.")
def raters_add(db_path: Path, names: tuple[str, ...], count: int, base_url: str) -> None:
    """Create raters (NAMES and/or --count numbered ones) and print their links once."""
    if not names and not count:
        raise DreambenchError("give rater NAMES or --count N")
    _print_links(_make_raters(db_path, count, names), base_url)


@raters.command("list")
@_db_option
def raters_list(db_path: Path) -> None:
    """Raters with their number of answers (tokens are not shown: only their hashes are stored)."""
    conn = sdb.connect(db_path)
    try:
        rows = conn.execute("SELECT r.name, COUNT(a.id) AS n FROM raters r LEFT JOIN answers a"
                            " ON a.rater_id = r.id GROUP BY r.id ORDER BY r.id").fetchall()
    finally:
        conn.close()
    for r in rows:
        click.echo(f"{r['name']}\t{r['n']} answers")


@raters.command("reset")
@_db_option
@click.argument("name")
@click.option("--base-url", default=DEFAULT_BASE_URL, show_default=True, help="Prefix of the printed link.")
def raters_reset(db_path: Path, name: str, base_url: str) -> None:
    """Give rater NAME a new link (the old one stops working; answers are kept)."""
    conn = sdb.connect(db_path)
    try:
        token = sdb.reset_rater_token(conn, name)
    finally:
        conn.close()
    _print_links([(name, token)], base_url)


@study.command("export")
@_db_option
@click.option("--out", "out_csv", type=click.Path(dir_okay=False, path_type=Path), required=True)
def export(db_path: Path, out_csv: Path) -> None:
    """Write every answer as one CSV row (rater, question, images, side shown, choice, preference)."""
    from ..study.analysis import export_answers  # heavy: pandas, scipy

    df = export_answers(db_path, out_csv)
    click.echo(f"{out_csv}: {len(df)} answers")


@study.command("analyze")
@_db_option
@click.option("--scores", "per_image_csv", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="per_image.csv from `dreambench score` (for the metric-vs-human correlation).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--n-resamples", type=int, default=1000, show_default=True, help="Bootstrap resamples.")
@click.option("--seed", type=int, default=0, show_default=True, help="Bootstrap seed.")
@click.option("--judged", "judged_results", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Results folder judged by `dreambench judge`: its judge's scores join the ratings' agreement.")
def analyze(db_path: Path, per_image_csv: Path | None, out_dir: Path, n_resamples: int, seed: int,
            judged_results: Path | None) -> None:
    """Majority votes, Table 2 (preference.csv/.md) and, with --scores, correlation.csv/.md; for 0-4 ratings
    (`study create-ratings`), ratings.csv and agreement.csv/.md: Krippendorff's alpha human-human and
    judge-human (with --judged), Pearson r of the judge, DINO, CLIP-I and CLIP-T (with --scores) against people."""
    if judged_results is not None and not ResultsLayout(judged_results).judge_items.is_file():
        raise click.BadParameter(f"{judged_results}: no judge/judge_items.csv (run `dreambench judge` on it)",
                                 param_hint="--judged")
    import warnings

    from ..study.analysis import IncompleteStudyWarning, write_analysis

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", IncompleteStudyWarning)
        paths = write_analysis(db_path, out_dir, per_image_csv, n_resamples, seed, judged_results)
    for p in paths:
        click.echo(str(p))
    for w in dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, IncompleteStudyWarning)):
        click.echo(f"warning: {w}", err=True)


COMMANDS = [study]
