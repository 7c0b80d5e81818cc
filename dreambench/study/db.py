"""The human-study database (SQLite): images, questions, raters, answers.

Tables::

    meta(key, value)                 schema version, admin token hash
    images(id, key, root, relpath, role, method, subject, prompt_index, seed)
        role = reference | generated; the file is ``root/relpath`` (root: an absolute folder recorded at
        ``study create``); ``key`` is a random opaque id, the only thing a URL names.
    questions(id, qtype, subject, prompt_index, prompt, reference_text, method_a, method_b,
              image_a, image_b, a_on_left, max_answers, created_at)
        qtype = subject | prompt; image_a/image_b: images.id of method_a's / method_b's image.
    question_refs(question_id, image_id, position)   reference images shown with a question
    raters(id, name, token_hash, created_at)
    answers(id, rater_id, question_id, choice, shown, created_at)  UNIQUE(rater_id, question_id)
    served(rater_id, question_id, served_at)   the questions the server showed to each rater
        choice = a | b | undecided in terms of the methods (method_a / method_b), whatever the side;
        shown  = left | right | undecided: the button the rater pressed.

Tokens (rater links and the admin link) are random (``secrets.token_urlsafe``) and stored only as their
SHA-256 hex digest: a token is printed once, when made; a lost one is replaced with ``raters reset``.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import secrets
import sqlite3
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from ..errors import DreambenchError

SCHEMA_VERSION = "1"
QUESTION_TYPES = ("subject", "prompt")
CHOICES = ("a", "b", "undecided")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS images (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    root TEXT NOT NULL,
    relpath TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('reference', 'generated')),
    method TEXT, subject TEXT NOT NULL, prompt_index INTEGER, seed INTEGER,
    UNIQUE (root, relpath)
);
CREATE TABLE IF NOT EXISTS questions (
    id INTEGER PRIMARY KEY,
    qtype TEXT NOT NULL CHECK (qtype IN ('subject', 'prompt')),
    subject TEXT NOT NULL,
    prompt_index INTEGER NOT NULL,
    prompt TEXT NOT NULL,
    reference_text TEXT NOT NULL,
    method_a TEXT NOT NULL,
    method_b TEXT NOT NULL,
    image_a INTEGER NOT NULL REFERENCES images(id),
    image_b INTEGER NOT NULL REFERENCES images(id),
    a_on_left INTEGER NOT NULL CHECK (a_on_left IN (0, 1)),
    max_answers INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS question_refs (
    question_id INTEGER NOT NULL REFERENCES questions(id),
    image_id INTEGER NOT NULL REFERENCES images(id),
    position INTEGER NOT NULL,
    PRIMARY KEY (question_id, position)
);
CREATE TABLE IF NOT EXISTS raters (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    token_hash TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS answers (
    id INTEGER PRIMARY KEY,
    rater_id INTEGER NOT NULL REFERENCES raters(id),
    question_id INTEGER NOT NULL REFERENCES questions(id),
    choice TEXT NOT NULL CHECK (choice IN ('a', 'b', 'undecided')),
    shown TEXT NOT NULL CHECK (shown IN ('left', 'right', 'undecided')),
    created_at TEXT NOT NULL,
    UNIQUE (rater_id, question_id)
);
CREATE INDEX IF NOT EXISTS answers_question ON answers(question_id);
"""
#: Which question the server showed to which rater: only those may be answered (see record_answer).
_SERVED_SCHEMA = """
CREATE TABLE IF NOT EXISTS served (
    rater_id INTEGER NOT NULL REFERENCES raters(id),
    question_id INTEGER NOT NULL REFERENCES questions(id),
    served_at TEXT NOT NULL,
    PRIMARY KEY (rater_id, question_id)
);
"""
#: Largest id accepted from a form (SQLite integers are 64-bit; bigger ones would overflow).
MAX_ID = 2**62


class NotServed(ValueError):
    """An answer to a question the server never showed to that rater."""


class QuestionFull(ValueError):
    """An answer to a question that already has its ``max_answers`` answers."""


def now() -> str:
    """UTC time stamp, ISO 8601 with seconds."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    """A random URL-safe token (32 bytes of entropy)."""
    return secrets.token_urlsafe(32)


def connect(db_path: str | Path, *, create: bool = False) -> sqlite3.Connection:
    """Open the study database (rows as :class:`sqlite3.Row`, foreign keys on, 10 s busy timeout).

    With ``create`` the file and schema are made if missing; otherwise a missing file or a file that is
    not a study database raises :class:`DreambenchError` naming it."""
    db_path = Path(db_path)
    if not create and not db_path.is_file():
        raise DreambenchError(f"{db_path}: no such study database (make one with `dreambench study create`)")
    if create:
        db_path.parent.mkdir(parents=True, exist_ok=True)
    # isolation_level=None: transactions are explicit (see transaction()).
    conn = sqlite3.connect(str(db_path), timeout=10.0, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA foreign_keys = ON")
    try:
        if create:
            conn.execute("PRAGMA journal_mode = WAL")  # readers do not block the one writer
            conn.executescript(_SCHEMA + _SERVED_SCHEMA)
            conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (SCHEMA_VERSION,))
        else:
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is None:
                raise sqlite3.DatabaseError("no schema version")
    except sqlite3.DatabaseError as e:
        conn.close()
        raise DreambenchError(f"{db_path}: not a dreambench study database ({e})") from None
    return conn


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction (``BEGIN IMMEDIATE``): committed on success, rolled back on any error."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


# --- images and questions -------------------------------------------------------------------------

def add_image(conn: sqlite3.Connection, root: str | Path, relpath: str, role: str, subject: str,
              method: str | None = None, prompt_index: int | None = None, seed: int | None = None) -> int:
    """The id of the image ``root/relpath``, inserting it (with a fresh random key) if new."""
    root = str(Path(root).resolve())
    row = conn.execute("SELECT id FROM images WHERE root = ? AND relpath = ?", (root, relpath)).fetchone()
    if row:
        return int(row["id"])
    cur = conn.execute(
        "INSERT INTO images (key, root, relpath, role, method, subject, prompt_index, seed)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (secrets.token_hex(12), root, relpath, role, method, subject, prompt_index, seed),
    )
    return int(cur.lastrowid)


def add_question(conn: sqlite3.Connection, *, qtype: str, subject: str, prompt_index: int, prompt: str,
                 reference_text: str, method_a: str, method_b: str, image_a: int, image_b: int,
                 a_on_left: bool, reference_images: list[int], max_answers: int = 0) -> int:
    """Insert one question (and its reference images, in display order); returns its id."""
    if qtype not in QUESTION_TYPES:
        raise ValueError(f"question type {qtype!r} is not one of {QUESTION_TYPES}")
    cur = conn.execute(
        "INSERT INTO questions (qtype, subject, prompt_index, prompt, reference_text, method_a, method_b,"
        " image_a, image_b, a_on_left, max_answers, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (qtype, subject, int(prompt_index), prompt, reference_text, method_a, method_b, image_a, image_b,
         int(bool(a_on_left)), int(max_answers), now()),
    )
    qid = int(cur.lastrowid)
    conn.executemany("INSERT INTO question_refs VALUES (?, ?, ?)",
                     [(qid, img, pos) for pos, img in enumerate(reference_images)])
    return qid


def image_by_key(conn: sqlite3.Connection, key: str) -> sqlite3.Row | None:
    return conn.execute("SELECT * FROM images WHERE key = ?", (key,)).fetchone()


def question_count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM questions").fetchone()[0])


# --- raters and tokens ----------------------------------------------------------------------------

def add_rater(conn: sqlite3.Connection, name: str) -> str:
    """Create rater ``name``; returns the new token (only its hash is stored)."""
    name = name.strip()
    if not name:
        raise DreambenchError("a rater name must not be empty")
    token = new_token()
    try:
        with transaction(conn):
            conn.execute("INSERT INTO raters (name, token_hash, created_at) VALUES (?, ?, ?)",
                         (name, hash_token(token), now()))
    except sqlite3.IntegrityError:
        raise DreambenchError(f"rater {name!r} exists already (give a new token with `study raters reset`)") \
            from None
    return token


def reset_rater_token(conn: sqlite3.Connection, name: str) -> str:
    """Replace the token of rater ``name`` (the old link stops working); returns the new token."""
    token = new_token()
    with transaction(conn):
        cur = conn.execute("UPDATE raters SET token_hash = ? WHERE name = ?", (hash_token(token), name))
    if cur.rowcount != 1:
        raise DreambenchError(f"no rater named {name!r}")
    return token


def rater_names(conn: sqlite3.Connection) -> list[str]:
    return [r["name"] for r in conn.execute("SELECT name FROM raters ORDER BY id")]


def next_rater_names(conn: sqlite3.Connection, count: int, prefix: str = "rater") -> list[str]:
    """``count`` unused names ``rater-01``, ``rater-02``, ..."""
    taken = set(rater_names(conn))
    out, i = [], 1
    while len(out) < count:
        name = f"{prefix}-{i:02d}"
        if name not in taken:
            out.append(name)
        i += 1
    return out


def rater_by_token(conn: sqlite3.Connection, token: str) -> sqlite3.Row | None:
    if not token:
        return None
    return conn.execute("SELECT * FROM raters WHERE token_hash = ?", (hash_token(token),)).fetchone()


def new_admin_token(conn: sqlite3.Connection) -> str:
    """Make a new admin token (replacing any previous one); returns it."""
    token = new_token()
    with transaction(conn):
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('admin_token_hash', ?)", (hash_token(token),))
    return token


def is_admin_token(conn: sqlite3.Connection, token: str) -> bool:
    row = conn.execute("SELECT value FROM meta WHERE key = 'admin_token_hash'").fetchone()
    return bool(row and token) and secrets.compare_digest(row["value"], hash_token(token))


# --- answers ----------------------------------------------------------------------------------------

def next_question_id(conn: sqlite3.Connection, rater_id: int) -> int | None:
    """The question rater ``rater_id`` sees next, or ``None`` when there is none left for them.

    Candidates: questions this rater has not answered whose answer count is below their ``max_answers``
    (0 = no cap). Among them the least-answered comes first, so answers spread evenly over questions;
    ties are ordered by a per-rater hash so raters see questions in different orders."""
    rows = conn.execute(
        "SELECT q.id, q.max_answers, COUNT(a.id) AS n FROM questions q"
        " LEFT JOIN answers a ON a.question_id = q.id"
        " WHERE q.id NOT IN (SELECT question_id FROM answers WHERE rater_id = ?)"
        " GROUP BY q.id",
        (rater_id,),
    ).fetchall()
    open_ = [r for r in rows if r["max_answers"] <= 0 or r["n"] < r["max_answers"]]
    if not open_:
        return None

    def order(r: sqlite3.Row) -> tuple[int, str]:
        return r["n"], hashlib.sha256(f"{rater_id}:{r['id']}".encode()).hexdigest()

    return int(min(open_, key=order)["id"])


def ensure_served_table(conn: sqlite3.Connection) -> None:
    """Add the ``served`` table (and the form secret) to a database made before they existed."""
    conn.executescript(_SERVED_SCHEMA)
    form_secret(conn)


def form_secret(conn: sqlite3.Connection) -> str:
    """The random secret that signs answer forms (made on first use, kept in ``meta``)."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'form_secret'").fetchone()
    if row:
        return str(row["value"])
    with transaction(conn):
        conn.execute("INSERT OR IGNORE INTO meta VALUES ('form_secret', ?)", (secrets.token_hex(32),))
    return str(conn.execute("SELECT value FROM meta WHERE key = 'form_secret'").fetchone()["value"])


def form_token(secret: str, rater_id: int, question_id: int, scope: str = "") -> str:
    """The token of the answer form of one (rater, question): an HMAC no other site can forge. ``scope``
    prefixes the message (``"rating:"`` for rating items), so one kind's token never passes for another's."""
    return hmac.new(secret.encode(), f"{scope}{rater_id}:{question_id}".encode(), hashlib.sha256).hexdigest()[:32]


def mark_served(conn: sqlite3.Connection, rater_id: int, question_id: int) -> None:
    """Record that question ``question_id`` was shown to rater ``rater_id`` (idempotent)."""
    with transaction(conn):
        conn.execute("INSERT OR IGNORE INTO served VALUES (?, ?, ?)", (rater_id, question_id, now()))


def record_answer(conn: sqlite3.Connection, rater_id: int, question_id: int, shown: str) -> bool:
    """Store the answer of a rater who pressed ``shown`` (left | right | undecided) on a question.

    One write transaction (``BEGIN IMMEDIATE``: answers are recorded one at a time, so the cap below holds
    under any number of concurrent raters); the side is translated to the method (``choice`` a | b |
    undecided) with the question's stored layout. Returns False (and stores nothing) when this rater
    already answered it. Raises ``ValueError`` for an unknown question or side, :class:`NotServed` when
    the question was never shown to this rater, :class:`QuestionFull` when it has ``max_answers``
    answers already."""
    if shown not in ("left", "right", "undecided"):
        raise ValueError(f"unknown answer {shown!r}")
    if not 0 < question_id < MAX_ID:
        raise ValueError(f"unknown question {question_id}")
    with transaction(conn):
        q = conn.execute("SELECT a_on_left, max_answers FROM questions WHERE id = ?", (question_id,)).fetchone()
        if q is None:
            raise ValueError(f"unknown question {question_id}")
        if conn.execute("SELECT 1 FROM served WHERE rater_id = ? AND question_id = ?",
                        (rater_id, question_id)).fetchone() is None:
            raise NotServed(f"question {question_id} was not served to rater {rater_id}")
        if conn.execute("SELECT 1 FROM answers WHERE rater_id = ? AND question_id = ?",
                        (rater_id, question_id)).fetchone() is not None:
            return False
        n = conn.execute("SELECT COUNT(*) FROM answers WHERE question_id = ?", (question_id,)).fetchone()[0]
        if q["max_answers"] > 0 and n >= q["max_answers"]:
            raise QuestionFull(f"question {question_id} has its {q['max_answers']} answers")
        if shown == "undecided":
            choice = "undecided"
        else:
            choice = "a" if (shown == "left") == bool(q["a_on_left"]) else "b"
        try:
            conn.execute(
                "INSERT INTO answers (rater_id, question_id, choice, shown, created_at) VALUES (?, ?, ?, ?, ?)",
                (rater_id, question_id, choice, shown, now()),
            )
        except sqlite3.IntegrityError:
            return False
    return True


def rater_answer_count(conn: sqlite3.Connection, rater_id: int) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM answers WHERE rater_id = ?", (rater_id,)).fetchone()[0])
