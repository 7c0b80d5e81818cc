"""``dreambench judge``: DreamBench++'s CP and PF scores of a results folder from a VLM judge."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .options import resolve_results


def _labels(value: str | None) -> list[str] | None:
    return [x.strip() for x in value.split(",") if x.strip()] if value else None


@click.command("judge")
@click.argument("results_dir", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--profile", "profile", default="dreambench-plus", show_default=True,
              help="Judge profile: the rubric set and request settings (dreambench-plus: the published GPT-4o judge).")
@click.option("--base-url", default=None, metavar="URL",
              help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1 for vLLM (default: $OPENAI_BASE_URL, "
                   "else OpenAI).")
@click.option("--model", default=None, help="Model name sent to the endpoint (default: the profile's, "
                                            "gpt-4o-2024-05-13).")
@click.option("--api-key-env", default="OPENAI_API_KEY", show_default=True, metavar="VAR",
              help="Environment variable holding the API key (unset: refused for OpenAI, 'EMPTY' elsewhere).")
@click.option("--concurrency", type=click.IntRange(min=1, max=512), default=8, show_default=True,
              help="Requests in flight at once.")
@click.option("--runs", type=click.IntRange(min=1, max=100), default=None,
              help="Independent runs per call (default: the profile's, 3); the +- is over runs.")
@click.option("--temperature", type=click.FloatRange(0.0, 2.0), default=None,
              help="Sampling temperature (default: the profile's, 1).")
@click.option("--max-requests", type=click.IntRange(min=1), default=None,
              help="Request budget of this invocation (each attempt counts; transport retries do not). "
                   "Re-run to continue.")
@click.option("--dry-run", is_flag=True, help="Print the calls and an estimate of prompt tokens; call nothing.")
@click.option("--rubrics", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder with the profile's rubric files (default: $DREAMBENCH_JUDGE_RUBRICS, else fetched at the "
                   "pinned commit); sha256-checked.")
@click.option("--labels", default=None, metavar="A,B", help="Judge only these labels (default: all); the CSVs still list every label (not yet judged: "
                   "pending).")
@click.option("--data", "data_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Dataset folder with one folder of reference photos per subject (default: $DREAMBENCH_DATA).")
@click.option("--protocol", default=None,
              help="Protocol whose subject kinds pick the rubric (default: the one the folder was run with).")
@click.option("--retry-missing", is_flag=True, help="Ask again the calls whose answers never parsed.")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=0.1), default=120.0, show_default=True,
              help="Seconds per request before the openai library retries it.")
@click.option("--max-retries", type=click.IntRange(min=0, max=20), default=5, show_default=True,
              help="Transport retries of the openai library (408, 409, 429, 5xx, timeouts; Retry-After honoured).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.pass_context
def judge_cmd(ctx: click.Context, results_dir: Path | None, quiet: bool, labels: str | None, **kw) -> None:
    """Score RESULTS_DIR with DreamBench++'s Concept Preservation (CP) and Prompt Following (PF).

    Judges image 0 of every (label, subject, prompt) with the profile's rubrics, --runs times, and writes
    RESULTS_DIR/judge/: calls.jsonl (every finished call with its raw answers; a re-run resumes from it),
    judge_items.csv, judge_scores.csv (CP, PF, CP*PF +- over runs, by kind and prompt group, interval over
    subjects), judge_missing.csv. Exit status 1 when calls are left to make. Definitions: docs/judge.md."""
    from ..judge.evaluate import JudgeOptions, judge_results  # heavy: pandas

    results_dir = results_dir or resolve_results(ctx, None)
    opts = JudgeOptions(labels=_labels(labels), **kw)
    bar = None if quiet or kw["dry_run"] else _Bar()
    try:
        res = judge_results(results_dir, opts, on_progress=bar.update if bar else None)
    finally:
        if bar is not None:
            bar.close()
    if kw["dry_run"]:
        for p in res.problems:
            click.echo(f"warning: {p}", err=True)
        _print_plan(res, opts)
        return
    if print_judged(res):
        sys.exit(1)


def print_judged(res) -> int:
    """Print what a judge invocation found (problems, scores, errors) and return the calls it left to make
    (a message says so): ``judge``, ``run --judge`` and ``score --judge`` then exit with status 1."""
    for p in res.problems:
        click.echo(f"warning: {p}", err=True)
    _print_scores(res)
    left = res.pending - (res.progress.finished if res.progress else 0)
    if res.progress is not None:
        for e in res.progress.errors[:10]:
            click.echo(f"error: {e}", err=True)
    if left > 0:
        why = "the request budget ran out" if res.progress and res.progress.budget_hit else "requests failed"
        click.echo(f"{left} call(s) not made ({why}); re-run the same command to continue", err=True)
    return max(left, 0)


def judge_bar(quiet: bool):
    """A progress bar of judge calls (``update(progress, total)``, ``close()``), or None when quiet."""
    return None if quiet else _Bar()


def _print_plan(res, opts) -> None:
    metrics = 2
    runs = res.calls // max(1, len(res.items) * metrics)
    same = f", {res.distinct} distinct" if res.distinct != res.calls else ""
    click.echo(f"{len(res.items)} items x {metrics} metrics x {runs} runs = {res.calls} calls{same} "
               f"({res.done_before} already made, {res.pending} to make)")
    click.echo(f"estimated prompt tokens of the calls to make: {res.estimated_tokens:,} (images 255 tokens each at "
               "512 px 'high'; text 4 characters a token; answers and retries not counted)")


def _print_scores(res) -> None:
    if res.scores is None or not len(res.scores):
        return
    s = res.scores[res.scores["breakdown"] == "overall"]
    for label, lab in s.groupby("label", sort=True):
        parts = []
        for metric, name in (("cp", "CP"), ("pf", "PF"), ("cp_pf", "CP*PF")):
            r = lab[lab["metric"] == metric]
            if len(r):
                r = r.iloc[0]
                pm = f" +- {r['std']:.3f}" if r["std"] == r["std"] else ""
                parts.append(f"{name} {r['mean']:.3f}{pm}" + (f" ({int(r['n_judged'])}/{int(r['n_expected'])})"
                                                              if metric != "cp_pf" else ""))
        click.echo(f"{label}: " + ", ".join(parts))
    p = res.progress
    if p is not None:
        click.echo(f"{p.requests} request(s), {p.finished} call(s) finished ({p.unparsed} unparsed), {p.failed} "
                   f"failed, {p.prompt_tokens + p.completion_tokens:,} tokens")
    click.echo(f"{res.missing} call(s) without a score; wrote {', '.join(str(w) for w in res.written[:2])} ...")


class _Bar:
    """A tqdm bar of calls with failures and tokens, created on the first update."""

    def __init__(self):
        import threading

        self._bar, self._lock = None, threading.Lock()

    def update(self, p, total: int) -> None:
        with self._lock:  # called from the worker threads
            self._update(p, total)

    def _update(self, p, total: int) -> None:
        from tqdm import tqdm

        if self._bar is None:
            self._bar = tqdm(total=total, unit="call", desc="judge", dynamic_ncols=True, file=sys.stderr)
        self._bar.set_postfix_str(f"unparsed {p.unparsed}, failed {p.failed}, "
                                  f"tokens {p.prompt_tokens + p.completion_tokens:,}", refresh=False)
        self._bar.update(p.finished - self._bar.n)  # redraws at most every mininterval

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


COMMANDS = [judge_cmd]
