"""Making the calls: plan them (one per item, metric and run, each with its content key), skip the finished
ones, and run the rest on a thread pool with a request budget.

One call asks up to ``profile.max_attempts`` times (the reference's ``max_retry`` = 3) until an answer
parses (:mod:`.parse`); each attempt has its own derived seed. A call whose answers never parse is recorded
``unparsed`` with every raw answer: it counts as missing, never as a score. A request that fails in
transport (after the ``openai`` library's own retries) or that the budget cuts leaves its call unrecorded,
so a rerun asks again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from ..errors import DataError
from .client import Answer, JudgeClient, TransportError
from .encode import ImageCache
from .items import JudgeItem
from .messages import cp_messages, pf_messages
from .parse import parse_score
from .profiles import METRICS, JudgeProfile
from .rubrics import RubricText
from .store import OK, UNPARSED, CallStore, call_key, call_seed


@dataclass(frozen=True)
class Call:
    """One (item, metric, run) with its rubric and content key."""

    item: JudgeItem
    metric: str
    run: int
    rubric: RubricText
    key: str


def plan_calls(items: list[JudgeItem], profile: JudgeProfile, rubrics: dict[str, RubricText], model: str,
               temperature: float, runs: int, images: ImageCache) -> list[Call]:
    """Every call of ``items`` x :data:`METRICS` x ``runs``, keyed by content (:func:`.store.call_key`)."""
    calls = []
    for item in items:
        image_sha = images.sha256(item.image)
        for metric in METRICS:
            rubric = rubrics[profile.rubric_for(metric, item.kind)]
            what = {"reference_sha256": images.sha256(item.reference)} if metric == "cp" else {
                "prompt": item.prompt.strip()}
            for run in range(runs):
                key = call_key(profile=profile.name, metric=metric, rubric_sha256=rubric.sha256, model=model,
                               temperature=float(temperature), run=run, image_sha256=image_sha,
                               image_size=profile.image_size, detail=profile.detail, **what)
                calls.append(Call(item, metric, run, rubric, key))
    return calls


def messages_for(call: Call, images: ImageCache, detail: str) -> list[dict]:
    """The message list of a call (images encoded once each, through ``images``)."""
    if call.metric == "cp":
        return cp_messages(call.rubric, images.get(call.item.reference), images.get(call.item.image), detail)
    return pf_messages(call.rubric, call.item.prompt, images.get(call.item.image), detail)


@dataclass
class Progress:
    """Counters shared by the worker threads (read by the progress bar)."""

    requests: int = 0
    finished: int = 0
    unparsed: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    errors: list[str] = field(default_factory=list)
    budget_hit: bool = False
    stop: threading.Event = field(default_factory=threading.Event, repr=False)  # Ctrl-C or an abort
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


class Budget:
    """At most ``limit`` requests (None: no limit), taken one at a time by the threads."""

    def __init__(self, limit: int | None):
        self.left, self._lock = limit, threading.Lock()

    def take(self) -> bool:
        with self._lock:
            if self.left is None:
                return True
            if self.left <= 0:
                return False
            self.left -= 1
            return True


def _record(call: Call, profile: JudgeProfile, client: JudgeClient, images: ImageCache, answers: list[Answer],
            seeds: list[int], problems: list[str], score: int | None) -> dict:
    it = call.item
    return {
        "key": call.key, "status": OK if score is not None else UNPARSED, "score": score,
        "answers": [a.content for a in answers], "problems": problems, "attempts": len(answers),
        "seeds": seeds, "model": client.model, "model_reported": answers[-1].model if answers else "",
        "endpoint": client.endpoint, "temperature": client.temperature, "profile": profile.name,
        "metric": call.metric, "run": call.run, "rubric": call.rubric.key, "rubric_sha256": call.rubric.sha256,
        "label": it.label, "subject": it.subject, "prompt_index": it.prompt_index, "kind": it.kind,
        "prompt": it.prompt, "image": str(it.image), "image_sha256": images.sha256(it.image),
        "reference": str(it.reference), "reference_sha256": images.sha256(it.reference),
        "prompt_tokens": sum(a.prompt_tokens for a in answers),
        "completion_tokens": sum(a.completion_tokens for a in answers), "time": time.time(),
    }


def judge_call(call: Call, profile: JudgeProfile, client: JudgeClient, images: ImageCache, store: CallStore,
               budget: Budget, progress: Progress) -> None:
    """Ask until an answer parses (at most ``profile.max_attempts`` requests), then record the call."""
    try:
        messages = messages_for(call, images, profile.detail)
    except DataError as e:  # an unreadable image: this call fails, the others go on
        with progress.lock:
            progress.failed += 1
            progress.errors.append(str(e))
        return
    answers, seeds, problems, score = [], [], [], None
    for attempt in range(profile.max_attempts):
        if progress.stop.is_set():
            return
        if not budget.take():
            with progress.lock:
                progress.budget_hit = True
            return
        seed = call_seed(call.key, attempt)
        try:
            answer = client.complete(messages, seed)
        except TransportError as e:
            with progress.lock:
                progress.requests += 1
                progress.failed += 1
                progress.errors.append(f"{call.item.label}/{call.item.subject}/{call.item.prompt_index} "
                                       f"{call.metric} run {call.run}: {e}")
            return
        parsed = parse_score(answer.content, profile.score_pattern, profile.score_range)
        answers.append(answer)
        seeds.append(seed)
        with progress.lock:
            progress.requests += 1
            progress.prompt_tokens += answer.prompt_tokens
            progress.completion_tokens += answer.completion_tokens
        if parsed.score is not None:
            score = parsed.score
            break
        problems.append(parsed.problem)
    store.append(_record(call, profile, client, images, answers, seeds, problems, score))
    with progress.lock:
        progress.finished += 1
        progress.unparsed += score is None


def run_calls(calls: list[Call], profile: JudgeProfile, client: JudgeClient, images: ImageCache, store: CallStore,
              concurrency: int, max_requests: int | None = None,
              on_done: Callable[[Progress], None] | None = None) -> Progress:
    """Judge ``calls`` with at most ``concurrency`` requests in flight and ``max_requests`` requests in all.
    ``on_done`` is called after each call (the progress bar). A :class:`~.client.JudgeAbort` (or Ctrl-C)
    stops submitting, lets the calls in flight end, and is raised again."""
    progress, budget = Progress(), Budget(max_requests)

    def one(call: Call) -> None:
        if progress.budget_hit or progress.stop.is_set():
            return
        judge_call(call, profile, client, images, store, budget, progress)
        if on_done is not None:
            on_done(progress)

    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="judge")
    try:
        futures = [pool.submit(one, c) for c in calls]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        for f in done:
            if f.exception() is not None:
                raise f.exception()
    except BaseException:
        progress.stop.set()  # the calls in flight end their current request and record nothing more
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return progress
