"""Job states in SQLite (``<results>/state.sqlite``), written only by the driver process.

One row per job: id, kind, label, subject, status (``pending`` | ``running`` | ``done`` | ``failed``),
attempts, timings (unix seconds), worker, device, artifact paths (JSON), error text and the job's spec.
WAL mode keeps ``dreambench status`` readers from blocking the driver; readers
(``StateDB(readonly=True)``) create no file in the folder (:func:`dreambench.io.connect_readonly`). A run on an existing folder
resumes: ``done`` jobs are skipped, ``running`` ones (interrupted by a crash) go back to ``pending``.

The ``labels`` table records the *label key* (hash of what every image of a method label depends on:
method, resolved config, recipe, ablation settings, model, seed) that last wrote each label's folders, so
a run that reuses a label with another config starts from clean folders instead of stale images.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from pathlib import Path

from ..errors import EnvironmentFailure
from ..io import connect_readonly
from ..layout import RUN_LOCK, STATE_FILE  # noqa: F401  (re-exported: the layout declares them)
from .jobs import Job
from .kinds import ORDER as KINDS

STATUSES = ("pending", "running", "done", "failed")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, label TEXT, subject TEXT, status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, created REAL, started REAL, finished REAL, seconds REAL,
    worker TEXT, device TEXT, artifacts TEXT, error TEXT, images INTEGER DEFAULT 0, spec TEXT
);
CREATE TABLE IF NOT EXISTS labels (label TEXT PRIMARY KEY, label_key TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (id INTEGER PRIMARY KEY AUTOINCREMENT, started REAL, finished REAL,
    argv TEXT, jobs TEXT, status TEXT);
"""


class StateDB:
    """The job table of one results folder. Not thread-safe; one driver process writes it."""

    def __init__(self, path: str | Path, readonly: bool = False):
        self.path = Path(path)
        try:
            if readonly:  # writes nothing, not even WAL side files (io.connect_readonly)
                self.conn = connect_readonly(self.path)
                self.conn.execute("SELECT COUNT(*) FROM jobs")  # a file that is no state database fails here
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
                self.conn.execute("PRAGMA journal_mode=WAL")
                self.conn.execute("PRAGMA synchronous=NORMAL")
                self.conn.executescript(_SCHEMA)
        except sqlite3.Error as e:  # corrupt, locked, read-only or full: one line naming the file
            raise EnvironmentFailure(f"{self.path}: {e}") from None
        self.conn.row_factory = sqlite3.Row

    def close(self) -> None:
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing (driver only) -------------------------------------------------------------------------
    def add_jobs(self, jobs: list[Job]) -> None:
        """Insert jobs not yet known (existing rows, whatever their status, are kept)."""
        now = time.time()
        with self.conn:
            self.conn.executemany(
                "INSERT OR IGNORE INTO jobs (id, kind, label, subject, status, attempts, created, images, spec) "
                "VALUES (?, ?, ?, ?, 'pending', 0, ?, ?, ?)",
                [(j.id, j.kind, j.label, j.subject, now, j.images, json.dumps(j.spec, sort_keys=True))
                 for j in jobs],
            )

    def reset_for_resume(self, ids: list[str]) -> dict[str, int]:
        """Send interrupted (``running``) and earlier ``failed`` jobs among ``ids`` back to ``pending``.

        Returns how many of each were reset."""
        counts = {}
        with self.conn:
            for status in ("running", "failed"):
                q = ",".join("?" * len(ids))
                cur = self.conn.execute(
                    f"UPDATE jobs SET status='pending' WHERE status=? AND id IN ({q})", [status, *ids])
                counts[status] = cur.rowcount
        return counts

    def mark_running(self, job_id: str, worker: str, device: str) -> None:
        with self.conn:
            self.conn.execute(
                "UPDATE jobs SET status='running', attempts=attempts+1, started=?, finished=NULL, worker=?, "
                "device=?, error=NULL WHERE id=?", (time.time(), worker, device, job_id))

    def mark_done(self, job_id: str, seconds: float, artifacts: dict | None = None, device: str | None = None) -> None:
        with self.conn:
            self.conn.execute(
                "UPDATE jobs SET status='done', finished=?, seconds=?, artifacts=?, error=NULL, "
                "device=COALESCE(?, device) WHERE id=?",
                (time.time(), seconds, json.dumps(artifacts or {}, sort_keys=True), device, job_id))

    def mark_failed(self, job_id: str, error: str, seconds: float | None = None, final: bool = True) -> None:
        """Record an error; ``final=False`` puts the job back to ``pending`` for a retry."""
        with self.conn:
            self.conn.execute(
                "UPDATE jobs SET status=?, finished=?, seconds=?, error=? WHERE id=?",
                ("failed" if final else "pending", time.time(), seconds, error, job_id))

    def set_label_key(self, label: str, key: str) -> None:
        with self.conn:
            self.conn.execute("INSERT OR REPLACE INTO labels (label, label_key) VALUES (?, ?)", (label, key))

    def invalidate_label(self, label: str, keep: list[str]) -> int:
        """After a label's folders were cleared: its other done subject jobs, and every score/tables job,
        go back to ``pending`` (their outputs are gone or stale). Returns how many were reset."""
        q = ",".join("?" * len(keep)) or "''"
        with self.conn:
            n = self.conn.execute(
                f"UPDATE jobs SET status='pending', error='outputs replaced by a run with another config' "
                f"WHERE status='done' AND ((kind='subject' AND label=?) OR kind IN ('score', 'tables')) "
                f"AND id NOT IN ({q})", [label, *keep]).rowcount
        return n

    def set_status(self, job_id: str, status: str, error: str | None = None) -> None:
        with self.conn:
            self.conn.execute("UPDATE jobs SET status=?, error=? WHERE id=?", (status, error, job_id))

    def start_run(self, argv: list[str], job_ids: list[str]) -> int:
        with self.conn:
            cur = self.conn.execute("INSERT INTO runs (started, argv, jobs, status) VALUES (?, ?, ?, 'running')",
                                    (time.time(), json.dumps(argv), json.dumps(job_ids)))
        # Fold the log into the main file now, while there is room: the run's later writes only change rows
        # that exist, so should the disk fill up, the driver's last writes (running jobs back to pending, the
        # run recorded as interrupted) fit in the log's space without growing any file.
        with contextlib.suppress(sqlite3.Error):
            self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        return int(cur.lastrowid)

    def finish_run(self, run_id: int, status: str) -> None:
        with self.conn:
            self.conn.execute("UPDATE runs SET finished=?, status=? WHERE id=?", (time.time(), status, run_id))

    # -- reading ---------------------------------------------------------------------------------------
    def label_key(self, label: str) -> str | None:
        row = self.conn.execute("SELECT label_key FROM labels WHERE label=?", (label,)).fetchone()
        return row["label_key"] if row else None

    def get(self, job_id: str) -> dict | None:
        row = self.conn.execute("SELECT * FROM jobs WHERE id=?", (job_id,)).fetchone()
        return _row(row) if row else None

    def jobs(self, ids: list[str] | None = None) -> list[dict]:
        if ids is None:
            rows = self.conn.execute("SELECT * FROM jobs ORDER BY created, kind, label, subject").fetchall()
        else:
            q = ",".join("?" * len(ids))
            rows = self.conn.execute(f"SELECT * FROM jobs WHERE id IN ({q}) ORDER BY created, kind, label, subject",
                                     ids).fetchall()
        return [_row(r) for r in rows]

    def runs(self) -> list[dict]:
        """Every run of the folder, oldest first, with its ``jobs`` list decoded."""
        out = [dict(r) for r in self.conn.execute("SELECT * FROM runs ORDER BY id").fetchall()]
        for d in out:
            d["jobs"] = json.loads(d["jobs"] or "[]")
        return out

    def last_run(self) -> dict | None:
        row = self.conn.execute("SELECT * FROM runs ORDER BY id DESC LIMIT 1").fetchone()
        if row is None:
            return None
        d = dict(row)
        d["jobs"] = json.loads(d["jobs"] or "[]")
        return d


def driver_alive(results_dir: str | Path) -> bool:
    """Whether a driver runs in ``results_dir`` now: someone holds the lock on its :data:`RUN_LOCK` (the OS
    drops it when the driver dies, however it dies). Read only: the file is opened for reading, never
    created."""
    import fcntl

    try:
        f = open(Path(results_dir) / RUN_LOCK, "rb")  # noqa: SIM115  (closed below)
    except OSError:
        return False
    with f:
        try:
            fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
        return False


def as_seen_now(runs: list[dict], rows: list[dict], alive: bool) -> tuple[list[dict], list[dict]]:
    """``runs`` and job ``rows`` as they stand when no driver is alive: a run still marked ``running`` was
    interrupted (its driver died before it could say so: ``kill -9``, a full disk) and its ``running``
    jobs wait to run again (``pending``: the next run resets them). Unchanged while a driver runs."""
    if alive:
        return runs, rows
    runs = [{**r, "status": "interrupted"} if r["status"] == "running" else r for r in runs]
    rows = [{**r, "status": "pending"} if r["status"] == "running" else r for r in rows]
    return runs, rows


def _row(row: sqlite3.Row) -> dict:
    d = dict(row)
    d["artifacts"] = json.loads(d["artifacts"]) if d.get("artifacts") else {}
    d["spec"] = json.loads(d["spec"]) if d.get("spec") else {}
    return d


def progress_table(rows: list[dict]) -> list[dict]:
    """Counts of each status per (kind, label), in first-seen order: what ``dreambench status`` prints."""
    groups: dict[tuple[str, str], dict] = {}
    for r in rows:
        key = (r["kind"], r["label"] or r["subject"] or "-")
        g = groups.setdefault(key, {"kind": key[0], "label": key[1], **{s: 0 for s in STATUSES},
                                    "subjects_done": [], "subjects_left": [], "seconds": 0.0})
        g[r["status"]] += 1
        if r["kind"] == "subject":
            (g["subjects_done"] if r["status"] == "done" else g["subjects_left"]).append(r["subject"])
        g["seconds"] += r["seconds"] or 0.0
    order = {k: i for i, k in enumerate(KINDS)}
    return sorted(groups.values(), key=lambda g: order.get(g["kind"], len(order)))
