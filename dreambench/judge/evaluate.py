"""``judge_results``: the library twin of ``dreambench judge``. Reads as numbered steps: check the options,
load the rubrics, build the items, plan the calls, skip the finished ones, call, aggregate, write.

Files written into ``<results>/judge/`` (:class:`dreambench.layout.ResultsLayout`): ``calls.jsonl`` (the
store, :mod:`.store`), ``judge_items.csv``, ``judge_scores.csv``, ``judge_missing.csv``, ``judge_meta.json``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from ..errors import ConfigError, DataError
from ..io import atomic_path, write_roots, write_text_atomic
from ..layout import ResultsLayout
from .aggregate import call_rows, summarize
from .client import JudgeClient, resolve_endpoint, resolve_key
from .encode import ImageCache
from .items import JudgeItem, items_from_results, protocol_data_dir
from .profiles import KINDS, METRICS, get_profile
from .rubrics import RUBRICS_ENV, load_rubrics
from .runner import Call, Progress, plan_calls, run_calls
from .store import OK, UNPARSED, CallStore, exclusive

#: Estimated prompt tokens of one 512 x 512 image at ``detail: high`` (OpenAI's rule: 85 + 170 per 512-px
#: tile, one tile): an estimate for --dry-run, not a measurement.
IMAGE_TOKENS = 255
#: Characters per text token (a rough rule for English) for the --dry-run estimate.
CHARS_PER_TOKEN = 4


@dataclass
class JudgeOptions:
    """What ``dreambench judge`` takes (see its --help). ``base_url`` None: ``$OPENAI_BASE_URL`` or OpenAI's."""

    profile: str = "dreambench-plus"
    model: str | None = None
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = 8
    runs: int | None = None
    temperature: float | None = None
    max_requests: int | None = None
    rubrics: Path | None = None
    labels: list[str] | None = None
    data_dir: Path | None = None
    protocol: str | None = None
    identifier: str = "sks"
    retry_missing: bool = False
    dry_run: bool = False
    max_retries: int = 5
    timeout_s: float = 120.0


@dataclass
class JudgeResult:
    """What a judge invocation did and found."""

    items: list[JudgeItem]
    calls: int
    distinct: int  # calls with different content keys (byte-identical inputs are asked once)
    done_before: int
    pending: int
    problems: list[str]
    estimated_tokens: int
    progress: Progress | None = None
    scores: pd.DataFrame | None = None
    missing: int = 0
    written: list[Path] = field(default_factory=list)


def check_options(opts: JudgeOptions) -> None:
    """Refuse bad option values (one line, before anything is read or written)."""
    for name, value, lo in (("--concurrency", opts.concurrency, 1), ("--runs", opts.runs, 1),
                            ("--max-requests", opts.max_requests, 1)):
        if value is not None and value < lo:
            raise ConfigError(f"{name} must be at least {lo}, got {value}", name)
    if opts.temperature is not None and not (0.0 <= opts.temperature <= 2.0 and math.isfinite(opts.temperature)):
        raise ConfigError(f"--temperature must be in [0, 2], got {opts.temperature}", "--temperature")
    if opts.base_url is not None and not opts.base_url.startswith(("http://", "https://")):
        raise ConfigError(f"--base-url must start with http:// or https://, got {opts.base_url!r}", "--base-url")
    if opts.rubrics is not None and not Path(opts.rubrics).is_dir():
        raise ConfigError(f"--rubrics: {opts.rubrics} is not a folder", "--rubrics")


def check_judge(opts: JudgeOptions) -> None:
    """Everything about ``opts`` that can be checked before a run or a scoring starts, in seconds and
    without the network: the option values, the profile, the endpoint's API key, and the rubric files when
    a folder is given (``--rubrics`` or ``$DREAMBENCH_JUDGE_RUBRICS``; sha256-checked). ``run --judge`` and
    ``score --judge`` call it first, so a bad option fails before hours of work, not after."""
    check_options(opts)
    profile = get_profile(opts.profile)
    if not opts.dry_run:
        resolve_key(opts.api_key_env, resolve_endpoint(opts.base_url))
    if opts.rubrics is not None or os.environ.get(RUBRICS_ENV):
        load_rubrics(profile, opts.rubrics)


def estimate_tokens(calls: list[Call]) -> int:
    """Prompt tokens of ``calls`` (one attempt each): text characters / 4 plus :data:`IMAGE_TOKENS` per image."""
    total = 0
    for c in calls:
        text = len(c.rubric.user) + len(c.rubric.thinking) + (len(c.item.prompt) if c.metric == "pf" else 0)
        total += text // CHARS_PER_TOKEN + IMAGE_TOKENS * (2 if c.metric == "cp" else 1)
    return total


def _pending(calls: list[Call], records: dict[str, dict], retry_missing: bool) -> list[Call]:
    todo = [c for c in calls if c.key not in records or (retry_missing and records[c.key].get("status") == UNPARSED)]
    return list({c.key: c for c in todo}.values())  # an image listed twice is one call


def _select(items: list[JudgeItem], labels: list[str] | None, root: Path) -> list[JudgeItem]:
    """The items of ``labels`` (all for None); an unknown label or nothing to judge is a :class:`DataError`."""
    kinds = sorted({it.kind for it in items} - set(KINDS))
    if kinds:
        raise DataError(f"item kind(s) {', '.join(kinds)} unknown to the judge (one of {', '.join(KINDS)})")
    known = sorted({it.label for it in items})
    unknown = sorted(set(labels or []) - set(known))
    if unknown:
        raise DataError(f"--labels: {', '.join(unknown)} not among the labels of {root} with images to judge "
                        f"({', '.join(known) or 'none'})")
    selected = [it for it in items if not labels or it.label in labels]
    if not selected:
        raise DataError(f"{root}: nothing to judge")
    return selected


def _data_dir(opts: JudgeOptions, root: Path) -> Path:
    """``--data``, else the protocol's own data folder (:func:`.items.protocol_data_dir`)."""
    return Path(opts.data_dir) if opts.data_dir is not None else protocol_data_dir(root, opts.protocol)


def judge_results(results_dir: str | Path, opts: JudgeOptions,
                  on_progress: Callable[[Progress, int], None] | None = None,
                  items: list[JudgeItem] | None = None) -> JudgeResult:
    """Judge the results folder with ``opts`` (module docstring). ``on_progress(progress, total)`` is called
    after each call. ``items``: judge these instead of the folder's own (:func:`.items.items_from_results`);
    the records and CSVs still go to ``<results_dir>/judge/``. Raises
    :class:`~dreambench.errors.DreambenchError` subclasses for bad input."""
    # 1. Check the options, the profile and the endpoint key (nothing read or written yet)
    check_options(opts)
    profile = get_profile(opts.profile)
    model = opts.model or profile.model
    runs = opts.runs or profile.runs
    temperature = profile.temperature if opts.temperature is None else opts.temperature
    layout = ResultsLayout(Path(results_dir))
    if items is None and not layout.images.is_dir():
        raise DataError(f"{layout.root}: no images folder ({layout.images}); is it a results folder?")
    endpoint = resolve_endpoint(opts.base_url)
    api_key = None if opts.dry_run else resolve_key(opts.api_key_env, endpoint)
    # 2. The items (read only), then the rubrics (sha256-checked; fetched into the cache when not given)
    problems: list[str] = []
    if items is None:
        items, problems = items_from_results(layout.root, _data_dir(opts, layout.root), opts.protocol,
                                             None, opts.identifier)
    selected = _select(items, opts.labels, layout.root)
    rubrics = load_rubrics(profile, opts.rubrics, layout.cache / "judge-rubrics")
    # 3. Plan the calls of every label (the files describe the whole folder) and skip the finished ones
    images = ImageCache(profile.image_size)
    calls = plan_calls(items, profile, rubrics, model, temperature, runs, images)
    chosen = set(selected)
    mine = [c for c in calls if c.item in chosen]
    store = CallStore(layout.judge_calls)
    records = store.load()
    pending = _pending(mine, records, opts.retry_missing)
    distinct = len({c.key for c in mine})
    result = JudgeResult(selected, len(mine), distinct, distinct - len(pending), len(pending), problems,
                         estimate_tokens(pending))
    if opts.dry_run:
        return result
    # 4. Call (one judge per folder at a time), then aggregate and write
    with write_roots(layout.judge), exclusive(layout.judge_lock):
        if pending:
            client = JudgeClient(endpoint, api_key, model, temperature, opts.max_retries, opts.timeout_s)
            done = (lambda p: on_progress(p, len(pending))) if on_progress else None
            result.progress = run_calls(pending, profile, client, images, store, opts.concurrency,
                                        opts.max_requests, done)
        records = store.load()
        result.written, result.scores, result.missing = _write(layout, calls, records, profile.score_range[1], {
            "profile": profile.name, "rubric_commit": profile.commit, "model": model, "endpoint": endpoint,
            "temperature": temperature, "runs": runs, "items": len(items), "calls": len(calls),
            "rubric_sha256": {k: r.sha256 for k, r in rubrics.items()}, "options": _jsonable(opts),
            "problems": problems})
    return result


def _write(layout: ResultsLayout, calls: list[Call], records: dict[str, dict], score_max: int,
           meta: dict) -> tuple[list[Path], pd.DataFrame, int]:
    rows = call_rows(calls, records)
    scores = summarize(rows, score_max)
    missing = rows[rows["status"] != OK]
    missing = missing.assign(answers=[json.dumps((records.get(k) or {}).get("answers", []), ensure_ascii=False)
                                      for k in missing["key"]])
    out = []
    for path, df in ((layout.judge_items, rows), (layout.judge_scores, scores), (layout.judge_missing, missing)):
        with atomic_path(path) as tmp:
            df.to_csv(tmp, index=False)
        out.append(path)
    meta = {**meta, "judged": int((rows["status"] == OK).sum()), "unparsed": int((rows["status"] == UNPARSED).sum()),
            "pending": int((rows["status"] == "pending").sum()), "metrics": list(METRICS)}
    out.append(write_text_atomic(layout.judge_meta, json.dumps(meta, indent=2, default=str) + "\n"))
    return out, scores, len(missing)


def _jsonable(opts: JudgeOptions) -> dict:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(opts).items()}
