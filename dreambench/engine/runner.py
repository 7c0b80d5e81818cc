"""The driver: runs a plan's jobs on a backend, records states in SQLite, retries, summarizes.

Only this process writes ``<results>/state.sqlite``. Jobs already ``done`` are skipped (resume after a
crash or a finished run); ``running`` ones were interrupted and run again. A job runs when all the jobs it
depends on are done; when one of those failed for good, it fails too without running. A failing job is
retried ``retries`` times, then marked failed with its error; the others go on. A deterministic error
(a :class:`dreambench.errors.DreambenchError`: bad data, config or weights) is never retried. A driver
that stops early (Ctrl-C, disk full, any error) stops its workers, puts its ``running`` jobs back to
``pending`` and records the run as ``interrupted`` before it exits.
"""

from __future__ import annotations

import contextlib
import errno
import json
import shutil
import sqlite3
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DreambenchError, EnvironmentFailure, describe_os_error
from ..io import confined, remove_stale_temps, write_text_atomic
from ..layout import SUMMARY_FILE, SUPERSEDED, ResultsLayout  # noqa: F401  (SUMMARY_FILE, SUPERSEDED: re-exported)
from .backend import Backend
from .jobs import Job, Plan
from .kinds import get_kind
from .local import LocalBackend, log_line, plan_slots
from .lock import run_lock
from .ray_backend import RayBackend
from .replace import check_replacements, find_replacements, identity_change
from .state import StateDB
from .worker import WorkerContext


@dataclass
class RunOptions:
    """How to run a plan. ``device`` None picks CUDA when available; ``gpus`` None uses every visible GPU."""

    results_dir: Path
    data_dir: Path
    backend: str = "local"
    device: str | None = None
    gpus: list[int] | None = None
    jobs_per_gpu: int = 1
    retries: int = 1
    address: str | None = None
    threads: int | None = None
    progress: bool = True
    argv: list[str] = field(default_factory=list)
    #: Labels whose outputs made with other settings may be replaced (``"all"``: any); see engine.replace.
    replace: tuple[str, ...] = ()
    #: Estimated cost of each job (any unit; cost.job_seconds): the progress bar and its ETA advance by
    #: it, so a long training job counts for more than a table. Empty: every job counts the same.
    job_weights: dict[str, float] = field(default_factory=dict)


@dataclass
class RunSummary:
    """What a run did: counts, failures, images, wall time and device-seconds per method label."""

    jobs: int
    done: int
    skipped: int
    failed: list[dict]
    images: int
    wall_seconds: float
    device_seconds: dict[str, float]
    backend: str
    device: str
    path: Path | None = None

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_dict(self) -> dict:
        return {"jobs": self.jobs, "done": self.done, "skipped_already_done": self.skipped,
                "failed": self.failed, "images": self.images, "wall_seconds": round(self.wall_seconds, 3),
                "device_seconds_per_label": {k: round(v, 3) for k, v in self.device_seconds.items()},
                "backend": self.backend, "device": self.device}


#: The summary's device when nothing ran and none was asked for.
NO_DEVICE = "none (nothing to run)"


def auto_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def make_backend(opts: RunOptions, ctx: WorkerContext) -> Backend:
    """The backend object named by ``opts.backend`` (``local`` | ``ray``)."""
    if opts.backend == "local":
        gpus = opts.gpus
        if ctx.device.startswith("cuda") and gpus is None:
            import torch

            gpus = list(range(torch.cuda.device_count()))
        return LocalBackend(ctx, plan_slots(ctx.device, gpus, opts.jobs_per_gpu, threads=opts.threads, log=log_line))
    if opts.backend == "ray":
        workers = None
        if opts.gpus is not None and ctx.device.startswith("cuda"):
            workers = len(opts.gpus) * max(1, opts.jobs_per_gpu)
        elif not ctx.device.startswith("cuda"):
            workers = max(1, opts.jobs_per_gpu)
        return RayBackend(ctx, workers=workers, jobs_per_gpu=opts.jobs_per_gpu, address=opts.address,
                          threads=opts.threads)
    raise DreambenchError(f"unknown backend {opts.backend!r}; valid: local, ray")


def run_plan(plan: Plan, opts: RunOptions, backend: Backend | None = None) -> RunSummary:
    """Run every job of ``plan`` not yet done; write ``<results>/summary.json``; return the summary."""
    t0 = time.time()
    results = Path(opts.results_dir).resolve()
    check_replacements(find_replacements(plan, results), opts.replace)  # before anything is written
    results.mkdir(parents=True, exist_ok=True)
    device = opts.device or NO_DEVICE  # resolved below only when there is work (probing CUDA loads torch)
    lock = run_lock(results)
    remove_stale_temps(results)  # left by a killed run; no one else writes here while we hold the lock
    layout = ResultsLayout(results)
    db = StateDB(confined(results, layout.state))  # a state.sqlite symlinked elsewhere is refused
    run_id: int | None = None
    ids = [j.id for j in plan.jobs]
    try:
        label_jobs: dict[str, list[str]] = {}
        for j in plan.by_kind("subject"):
            label_jobs.setdefault(j.label, []).append(j.id)
        db.add_jobs(plan.jobs)
        db.reset_for_resume(ids)
        for r in db.jobs(ids):
            if r["status"] == "done" and not _outputs_present(results, r, Path(opts.data_dir)):
                db.set_status(r["id"], "pending", "outputs missing on disk or made from other inputs; run again")
        status = {r["id"]: r["status"] for r in db.jobs(ids)}
        _rerun_dependents(plan, status, db)
        todo = [j for j in plan.jobs if status[j.id] != "done"]
        skipped = len(plan.jobs) - len(todo)
        run_id = db.start_run(opts.argv, ids)
        failed: dict[str, str] = {}
        done_now = 0
        if todo:
            device = opts.device or auto_device()
            ctx = WorkerContext(str(results), str(Path(opts.data_dir).resolve()), device,
                                progress=opts.progress and opts.jobs_per_gpu == 1)
            backend = backend or make_backend(opts, ctx)
            try:
                done_now, failed = _drive(todo, status, db, backend, results, opts, ids, label_jobs)
            except BaseException:
                getattr(backend, "kill", backend.close)()  # interrupted or failed: stop the workers now
                raise
            backend.close()
        for label in label_jobs:  # replacements finished by an earlier, interrupted run
            _drop_superseded_if_replaced(results, label, label_jobs, {r["id"]: r["status"] for r in db.jobs(ids)})
        db.finish_run(run_id, "failed" if failed else "done")
        rows = db.jobs(ids)
    except BaseException as e:
        # Ctrl-C, disk full, a read-only folder, a broken database, any other error: the workers are stopped
        # by now; no job is left 'running' and the run is recorded as interrupted.
        if isinstance(e, KeyboardInterrupt):
            _ignore_sigint()  # a second Ctrl-C must not cut this clean-up short
        left = _stop_run(db, ids, run_id)
        if not isinstance(e, (sqlite3.Error, OSError)):
            raise
        note = "" if left == 0 else f" ({left} job(s) could not be reset from 'running'; the next run resets them)"
        raise EnvironmentFailure(describe_os_error(e, str(layout.state)) + note) from None
    finally:
        db.close()
        lock.close()
    summary = _summarize(results, rows, skipped, done_now, time.time() - t0, opts.backend, device)
    write_text_atomic(layout.summary, json.dumps(summary.to_dict(), indent=1))
    summary.path = layout.summary
    return summary


#: errno values of a job failure that stop the whole run: every later write would fail the same way.
FATAL_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EDQUOT}


#: ``runs.status`` of a run whose driver stopped before the plan was through (Ctrl-C, disk full, an error).
INTERRUPTED = "interrupted"


def _stop_run(db: StateDB, ids: list[str], run_id: int | None) -> int:
    """After the driver stopped early: the plan's ``running`` jobs back to ``pending`` and the run recorded
    as :data:`INTERRUPTED`; returns how many jobs could not be reset (0 = all)."""
    left = _release_running(db, ids)
    if run_id is not None:
        with contextlib.suppress(sqlite3.Error):  # else `status` tells from the free run lock (driver_alive)
            db.finish_run(run_id, INTERRUPTED)
    return left


def _ignore_sigint() -> None:
    import signal

    with contextlib.suppress(ValueError):  # not the main thread: no signal handlers there
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def _release_running(db: StateDB, ids: list[str]) -> int:
    """Put the plan's ``running`` jobs back to ``pending``; returns how many could not be (0 = all done).
    A WAL checkpoint first lets the write reuse the log's space when the disk is full."""
    with contextlib.suppress(sqlite3.Error):
        db.conn.execute("PRAGMA wal_checkpoint(RESTART)")
    q = ",".join("?" * len(ids))
    try:
        with db.conn:
            db.conn.execute(f"UPDATE jobs SET status='pending' WHERE status='running' AND id IN ({q})", ids)
        return 0
    except sqlite3.Error:
        try:
            return int(db.conn.execute(f"SELECT COUNT(*) FROM jobs WHERE status='running' AND id IN ({q})",
                                       ids).fetchone()[0])
        except sqlite3.Error:
            return len(ids)


class _JobsBar:
    """The run's progress bar: a job's share is its estimated cost (``opts.job_weights``), so the ETA weighs
    a long training above a table; its text counts jobs ("jobs 3/16")."""

    def __init__(self, todo: list[Job], opts: RunOptions):
        from tqdm import tqdm

        self.weight, self.n, self.finished = job_weights(todo, opts.job_weights), len(todo), 0
        self.bar = tqdm(total=sum(self.weight.values()), desc=f"jobs 0/{self.n}", disable=not opts.progress,
                        file=sys.stderr, bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}]")

    def advance(self, jid: str) -> None:
        self.finished += 1
        self.bar.set_description_str(f"jobs {self.finished}/{self.n}", refresh=False)
        # Float shares summed in another order than the total can pass it by a rounding error, which
        # tqdm reports as a warning at the end of every run.
        self.bar.update(max(0.0, min(self.weight[jid], self.bar.total - self.bar.n)))

    def write(self, line: str, file=None) -> None:
        """A line above the bar (``tqdm.write``)."""
        self.bar.write(line, file=file)

    def close(self) -> None:
        self.bar.close()


def _drive(todo: list[Job], status: dict[str, str], db: StateDB, backend: Backend, results: Path,
           opts: RunOptions, plan_ids: list[str], label_jobs: dict[str, list[str]] | None = None
           ) -> tuple[int, dict[str, str]]:
    label_jobs = label_jobs or {}
    by_id = {j.id: j for j in todo}
    pending = list(todo)
    tries: dict[str, int] = {}
    failed: dict[str, str] = {}
    running: set[str] = set()
    done = 0
    backend.start()
    bar = _JobsBar(todo, opts)
    advance = bar.advance
    try:
        while pending or running:
            # Fail jobs whose dependencies failed for good: they cannot run.
            for j in list(pending):
                bad = [d for d in j.deps if status.get(d) == "failed"]
                if bad and not _after_failed_deps(j):
                    pending.remove(j)
                    msg = NOT_RUN + ", ".join(dict.fromkeys(r for d in bad for r in root_causes(d, failed)))
                    db.mark_failed(j.id, msg)
                    status[j.id] = "failed"
                    failed[j.id] = msg
                    advance(j.id)
            for slot in backend.free_slots():
                ready = next((j for j in pending if _deps_met(j, status)), None)
                if ready is None:
                    break
                pending.remove(ready)
                if _writes_label(ready.kind):
                    _claim_label(db, results, ready, plan_ids)
                db.mark_running(ready.id, slot, backend.describe(slot))
                status[ready.id] = "running"
                running.add(ready.id)
                backend.submit(slot, ready.to_dict())
            if not running:
                if pending and not any(d in status and status[d] == "failed" for j in pending for d in j.deps):
                    raise RuntimeError(f"jobs with unmet dependencies: {[j.id for j in pending]}")
                continue
            for res in backend.wait(timeout=1.0):
                jid = res["id"]
                running.discard(jid)
                if res["ok"]:
                    db.mark_done(jid, res.get("seconds") or 0.0, {**res.get("artifacts", {}), "log": res.get("log", "")},
                                 device=res.get("device"))
                    _set_images(db, jid, res.get("images", 0))
                    _say_remade(res)
                    status[jid] = "done"
                    done += 1
                    advance(jid)
                    if _writes_label(by_id[jid].kind):
                        _drop_superseded_if_replaced(results, by_id[jid].label, label_jobs, status)
                    continue
                if res.get("os_error") and res["os_error"][0] in FATAL_ERRNOS:
                    code, cause, filename = res["os_error"]
                    raise OSError(code, cause, filename)  # run_plan: one line, nothing left 'running'
                tries[jid] = tries.get(jid, 0) + 1
                # A deterministic error (bad data, config, weights) would fail the same way again.
                final = bool(res.get("deterministic")) or tries[jid] > opts.retries
                db.mark_failed(jid, res.get("error") or "unknown error", res.get("seconds"), final=final)
                if final:
                    status[jid] = "failed"
                    failed[jid] = res.get("error") or "unknown error"
                    advance(jid)
                    why = " (not retried: the same inputs fail the same way)" if res.get("deterministic") else ""
                    bar.write(f"job {jid} ({_what(by_id[jid])}) failed{why}: {failed[jid]}", file=sys.stderr)
                else:
                    status[jid] = "pending"
                    pending.insert(0, by_id[jid])
                    bar.write(f"job {jid} ({_what(by_id[jid])}) failed, retrying: {res.get('error')}",
                               file=sys.stderr)
    finally:
        bar.close()
    return done, failed


#: The error of a job not run because a job it needs failed for good; the failed jobs' ids follow.
NOT_RUN = "not run: dependency job(s) failed: "


def root_causes(job_id: str, errors: dict[str, str]) -> list[str]:
    """The jobs whose own failure kept ``job_id`` from running (itself when it failed on its own), read
    from the failed jobs' ``errors`` (id -> error): a dependant names the root causes, not its direct input."""
    error = errors.get(job_id) or ""
    if not error.startswith(NOT_RUN):
        return [job_id]
    return [x.strip() for x in error.removeprefix(NOT_RUN).split(",") if x.strip()]


def failure_lines(failed: list[dict]) -> list[str]:
    """One ``FAILED`` line per job that failed on its own (kind, label/subject, error, log), each followed
    on the same line by the jobs not run because of it, instead of one cascading line per dependant.
    ``failed``: rows with ``id``, ``kind``, ``label``, ``subject``, ``error`` and optionally ``log``."""
    errors = {f["id"]: f.get("error") or "" for f in failed}
    dependants: dict[str, list[str]] = {}
    for f in failed:
        for root in root_causes(f["id"], errors):
            if root != f["id"]:
                dependants.setdefault(root, []).append(_row_what(f))
    lines = []
    for f in failed:
        if root_causes(f["id"], errors) != [f["id"]]:
            continue
        where = f" (see {f['log']})" if f.get("log") else ""
        after = dependants.get(f["id"], [])
        then = f"; not run because of it: {len(after)} job(s) ({', '.join(after)})" if after else ""
        lines.append(f"FAILED {f['id']} {_row_what(f)}: {f['error']}{where}{then}")
    orphans = [f for f in failed if all(r not in errors for r in root_causes(f["id"], errors))
               and root_causes(f["id"], errors) != [f["id"]]]
    lines += [f"FAILED {f['id']} {_row_what(f)}: {f['error']}" for f in orphans]  # its cause is not listed
    return lines


def _row_what(row: dict) -> str:
    return f"{row['kind']} {row['label'] or ''}/{row['subject'] or ''}".rstrip("/ ")


def job_weights(jobs: list[Job], estimated: dict[str, float]) -> dict[str, float]:
    """Each job's share of the progress bar: its estimated cost, at least 1% of the mean estimate (a table
    job still moves the bar); 1 each without estimates."""
    if not estimated:
        return {j.id: 1.0 for j in jobs}
    known = [estimated.get(j.id, 0.0) for j in jobs]
    floor = max(0.01 * sum(known) / max(1, len(known)), 1e-3)
    return {j.id: max(estimated.get(j.id, 0.0), floor) for j in jobs}


def _deps_met(job: Job, status: dict[str, str]) -> bool:
    """Its dependencies are done (or, for a job that runs after failures, such as the score merge,
    finished one way or the other)."""
    ok = ("done", "failed") if _after_failed_deps(job) else ("done",)
    return all(status.get(d) in ok for d in job.deps)


def _after_failed_deps(job: Job) -> bool:
    kind = get_kind(job.kind)
    return bool(kind.after_failed_deps) if kind is not None else bool(job.spec.get("run_if_deps_failed"))


def _writes_label(kind_name: str) -> bool:
    kind = get_kind(kind_name)
    return kind is not None and kind.writes_label


def _claim_label(db: StateDB, results: Path, job: Job, plan_ids: list[str]) -> None:
    """Before a subject job writes under its label: if the label was made with another label key
    (another config, recipe, seed, model...), move the label's folders aside (:func:`move_aside`) and
    invalidate what used them. They are deleted once every subject job of the label is done again. The same
    when its ``method.json`` names another method identity (the method's code changed)."""
    key = job.spec.get("label_key", "")
    old = db.label_key(job.label)
    if old is not None and old != key:
        moved = move_aside(results, job.label, old)
        n = db.invalidate_label(job.label, plan_ids)
        from tqdm import tqdm

        where = f" to {moved.relative_to(results)}" if moved else ""
        tqdm.write(f"label {job.label}: made with another config before; its outputs moved aside{where} "
                   f"until the new ones are written, {n} earlier job(s) invalidated", file=sys.stderr)
    elif (change := identity_change(results, job.label, (job.spec.get("job") or {}).get("method"))) is not None:
        # Another version of the method made the label's images: they are not this code's, so the label is
        # made again (never refused: a method identity is not a label setting).
        moved = move_aside(results, job.label, key)
        n = db.invalidate_label(job.label, plan_ids)
        from tqdm import tqdm

        where = f" to {moved.relative_to(results)}" if moved else ""
        tqdm.write(f"label {job.label}: made by {change[0]}, this run has {change[1]}; its outputs moved "
                   f"aside{where} until the new ones are written, {n} earlier job(s) invalidated", file=sys.stderr)
    if old != key:
        db.set_label_key(job.label, key)


def move_aside(results: Path, label: str, old_key: str) -> Path | None:
    """Move ``images/<label>`` and ``artifacts/<label>`` to ``<results>/.superseded/<label>/<old_key>[.n]/``
    (outside the scored folder); the folder moved into, or None when there was nothing to move."""
    layout = ResultsLayout(results)
    present = [sub for sub in (layout.images, layout.artifacts) if (sub / label).exists()]
    if not present:
        return None
    root = layout.superseded / label
    dest = root / old_key
    n = 1
    while dest.exists():
        dest, n = root / f"{old_key}.{n}", n + 1
    dest.mkdir(parents=True)
    for sub in present:
        (sub / label).rename(dest / sub.name)
    return dest


def _drop_superseded_if_replaced(results: Path, label: str, label_jobs: dict[str, list[str]],
                                 status: dict[str, str]) -> None:
    """Delete the label's moved-aside outputs once every subject job of the label in the plan is done."""
    ids = label_jobs.get(label)
    folder = ResultsLayout(results).superseded / label
    if not ids or not folder.is_dir() or not all(status.get(i) == "done" for i in ids):
        return
    shutil.rmtree(folder)
    if not any(folder.parent.iterdir()):
        folder.parent.rmdir()


def _say_remade(res: dict) -> None:
    """One line per output a finished job found broken, missing or made from other inputs and made again
    (the worker's ``remade`` list), e.g. ``remade images/dreambooth/dog/0_0.png: truncated``."""
    from tqdm import tqdm

    for line in (res.get("artifacts") or {}).get("remade", []):
        tqdm.write(f"remade {line}", file=sys.stderr)


def _outputs_present(results: Path, row: dict, data_dir: Path | None = None) -> bool:
    """Whether a done job may be trusted without running again: its kind's ``current`` (outputs still on
    disk, whole, and made from the current inputs; :mod:`dreambench.engine.kinds`). A kind this release
    does not know is trusted."""
    kind = get_kind(row["kind"])
    return True if kind is None else kind.current(results, row, data_dir)


def _rerun_dependents(plan: Plan, status: dict[str, str], db: StateDB) -> None:
    """A done job whose input job runs again runs again too (plan.jobs is in dependency order)."""
    for j in plan.jobs:
        if status.get(j.id) == "done" and any(status.get(d) != "done" for d in j.deps):
            db.set_status(j.id, "pending", "an input job runs again")
            status[j.id] = "pending"


def _set_images(db: StateDB, job_id: str, images: int) -> None:
    with db.conn:
        db.conn.execute("UPDATE jobs SET images=? WHERE id=?", (int(images), job_id))


def _what(job: Job) -> str:
    return f"{job.kind} {job.label}/{job.subject}".rstrip("/ ")


def _summarize(results: Path, rows: list[dict], skipped: int, done_now: int, wall: float, backend: str,
               device: str) -> RunSummary:
    per_label: dict[str, float] = {}
    images = 0
    failed = []
    for r in rows:
        if r["status"] == "done":
            key = r["label"] or r["kind"]
            per_label[key] = per_label.get(key, 0.0) + (r["seconds"] or 0.0)
            if (kind := get_kind(r["kind"])) is not None and kind.makes_images:
                images += r["images"] or 0
        elif r["status"] == "failed":
            failed.append({"id": r["id"], "kind": r["kind"], "label": r["label"], "subject": r["subject"],
                           "error": r["error"], "log": _log_if_any(results, r["id"])})
    return RunSummary(len(rows), done_now, skipped, failed, images, wall, per_label, backend, device)


def _log_if_any(results: Path, job_id: str) -> str | None:
    p = ResultsLayout(results).job_log(job_id)
    return p.relative_to(results).as_posix() if p.is_file() else None


def format_summary(summary: RunSummary) -> str:
    """Human-readable summary: counts and a cost table (device-seconds per method label)."""
    lines = [(f"jobs: {summary.jobs} ({summary.done} run now, {summary.skipped} already done, "
              f"{len(summary.failed)} failed); images: {summary.images}; wall time: {summary.wall_seconds:.1f} s "
              f"({summary.backend}, {summary.device})")]
    if summary.device_seconds:
        width = max(len(k) for k in summary.device_seconds)
        lines.append(f"{'label'.ljust(width)}  device-seconds (cumulative: every run that made this plan's "
                     "done jobs, this one and earlier)")
        for k, v in summary.device_seconds.items():
            lines.append(f"{k.ljust(width)}  {v:12.1f}")
    lines += failure_lines(summary.failed)
    return "\n".join(lines)
