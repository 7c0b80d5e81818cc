"""`dreambench run`, `dreambench status`, `dreambench bench`: plan and run jobs, show progress, measure."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..engine.labels import parse_sets
from ..engine.replace import check_replacements
from ..engine.runner import failure_lines, format_summary, root_causes
from ..engine.state import StateDB, as_seen_now, driver_alive, progress_table
from ..errors import DreambenchError
from ..evaluation import RunRequest, evaluate, plan_run
from ..layout import TABLES_README, ResultsLayout
from ..tables.names import parse_names
from .options import (
    judge_options,
    judge_request,
    metric_weights_spec,
    resolve_results,
    results_option,
    weights_options,
)


@click.command("run")
@click.option("--method", "methods", multiple=True, metavar="[LABEL=]METHOD",
              help="Method to run (repeatable): METHOD (label = method name) or LABEL=METHOD, so several "
                   "configs of one method sit side by side (e.g. --method db-lr1e6=dreambooth).")
@click.option("--replace", "replace", multiple=True, metavar="LABEL",
              help="Replace the outputs of LABEL made before with other settings (repeatable; 'all' for every "
                   "label). Without it such a run is refused and nothing is touched.")
@click.option("--tables", "tables", type=click.Choice(["paper"]), default=None,
              help="Plan exactly the runs the paper's Tables 1, 3, 4, 5 and 6 need.")
@click.option("--profile", default="sd15", show_default=True,
              help="Model profile (sd15 | sd15-random | tiny | sdxl | sdxl-random | tiny-sdxl).")
@click.option("--model", default=None, help="SD weights (profiles sd15, sdxl): diffusers folder (fp32, fp16 or fp16 variant files), hub id or "
                   "single-file .safetensors; see docs/weights.md.")
@click.option("--vae", default=None, help="A VAE replacing the model's (e.g. madebyollin/sdxl-vae-fp16-fix for SDXL "
                                          "in fp16): AutoencoderKL folder or hub id; see docs/sdxl.md.")
@click.option("--subjects", default=None, help="Comma-separated subjects (default: all 30).")
@click.option("--steps", type=int, default=None, help="Training-steps override (default: the recipe's).")
@click.option("--sample-steps", type=int, default=None, help="Sampler-steps override (default: the profile's).")
@click.option("--recipe", default=None, help="Training recipe of the method(s) (dreambooth: paper | diffusers).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Config override for every label, or LABEL.KEY=VALUE for one label (METHOD.KEY=VALUE: every "
                   "label of that method) (repeatable).")
@click.option("--backend", type=click.Choice(["local", "ray"]), default="local", show_default=True)
@click.option("--address", default=None, help="Ray cluster address (--backend ray); default: a local instance.")
@click.option("--device", type=click.Choice(["auto", "cuda", "cpu"]), default="auto", show_default=True)
@click.option("--gpus", default=None, help="GPU indices for the local backend, e.g. 0,1 (default: all visible).")
@click.option("--jobs-per-gpu", type=int, default=1, show_default=True,
              help="Worker processes per GPU (on CPU: number of CPU workers).")
@click.option("--retries", type=int, default=1, show_default=True, help="Retries of a failing job.")
@click.option("--threads", type=int, default=None,
              help="Torch threads per CPU worker (default: the cores split between the workers; "
                   "one worker gets them all).")
@click.option("--dry-run", is_flag=True, help="Print the plan and its size; run nothing.")
@click.option("--images-per-prompt", type=int, default=None,
              help="Images per prompt and seed set (default: the protocol's: 4 for dreambooth, 1 for dreambench-plus).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--prompts", type=int, default=None, help="Prompts per subject (quick runs; default all of the protocol's).")
@click.option("--class-samples", type=int, default=None,
              help="Class-prompt images per subject for PRES (default 0; 4 with --tables paper).")
@click.option("--metric-profile", default=None,
              help="Metric profile (default: the protocol's: paper for dreambooth, dreambench-plus for dreambench-plus).")
@weights_options
@click.option("--data", "data_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Dataset folder of subject photos (default: the protocol's data; for dreambooth "
                   "$DREAMBENCH_DATA or the shared copy).")
@click.option("--keep-artifacts", type=click.Choice(["yes", "no"]), default="yes", show_default=True)
@click.option("--protocol", default="dreambooth", show_default=True,
              help="dreambooth, dreambench-plus (after `dreambench data fetch --protocol dreambench-plus`), or a "
                   "folder with subjects.csv and prompts.yaml.")
@click.option("--score/--no-score", default=True, show_default=True, help="Score and make tables at the end.")
@click.option("--name", "names", multiple=True, metavar="LABEL=TEXT",
              help="Display name of a label in the tables (repeatable); recorded in <results>/names.json.")
@results_option
@judge_options
@click.pass_context
def run_cmd(ctx: click.Context, methods, replace, tables, profile, model, vae, subjects, steps, sample_steps, recipe, sets,
            backend, address, device, gpus, jobs_per_gpu, retries, threads, dry_run, images_per_prompt, seed, prompts,
            class_samples, metric_profile, dino_weights, clip_weights, lpips_weights, data_dir, keep_artifacts,
            protocol, score, names, results, **judge) -> None:
    """Plan and run train + generate + score + tables jobs; resumes an interrupted run in the same folder.
    With --judge, the VLM judge then scores the folder's images (CP, PF) as `dreambench judge` does."""
    try:
        display_names = parse_names(names)
    except DreambenchError as e:
        raise click.BadParameter(str(e).removeprefix("--name "), param_hint="--name") from None

    request = RunRequest(
        resolve_results(ctx, results), methods=methods, replace=replace, tables=tables, profile=profile, model=model, vae=vae,
        subjects=subjects, steps=steps, sample_steps=sample_steps, recipe=recipe, sets=sets, backend=backend,
        address=address, device=device, gpus=gpus, jobs_per_gpu=jobs_per_gpu, retries=retries, threads=threads,
        images_per_prompt=images_per_prompt, seed=seed, prompts=prompts, class_samples=class_samples,
        metric_profile=metric_profile, metric_weights=metric_weights_spec(dino_weights, clip_weights, lpips_weights),
        data_dir=data_dir, keep_artifacts=keep_artifacts == "yes", protocol=protocol, score=score,
        names=display_names, argv=sys.argv[1:], judge=judge_request(**judge))
    say = lambda line: click.echo(line, err=True)
    if dry_run:
        planned = plan_run(request, say=say)
        click.echo(planned.describe())
        check_replacements(planned.replacements, planned.replace)  # refused as `run` refuses it (exit 2)
        return
    from .judge import judge_bar, print_judged

    bar = judge_bar(request.judge is None)
    try:
        result = evaluate(request, say=say, judge_progress=bar.update if bar else None)
    finally:
        if bar is not None:
            bar.close()
    summary = result.summary
    click.echo(format_summary(summary))
    left = print_judged(result.judge) if result.judge is not None else 0
    table1 = ResultsLayout(result.results_dir).tables / "table1_fidelity.md"
    if table1.is_file():  # where the run's main result is, last, where the eye lands
        click.echo(f"Table 1: {table1} (all tables: {table1.parent / TABLES_README})")
    for u in result.unscored:  # a table over fewer subjects than planned must never pass as the planned one
        click.echo(f"error: {u.line()}; every table marks the row (n) and names it", err=True)
    if not summary.ok:
        click.echo(f"error: {failed_line(summary.failed)}", err=True)
    if result.unscored or not summary.ok or left:
        sys.exit(1)


def failed_line(failed: list[dict]) -> str:
    """The run's closing error: the jobs that failed on their own, then how many were not run because of them."""
    errors = {f["id"]: f.get("error") or "" for f in failed}
    roots = [f for f in failed if root_causes(f["id"], errors) == [f["id"]]]
    named = ", ".join(f"{f['id']} ({f['kind']} {f['label']}/{f['subject']})".replace(" /)", ")") for f in roots)
    rest = len(failed) - len(roots)
    return f"{len(roots)} job(s) failed: {named}" + (f"; {rest} job(s) that need them were not run" if rest else "")


def runs_of_jobs(runs: list[dict], rows: list[dict]) -> list[tuple[dict | None, list[dict]]]:
    """Each job under the run that made it: the latest run listing it that started before the job
    finished (a later resume only skips it), else the first run listing it; jobs no run lists (older
    state files) come last under ``None``. Runs that made nothing are left out."""
    by_id = {r["id"]: r for r in rows}
    made: dict[int, list[dict]] = {run["id"]: [] for run in runs}
    owner: dict[str, int] = {}
    for job_id, row in by_id.items():
        listing = [run for run in runs if job_id in set(run["jobs"])]
        if not listing:
            continue
        finished = row.get("finished")
        before = [run for run in listing if finished is not None and (run["started"] or 0) <= finished]
        owner[job_id] = (before[-1] if before else listing[0])["id"]
    for row in rows:
        if row["id"] in owner:
            made[owner[row["id"]]].append(row)
    out: list[tuple[dict | None, list[dict]]] = [(run, made[run["id"]]) for run in runs if made[run["id"]]]
    orphans = [r for r in rows if r["id"] not in owner]
    return out + ([(None, orphans)] if orphans else [])


def _run_title(run: dict | None) -> str:
    import time

    if run is None:
        return "jobs of no recorded run"
    argv = json.loads(run["argv"] or "[]") if isinstance(run.get("argv"), str) else (run.get("argv") or [])
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(run["started"])) if run.get("started") else "?"
    argv = list(argv)
    if "--results" in argv:  # the folder is the one shown; its path only makes the line long
        i = argv.index("--results")
        del argv[i:i + 2]
    cmd = " ".join(argv)
    return f"run {run['id']} ({when}, {run['status']}): dreambench {cmd}"


def _print_progress(rows: list[dict]) -> None:
    header = f"  {'kind':<13}{'label':<26}{'done':>5}{'run':>5}{'wait':>6}{'fail':>6}{'dev-s':>9}  subjects left"
    click.echo(header)
    for g in progress_table(rows):
        left = ",".join(g["subjects_left"][:6]) + (" ..." if len(g["subjects_left"]) > 6 else "")
        click.echo(f"  {g['kind']:<13}{g['label'][:25]:<26}{g['done']:>5}{g['running']:>5}{g['pending']:>6}"
                   f"{g['failed']:>6}{g['seconds']:>9.1f}  {left}")


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the job rows as JSON (each with the run that made it).")
@results_option
@click.pass_context
def status_cmd(ctx: click.Context, as_json: bool, results) -> None:
    """Progress of every label in a results folder, grouped by the run that made it."""
    results_dir = resolve_results(ctx, results)
    path = ResultsLayout(results_dir).state
    if not path.is_file():
        raise DreambenchError(f"{path}: no run state here (start one with `dreambench run`)")
    with StateDB(path, readonly=True) as db:  # writes nothing into the folder (works on a read-only mount)
        runs, rows = db.runs(), db.jobs()
    runs, rows = as_seen_now(runs, rows, driver_alive(results_dir))
    groups = runs_of_jobs(runs, rows)
    if as_json:
        click.echo(json.dumps([{**{k: v for k, v in r.items() if k != "spec"}, "run": run["id"] if run else None}
                               for run, members in groups for r in members], indent=1))
        return
    for run, members in groups:
        click.echo(_run_title(run))
        _print_progress(members)
    total = len(rows)
    done = sum(r["status"] == "done" for r in rows)
    labels = sorted({r["label"] for r in rows if r["kind"] == "subject" and r["label"]})
    click.echo(f"{done}/{total} jobs done; labels: {', '.join(labels) or '-'}"
               + (f"; last run {runs[-1]['status']}" if runs else "")
               + (" (re-run its command to resume)" if runs and runs[-1]["status"] == "interrupted" else ""))
    failed = [{**r, "log": log if (log := ResultsLayout(results_dir).job_log(r["id"])).is_file() else None}
              for r in rows if r["status"] == "failed"]
    for line in failure_lines(failed):
        click.echo(line)


@click.command("bench")
@click.option("--profile", default="sd15-random", show_default=True, help="Model profile to measure.")
@click.option("--device", default=None, help="cuda | cpu (default: cuda when available).")
@click.option("--steps", type=int, default=20, show_default=True, help="Timed training steps per measurement.")
@click.option("--method", "methods", multiple=True, default=("dreambooth",), show_default=True,
              help="Methods whose training is measured (repeatable).")
@click.option("--batch", type=int, default=25, show_default=True,
              help="Sampling batch size (the protocol's sample_batch_size default).")
@click.option("--score-batch", type=int, default=64, show_default=True, help="Scoring batch size.")
@click.option("--pack", type=int, default=None,
              help="Concurrent training jobs on the device for the packing figure, as --jobs-per-gpu K runs "
                   "them (default: 4 on CUDA, not measured on CPU; 0 = skip).")
@click.option("--score-images", type=int, default=None,
              help="PNGs scored end to end by `dreambench score` (default: 3000 on CUDA, none on CPU; 0 = skip).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Config override of the measured methods, or METHOD.KEY=VALUE for one (repeatable), "
                   "e.g. compile=no to measure the eager loop.")
@click.option("--peak-tflops", type=float, default=None,
              help="The device's bf16 peak in TFLOP/s (default: datasheet value for known GPUs).")
@click.option("--subjects", type=int, default=30, show_default=True,
              help="Subjects in the protocol whose wall time is estimated.")
@click.option("--threads", type=int, default=None,
              help="Torch CPU threads while measuring (default: every core; split between --pack workers).")
@results_option
@click.pass_context
def bench_cmd(ctx: click.Context, profile, device, steps, methods, batch, score_batch, pack, score_images, sets,
              peak_tflops, subjects, threads, results) -> None:
    """Measure training, sampling and scoring throughput on a device; write <results>/bench.json."""
    # heavy: torch (this module is imported by --help)
    from ..bench import BenchOptions, format_bench, run_bench

    results_dir = resolve_results(ctx, results)
    out = run_bench(BenchOptions(profile=profile, device=device, steps=steps, methods=list(methods), batch=batch,
                                 score_batch=score_batch, pack=pack, score_images=score_images,
                                 peak_tflops=peak_tflops, subjects=subjects, threads=threads,
                                 overrides=parse_sets(sets, list(methods))),
                    results_dir)
    click.echo(format_bench(out))
    click.echo(f"wrote {results_dir / 'bench.json'}")


COMMANDS = [run_cmd, status_cmd, bench_cmd]
