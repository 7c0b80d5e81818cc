"""The library entry point of a benchmark run: :func:`evaluate` does what ``dreambench run`` does, and
:func:`plan_run` what ``dreambench run --dry-run`` does; the command only parses options, calls them and
prints.

::

    import dreambench
    result = dreambench.evaluate(methods=["dreambooth"], subjects=["dog"], profile="tiny",
                                 results_dir="results", steps=10, prompts=2)
    result.summary.ok, result.unscored, result.summary.path

Options are the ``run`` command's (:class:`RunRequest`), in library types. Invalid options raise
:class:`dreambench.errors.DreambenchError` with the CLI's message, in the CLI's order, before any file is
written.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import preflight
from .data import subject_images
from .data.check import check_photos
from .engine import cost
from .engine.coverage import unscored
from .engine.describe import format_plan, format_replacements
from .engine.devices import check_device
from .engine.expand import InputDigests, build_plan
from .engine.labels import method_runs
from .engine.replace import check_replace_names, check_replacements, find_replacements
from .engine.runner import RunOptions, run_plan
from .engine.runspec import RunSpec, tables_available
from .errors import DataError, DreambenchError
from .models import get_profile
from .paths import data_dir_searched, default_data_dir
from .protocol import load_protocol
from .provenance import sd_provenance
from .tables.names import record_names

#: ``say(line)``: where progress notes and bad photos go (default: standard error).
Say = Callable[[str], None]


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass
class RunRequest:
    """Everything a run asks for: the ``run`` command's options (docs/running.md), in library types.
    ``subjects`` and ``gpus`` may be the CLI's text (``"dog,cat"``, ``"0,1"``, ``"all"``); ``device`` is
    ``auto`` | ``cuda`` | ``cpu``."""

    results_dir: Path
    methods: tuple[str, ...] = ()
    replace: tuple[str, ...] = ()
    tables: str | None = None
    profile: str = "sd15"
    model: str | None = None
    vae: str | None = None
    subjects: str | list[str] | None = None
    steps: int | None = None
    sample_steps: int | None = None
    recipe: str | None = None
    sets: tuple[str, ...] = ()
    backend: str = "local"
    address: str | None = None
    device: str = "auto"
    gpus: str | list[int] | None = None
    jobs_per_gpu: int = 1
    retries: int = 1
    threads: int | None = None
    images_per_prompt: int | None = None
    seed: int = 0
    prompts: int | None = None
    class_samples: int | None = None
    metric_profile: str | None = None
    metric_weights: dict = field(default_factory=dict)
    data_dir: Path | None = None
    keep_artifacts: bool = True
    protocol: str = "dreambooth"
    score: bool = True
    names: dict[str, str] = field(default_factory=dict)
    argv: list[str] = field(default_factory=list)
    #: Judge the folder with the VLM judge after the run (``run --judge``): the judge's options
    #: (:class:`dreambench.judge.evaluate.JudgeOptions`; its protocol and data default to the run's).
    judge: Any = None


@dataclass
class PlannedRun:
    """A checked, planned run (:func:`plan_run`): the plan, its estimate and the replacements it needs."""

    request: RunRequest
    plan: Any
    protocol: Any
    inputs: Any
    estimate: dict
    replacements: list
    replace: tuple[str, ...]
    gpus: list[int] | None
    data_dir: Path

    def describe(self) -> str:
        """What ``--dry-run`` prints: the plan's labels, jobs and estimate, then what it would replace."""
        return (format_plan(self.plan, self.estimate, self.request.results_dir) + "\n"
                + format_replacements(self.replacements, self.replace))


@dataclass
class Evaluation:
    """What :func:`evaluate` did: the run summary (counts, failures, ``path`` of summary.json), the
    planned (label, subject) pairs left without scores, the plan and the results folder; ``judge``: the
    judge's :class:`~dreambench.judge.evaluate.JudgeResult` when asked for and the run finished."""

    summary: Any
    unscored: list
    plan: Any
    results_dir: Path
    judge: Any = None

    @property
    def ok(self) -> bool:
        return self.summary.ok and not self.unscored


def _request(request: RunRequest | None, options: dict) -> RunRequest:
    if request is None:
        return RunRequest(**options)
    return dataclasses.replace(request, **options) if options else request


def plan_run(request: RunRequest | None = None, *, say: Say = _stderr, **options: Any) -> PlannedRun:
    """Check the options and the data and plan the run; writes nothing (``run --dry-run``)."""
    r = _request(request, options)
    # 1. Check the counts and the GPU list.
    _check_counts(jobs_per_gpu=(r.jobs_per_gpu, 1), retries=(r.retries, 0), threads=(r.threads, 1),
                  class_samples=(r.class_samples, 0))
    gpu_list = _gpus(r.gpus)
    if r.backend == "local":  # a Ray cluster's devices are the cluster's, not this machine's
        check_device(r.device, gpu_list)
    if r.judge is not None:
        from .judge.evaluate import check_judge

        check_judge(r.judge)
    # 2. The protocol, the labels with their overrides, the spec.
    proto = load_protocol(r.protocol)
    runs = method_runs(tuple(r.methods), r.tables, tuple(r.sets), r.recipe, r.class_samples)
    subjects = _split(r.subjects) if isinstance(r.subjects, str) else r.subjects
    per_prompt = r.images_per_prompt if r.images_per_prompt is not None else proto.images_per_prompt
    _check_images_per_prompt(per_prompt, r.tables)
    spec = RunSpec(runs, subjects, r.profile, r.model, r.seed, r.steps, r.sample_steps, per_prompt,
                   r.prompts, protocol=str(Path(r.protocol).resolve()) if Path(r.protocol).is_dir() else r.protocol,
                   metric_profile=r.metric_profile or proto.metric_profile, keep_artifacts=r.keep_artifacts,
                   score=r.score, tables=r.score and tables_available(), metric_weights=dict(r.metric_weights),
                   vae=r.vae)
    # 3. Plan; the photos of --data are part of the ids (a dry run without the folder plans without them).
    data = Path(r.data_dir) if r.data_dir is not None else (proto.data_dir or default_data_dir())
    inputs = InputDigests(data if data.is_dir() else None)
    plan = build_plan(spec, proto, inputs)
    # 4. Which labels made before with other settings it would replace, and its size.
    replace = tuple(x.strip() for item in r.replace for x in item.split(",") if x.strip())
    check_replace_names(replace, plan.labels())
    replacing = find_replacements(plan, Path(r.results_dir))
    est = cost.estimate(plan, cost.load_rates(Path(r.results_dir), r.profile, r.device),
                        r.sample_steps or get_profile(r.profile).sample_steps_default)
    # 5. Check the data and the model options (what the preflight checks without loading a model), before
    # anything is written: a dry run applies every check a run does.
    _check_data(data, plan, say, given=r.data_dir is not None)
    preflight.check_plan_options(plan, None if r.device == "auto" else r.device)
    return PlannedRun(r, plan, proto, inputs, est, replacing, replace, gpu_list, data)


def evaluate(request: RunRequest | None = None, *, say: Say = _stderr, judge_progress: Callable | None = None,
             **options: Any) -> Evaluation:
    """Plan, check and run a benchmark (``dreambench run``); resumes an interrupted run in the same
    folder. Returns the :class:`Evaluation`; raises :class:`DreambenchError` for invalid options or data.
    ``judge_progress(progress, total)``: called after each judge call (``request.judge``)."""
    # 1. Check the options and the data, and plan (nothing is written before this passes).
    planned = plan_run(request, say=say, **options)
    r, plan, results_dir = planned.request, planned.plan, Path(planned.request.results_dir)
    check_replacements(planned.replacements, planned.replace)
    if r.score and not tables_available():
        say("note: dreambench.tables is not available; the run scores images but writes no tables")
    # 2. Check the models the jobs need (cached once passed), then plan again with the weights digest.

    device = None if r.device == "auto" else r.device
    preflight.check_plan(plan, device)
    plan = _with_weights_digest(plan, planned.protocol, planned.inputs)
    # 3. Run the jobs not yet done.
    opts = RunOptions(results_dir, planned.data_dir, r.backend, device, planned.gpus, r.jobs_per_gpu, r.retries,
                      r.address, threads=r.threads, progress=True, argv=list(r.argv), replace=planned.replace)
    est = planned.estimate
    # The ETA weighs jobs by their estimated cost; without rates for this device, by their relative cost
    # on the packaged calibration's device (the ratios between jobs, not their seconds).
    opts.job_weights = cost.relative_job_seconds(plan, cost.load_rates(results_dir, r.profile, r.device),
                                                 r.sample_steps or get_profile(r.profile).sample_steps_default)
    hours = (f"~{est['device_hours']} device-hours ({est['basis'].split(';')[0]})" if est["device_hours"] is not None
             else "no estimate (no calibration for this device: `dreambench bench` measures one)")
    say(f"plan: {len(plan.jobs)} jobs, {est['images']} images, {hours}; results in {results_dir}")
    record_names(results_dir, r.names)  # before the run: its tables job reads them
    summary = run_plan(plan, opts)
    # 4. Check that every planned (label, subject) was scored.
    result = Evaluation(summary, unscored(plan, results_dir), plan, results_dir)
    # 5. Judge the folder, once the run has made everything it planned (a failed run is resumed first).
    if r.judge is not None:
        if result.ok:
            result.judge = _judge(r, planned.data_dir, judge_progress)
        else:
            say("judge not run: the run did not finish; re-run the same command to resume and judge")
    return result


def _judge(r: RunRequest, data_dir: Path, progress: Callable | None) -> Any:
    """The judge on the run's folder, with the run's protocol and data folder unless the options name others;
    then the tables again, with the judge's columns."""
    from .judge.evaluate import judge_results

    opts = dataclasses.replace(r.judge, protocol=r.judge.protocol or r.protocol,
                               data_dir=r.judge.data_dir or data_dir)
    result = judge_results(r.results_dir, opts, on_progress=progress)
    if r.score and tables_available():  # the run's tables job ran before the judge: add its CP and PF
        from .tables import write_tables  # heavy: pandas (the tables package resolves it from tables.build)

        write_tables(r.results_dir)
    return result


def _split(value: str | None) -> list[str] | None:
    if not value or value == "all":
        return None
    return [x.strip() for x in value.split(",") if x.strip()]


def _gpus(value: str | list[int] | None) -> list[int] | None:
    if value is None or isinstance(value, list):
        return value
    names = _split(value)
    if names is None:
        return None
    try:
        return [int(x) for x in names]
    except ValueError:
        raise DreambenchError(f"--gpus {value!r}: expected a comma-separated list of GPU indices or 'all'") from None


def _check_counts(**options: tuple[int | None, int]) -> None:
    """Each ``--option`` given as (value, lowest allowed) is None or an integer >= its lowest value."""
    for name, (value, low) in options.items():
        if value is not None and value < low:
            raise DreambenchError(f"--{name.replace('_', '-')} {value}: must be an integer >= {low}")


#: Images per prompt Table 3's DIV needs: it compares images of one prompt, pairwise.
DIV_MIN_IMAGES = 2


def _check_images_per_prompt(images: int, tables: str | None) -> None:
    if tables == "paper" and images < DIV_MIN_IMAGES:
        raise DreambenchError(f"--images-per-prompt {images}: --tables paper needs >= {DIV_MIN_IMAGES} images per "
                              "prompt (Table 3's DIV compares the images of one prompt pairwise; the paper uses 4)")


def _check_data(data: Path, plan: Any, say: Say, given: bool = True) -> None:
    """The dataset folder holds an image folder for every subject of the plan, and every photo there passes
    the checks of ``dreambench data check`` (:func:`dreambench.data.check.check_photos`: decodes, still,
    not a decompression bomb, short side >= 256 px). Runs before any job or class image, and before
    ``--dry-run`` prints: a bad photo is refused, each named on its own line (exit status 2), and the
    results folder is left as it was, instead of a job failing on it or a real-photo set dropping it."""
    if not data.is_dir():
        where = f"--data {data}" if given else f"dataset folder not found (looked in {data_dir_searched()})"
        raise DreambenchError(f"{where}{': dataset folder not found' if given else ''}; get it with `dreambench "
                              "data fetch` (the official archive, verified), or pass --data DIR or set $DREAMBENCH_DATA")
    photos = []
    for name in dict.fromkeys(j.subject for j in plan.by_kind("subject")):
        try:
            photos += subject_images(data, name)
        except DreambenchError as e:
            raise DreambenchError(f"--data {data}: {e}") from None
    bad, _ = check_photos(photos)
    for path, why in bad:
        say(f"error: {path}: {why}")
    if bad:
        raise DataError(f"--data {data}: {len(bad)} bad photo(s) in the subjects of the plan (listed above); "
                        "nothing was run. Remove or replace them (`dreambench data check` runs the same checks)")


def _with_weights_digest(plan: Any, protocol: Any, inputs: Any) -> Any:
    """The plan again, its ids made with the SD weights digest too (:func:`dreambench.provenance.sd_provenance`,
    cached by file), when any job uses the model. Asked after the preflight, which fetches missing hub
    weights: a digest known only from the second run on would re-run every job once."""
    spec = plan.spec
    if not (plan.by_kind("class_images") or any(j.spec.get("needs_model") for j in plan.by_kind("subject"))):
        return plan

    inputs.sd_digest = sd_provenance(spec.profile, spec.model, vae=spec.vae)["sd_digest"]
    return build_plan(spec, protocol, inputs)
