"""`dreambench run`, `dreambench status`, `dreambench bench`: plan and run jobs, show progress, measure."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..errors import DataError, DreambenchError
from ..layout import ResultsLayout
from .options import metric_weights_spec, resolve_results, results_option, weights_options


def _split(value: str | None) -> list[str] | None:
    if not value or value == "all":
        return None
    return [x.strip() for x in value.split(",") if x.strip()]


def _gpus(value: str | None) -> list[int] | None:
    names = _split(value)
    if names is None:
        return None
    try:
        return [int(x) for x in names]
    except ValueError:
        raise DreambenchError(f"--gpus {value!r}: expected a comma-separated list of GPU indices or 'all'") from None


@click.command("run")
@click.option("--method", "methods", multiple=True, metavar="[LABEL=]METHOD",
              help="Method to run (repeatable): METHOD (label = method name) or LABEL=METHOD, so several "
                   "configs of one method sit side by side (e.g. --method db-lr1e6=dreambooth).")
@click.option("--replace", "replace", multiple=True, metavar="LABEL",
              help="Replace the outputs of LABEL made before with other settings (repeatable; 'all' for every "
                   "label). Without it such a run is refused and nothing is touched.")
@click.option("--tables", "tables", type=click.Choice(["paper"]), default=None,
              help="Plan exactly the runs the paper's Tables 1, 3, 4, 5 and 6 need.")
@click.option("--profile", default="sd15", show_default=True, help="Model profile (sd15 | sd15-random | tiny).")
@click.option("--model", default=None, help="SD weights (profile sd15): diffusers folder (fp32, fp16 or fp16 variant files), hub id or "
                   "single-file .safetensors; see docs/weights.md.")
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
@click.option("--images-per-prompt", type=int, default=4, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--prompts", type=int, default=None, help="Prompts per subject (quick runs; default all 25).")
@click.option("--class-samples", type=int, default=None,
              help="Class-prompt images per subject for PRES (default 0; 4 with --tables paper).")
@click.option("--metric-profile", default="paper", show_default=True)
@weights_options
@click.option("--data", "data_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="DreamBooth dataset folder (default: $DREAMBENCH_DATA or the shared copy).")
@click.option("--keep-artifacts", type=click.Choice(["yes", "no"]), default="yes", show_default=True)
@click.option("--protocol", default="dreambooth", show_default=True)
@click.option("--score/--no-score", default=True, show_default=True, help="Score and make tables at the end.")
@click.option("--name", "names", multiple=True, metavar="LABEL=TEXT",
              help="Display name of a label in the tables (repeatable); recorded in <results>/names.json.")
@results_option
@click.pass_context
def run_cmd(ctx: click.Context, methods, replace, tables, profile, model, subjects, steps, sample_steps, recipe, sets,
            backend, address, device, gpus, jobs_per_gpu, retries, threads, dry_run, images_per_prompt, seed, prompts,
            class_samples, metric_profile, dino_weights, clip_weights, lpips_weights, data_dir, keep_artifacts,
            protocol, score, names, results) -> None:
    """Plan and run train + generate + score + tables jobs; resumes an interrupted run in the same folder."""
    from ..tables.names import parse_names, record_names

    try:
        display_names = parse_names(names)
    except DreambenchError as e:
        raise click.BadParameter(str(e).removeprefix("--name "), param_hint="--name") from None
    from ..engine import cost
    from ..engine.plan import InputDigests, RunSpec, build_plan, tables_available
    from ..engine.runner import RunOptions, format_summary, run_plan
    from ..paths import default_data_dir
    from ..protocol import load_protocol

    results_dir = resolve_results(ctx, results)
    _check_counts(jobs_per_gpu=(jobs_per_gpu, 1), retries=(retries, 0), threads=(threads, 1),
                  class_samples=(class_samples, 0))
    gpu_list = _gpus(gpus)
    proto = load_protocol(protocol)
    runs = method_runs(methods, tables, sets, recipe, class_samples)
    spec = RunSpec(runs, _split(subjects), profile, model, seed, steps, sample_steps, images_per_prompt, prompts,
                   protocol=str(Path(protocol).resolve()) if Path(protocol).is_dir() else protocol,
                   metric_profile=metric_profile, keep_artifacts=keep_artifacts == "yes",
                   score=score, tables=score and tables_available(),
                   metric_weights=metric_weights_spec(dino_weights, clip_weights, lpips_weights))
    data = data_dir or default_data_dir()
    # The photos of --data are part of the ids (a dry run without the folder plans without them).
    inputs = InputDigests(data if data.is_dir() else None)
    plan = build_plan(spec, proto, inputs)
    from ..engine.replace import check_replace_names, check_replacements, find_replacements

    replace = tuple(x.strip() for r in replace for x in r.split(",") if x.strip())
    check_replace_names(replace, plan.labels())
    replacing = find_replacements(plan, results_dir)
    from ..models import get_profile

    est = cost.estimate(plan, cost.load_rates(results_dir, profile),
                        sample_steps or get_profile(profile).sample_steps_default)
    _check_data(data, plan)  # before anything is written, and in a dry run too
    if dry_run:
        click.echo(_format_plan(plan, est, results_dir))
        click.echo(_format_replacements(replacing, replace))
        return
    check_replacements(replacing, replace)
    if score and not tables_available():
        click.echo("note: dreambench.tables is not available; the run scores images but writes no tables",
                   err=True)
    from .doctor import run_preflight

    run_preflight(plan, results_dir, None if device == "auto" else device)
    plan = _with_weights_digest(plan, proto, inputs)
    opts = RunOptions(results_dir, data, backend, None if device == "auto" else device, gpu_list, jobs_per_gpu,
                      retries, address, threads=threads, progress=True, argv=sys.argv[1:], replace=tuple(replace))
    click.echo(f"plan: {len(plan.jobs)} jobs, {est['images']} images, ~{est['device_hours']} device-hours "
               f"({est['basis'].split(';')[0]}); results in {results_dir}", err=True)
    record_names(results_dir, display_names)  # before the run: its tables job reads them
    summary = run_plan(plan, opts)
    click.echo(format_summary(summary))
    from ..engine.coverage import unscored

    lost = unscored(plan, results_dir)
    for u in lost:  # a table over fewer subjects than planned must never pass as the planned one
        click.echo(f"error: {u.line()}; every table marks the row (n) and names it", err=True)
    if not summary.ok:
        names = ", ".join(f"{f['id']} ({f['kind']} {f['label']}/{f['subject']})" for f in summary.failed)
        click.echo(f"error: {len(summary.failed)} job(s) failed: {names}", err=True)
    if lost or not summary.ok:
        sys.exit(1)


def method_runs(methods: tuple[str, ...], tables: str | None, sets: tuple[str, ...], recipe: str | None,
                class_samples: int | None) -> list:
    """The run's labels: ``--tables paper``'s labels, then each ``--method [LABEL=]METHOD`` (a label the
    paper plan already has is not planned twice), with ``--set`` overrides per label and ``--recipe`` for
    every label of the methods given with ``--method``."""
    from ..engine.plan import (
        PAPER_CLASS_PROMPT_SAMPLES,
        MethodRun,
        paper_method_runs,
        parse_method_label,
        parse_sets,
    )
    from ..methods.base import list_methods

    given = dict(parse_method_label(m) for m in methods)  # label -> method; a repeated identical pair once
    pairs = [parse_method_label(m) for m in methods]
    clash = sorted({lb for lb, m in pairs if given[lb] != m})
    if clash:
        raise DreambenchError(f"--method: label(s) {', '.join(clash)} given for two different methods")
    paper_names = ["dreambooth", "textual-inversion", "real", "pretrained"] if tables else []
    labels = {**{m: m for m in paper_names}, **given}
    overrides = parse_sets(sets, labels)
    runs: list[MethodRun] = []
    if tables == "paper":
        registered = list_methods()
        runs.extend(paper_method_runs({m: overrides.get(m, {}) for m in paper_names if m in registered},
                                      PAPER_CLASS_PROMPT_SAMPLES if class_samples is None else class_samples))
    for label, method in given.items():
        if any(r.label == label for r in runs):
            continue
        runs.append(MethodRun(label, method, overrides.get(label, {}), class_prompt_samples=class_samples or 0))
    if recipe:
        for r in runs:
            if r.recipe is None and (r.label in given or r.method in given.values()):
                r.recipe = recipe
    return runs


def _format_replacements(found: list, replace: tuple[str, ...]) -> str:
    """What ``--dry-run`` says of labels made before with other settings."""
    from ..engine.replace import ALL

    if not found:
        return "replaces: nothing (no label of this plan was made before with other settings)"
    lines = []
    for r in found:
        allowed = ALL in replace or r.label in replace
        lines.append(f"would replace {r.describe()}" + ("" if allowed else f" (refused without --replace {r.label})"))
    return "\n".join(lines)


def _with_weights_digest(plan, protocol, inputs):
    """The plan again, its ids made with the SD weights digest too (:func:`dreambench.provenance.sd_provenance`,
    cached by file), when any job uses the model. Asked after the preflight, which fetches missing hub
    weights: a digest known only from the second run on would re-run every job once."""
    from ..engine.plan import build_plan

    spec = plan.spec
    if not (plan.by_kind("class_images") or any(j.spec.get("needs_model") for j in plan.by_kind("subject"))):
        return plan
    from ..provenance import sd_provenance

    inputs.sd_digest = sd_provenance(spec.profile, spec.model)["sd_digest"]
    return build_plan(spec, protocol, inputs)


def _check_counts(**options: tuple[int | None, int]) -> None:
    """Each ``--option`` given as (value, lowest allowed) is None or an integer >= its lowest value."""
    for name, (value, low) in options.items():
        if value is not None and value < low:
            raise DreambenchError(f"--{name.replace('_', '-')} {value}: must be an integer >= {low}")


def _check_data(data: Path, plan) -> None:
    """The dataset folder holds an image folder for every subject of the plan, and every photo there passes
    the checks of ``dreambench data check`` (:func:`dreambench.data.check.check_photos`: decodes, still,
    not a decompression bomb, short side >= 256 px). Runs before any job or class image, and before
    ``--dry-run`` prints: a bad photo is refused, each named on its own line (exit status 2), and the
    results folder is left as it was, instead of a job failing on it or a real-photo set dropping it."""
    from ..data import subject_images
    from ..data.check import check_photos

    if not data.is_dir():
        raise DreambenchError(f"--data {data}: dataset folder not found; pass --data DIR or set $DREAMBENCH_DATA")
    photos = []
    for name in dict.fromkeys(j.subject for j in plan.by_kind("subject")):
        try:
            photos += subject_images(data, name)
        except DreambenchError as e:
            raise DreambenchError(f"--data {data}: {e}") from None
    bad, _ = check_photos(photos)
    for path, why in bad:
        click.echo(f"error: {path}: {why}", err=True)
    if bad:
        raise DataError(f"--data {data}: {len(bad)} bad photo(s) in the subjects of the plan (listed above); "
                        "nothing was run. Remove or replace them (`dreambench data check` runs the same checks)")


def _format_plan(plan, est: dict, results_dir: Path) -> str:
    lines = [(f"plan for {results_dir}: profile {plan.spec.profile}, seed {plan.spec.seed}, "
              f"{plan.spec.images_per_prompt} images per prompt")]
    rows = []
    for label in plan.labels():
        jobs = [j for j in plan.jobs if j.kind == "subject" and j.label == label]
        spec = jobs[0].spec["job"]
        mr = next(m for m in plan.spec.methods if m.label == label)
        rows.append((label, spec["method"], mr.table or "-", str(len(jobs)), str(sum(j.images for j in jobs)),
                     str(sum(j.train_steps for j in jobs)), f"{est['device_seconds_per_label'].get(label, 0) / 3600:.2f}"))
    header = ("label", "method", "table", "subjects", "images", "train steps", "device-h")
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    for cj in plan.by_kind("class_images"):
        lines.append(f"shared: class images '{cj.subject}' x{cj.images} (job {cj.id})")
    n = est["jobs"]
    lines.append(f"jobs: {sum(n.values())} ({n['class_images']} class-image, {n['subject']} subject, "
                 f"{n['score']} score, {n['tables']} tables); images: {est['images']}; "
                 f"training steps: {est['train_steps']}")
    lines.append(f"estimated GPU-hours: {est['device_hours']} on one device "
                 f"(class images {est['device_seconds']['class_images']:.0f} s, subjects "
                 f"{est['device_seconds']['subject']:.0f} s, scoring {est['device_seconds']['score']:.0f} s)")
    if est.get("reference_device_hours") is not None:
        lines.append(f"(the plain reference loop at batch 4 would take {est['reference_device_hours']} GPU-hours)")
    lines.append(f"rates: {est['basis']}")
    return "\n".join(lines)


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
    from ..engine.state import progress_table

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
    from ..engine.state import STATE_FILE, StateDB, as_seen_now, driver_alive

    results_dir = resolve_results(ctx, results)
    path = results_dir / STATE_FILE
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
    for r in rows:
        if r["status"] == "failed":
            log = ResultsLayout(results_dir).job_log(r["id"])
            click.echo(f"FAILED {r['id']} {r['kind']} {r['label']}/{r['subject']}: {r['error']}"
                       + (f" (log: {log})" if log.is_file() else ""))


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
    from ..bench import BenchOptions, format_bench, run_bench
    from ..engine.plan import parse_sets

    results_dir = resolve_results(ctx, results)
    out = run_bench(BenchOptions(profile=profile, device=device, steps=steps, methods=list(methods), batch=batch,
                                 score_batch=score_batch, pack=pack, score_images=score_images,
                                 peak_tflops=peak_tflops, subjects=subjects, threads=threads,
                                 overrides=parse_sets(sets, list(methods))),
                    results_dir)
    click.echo(format_bench(out))
    click.echo(f"wrote {results_dir / 'bench.json'}")


COMMANDS = [run_cmd, status_cmd, bench_cmd]
