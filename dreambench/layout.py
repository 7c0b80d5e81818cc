"""The results folder's layout, declared once: every writer and reader asks :class:`ResultsLayout`.

::

    <results>/state.sqlite                       job states (engine.state; only the driver writes it)
    <results>/.run.lock                          the driver's exclusive lock
    <results>/summary.json                       the last run's summary
    <results>/names.json                         display names of labels (tables.names)
    <results>/images/<label>/method.json         how a label was made (schema.METHOD_INFO_KEYS)
    <results>/images/<label>/<subject>/          PNGs, manifest.csv (the part), job.json
    <results>/artifacts/<label>/<subject>/       trained weights + artifact.json
    <results>/class_images/<key>/                shared prior-preservation images
    <results>/scores/                            score files (metrics.scoring); parts/<label>/<subject>/
    <results>/bench.json                         ``dreambench bench``'s measurements
    <results>/tables/                            Tables 1-6 (CSV, LaTeX, Markdown)
    <results>/report/                            the static HTML report
    <results>/cache/                             embeddings and tower digests (content-addressed)
    <results>/logs/<job-id>.log                  one log per job
    <results>/.superseded/<label>/<key>/         a replaced label's outputs until the new ones exist
    <results>/study.sqlite                       the human study's database
    <results>/judge/calls.jsonl                  the VLM judge's finished calls (content-addressed, append-only)
    <results>/judge/judge_items.csv              one row per judge call (score, status, answer)
    <results>/judge/judge_scores.csv             CP, PF, CP*PF per label with breakdowns (dreambench.judge)
    <results>/judge/judge_missing.csv            calls with no parsed score, with their raw answers
    <results>/judge/judge_meta.json              the judge's settings and counts

Only paths are declared here (no I/O): confinement and atomic writes stay in :mod:`dreambench.io`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

STATE_FILE = "state.sqlite"
RUN_LOCK = ".run.lock"
SUMMARY_FILE = "summary.json"
NAMES_FILE = "names.json"
STUDY_DB = "study.sqlite"
IMAGES = "images"
ARTIFACTS = "artifacts"
CLASS_IMAGES = "class_images"
SCORES = "scores"
SCORE_PARTS = "parts"
TABLES = "tables"
REPORT = "report"
CACHE = "cache"
LOGS = "logs"
SUPERSEDED = ".superseded"
JUDGE = "judge"

# Files inside those folders. The score files are in scores/ and, per (label, subject), in
# scores/parts/<label>/<subject>/ (metrics.parts).
PER_IMAGE = "per_image.csv"
DIV = "div.csv"
REAL = "real.csv"
PER_SUBJECT = "per_subject.csv"
AGGREGATES = "aggregates.csv"
PER_CATEGORY = "per_category.csv"
PAIRED = "paired.csv"
ERRORS = "errors.csv"
MISSING = "missing.csv"
SCORE_META = "score_meta.json"
#: In images/<label>/<subject>/ (and class_images/<key>/ for the manifest): the image manifest, the job's record.
MANIFEST = "manifest.csv"
JOB_INFO = "job.json"
#: images/<label>/method.json; artifacts/<label>/<subject>/artifact.json.
METHOD_INFO = "method.json"
ARTIFACT_INFO = "artifact.json"
#: tables/README.md: what the tables are and the files written (tables.build).
TABLES_README = "README.md"
#: ``dreambench bench``'s measurements (engine.cost reads them for estimates).
BENCH_FILE = "bench.json"


@dataclass(frozen=True)
class ResultsLayout:
    """Paths of one results folder (see the module docstring). ``root`` is used as given."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def state(self) -> Path:
        return self.root / STATE_FILE

    @property
    def lock(self) -> Path:
        return self.root / RUN_LOCK

    @property
    def summary(self) -> Path:
        return self.root / SUMMARY_FILE

    @property
    def names(self) -> Path:
        return self.root / NAMES_FILE

    @property
    def study_db(self) -> Path:
        return self.root / STUDY_DB

    @property
    def images(self) -> Path:
        return self.root / IMAGES

    @property
    def artifacts(self) -> Path:
        return self.root / ARTIFACTS

    @property
    def class_images(self) -> Path:
        return self.root / CLASS_IMAGES

    @property
    def scores(self) -> Path:
        return self.root / SCORES

    @property
    def tables(self) -> Path:
        return self.root / TABLES

    @property
    def report(self) -> Path:
        return self.root / REPORT

    @property
    def cache(self) -> Path:
        return self.root / CACHE

    @property
    def logs(self) -> Path:
        return self.root / LOGS

    @property
    def superseded(self) -> Path:
        return self.root / SUPERSEDED

    @property
    def judge(self) -> Path:
        return self.root / JUDGE

    @property
    def judge_calls(self) -> Path:
        return self.judge / "calls.jsonl"

    @property
    def judge_lock(self) -> Path:
        return self.judge / ".lock"

    @property
    def judge_items(self) -> Path:
        return self.judge / "judge_items.csv"

    @property
    def judge_scores(self) -> Path:
        return self.judge / "judge_scores.csv"

    @property
    def judge_missing(self) -> Path:
        return self.judge / "judge_missing.csv"

    @property
    def judge_meta(self) -> Path:
        return self.judge / "judge_meta.json"

    def label_images(self, label: str) -> Path:
        return self.images / label

    def subject_images(self, label: str, subject: str) -> Path:
        return self.images / label / subject

    def artifact_dir(self, label: str, subject: str) -> Path:
        return self.artifacts / label / subject

    def score_part(self, label: str, subject: str) -> Path:
        return self.scores / SCORE_PARTS / label / subject

    def job_log(self, job_id: str) -> Path:
        return self.logs / f"{job_id}.log"
