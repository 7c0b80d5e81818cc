"""The human-study web app (Starlette ASGI; run it with uvicorn, see ``dreambench study serve``).

Routes (every page but ``/`` needs a token in its path; unknown tokens get 403)::

    GET  /                          a landing page that says to open one's personal link
    GET  /r/{token}                 the rater's next unanswered question, then the next unrated
                                    DreamBench++-style rating item (:mod:`.ratings`), or a "done" page
    POST /r/{token}/answer          form fields question_id, answer = left | right | undecided, form_token;
                                    303 back. Only a question served to that rater, with the token of
                                    its form, is accepted (403/409 otherwise; 400 for a bad id)
    POST /r/{token}/rate            form fields item_id, score = 0..4, form_token; as /answer
    GET  /r/{token}/image/{key}     an image of the study, by its random key (JPEG, long side <= 768 px)
    GET  /admin/{token}             progress: answers per rater and per question type
    GET  /static/study.css          the only asset; pages use no JavaScript and nothing off this server

Raters see neither method names nor file paths nor anyone's answers. Images are looked up by key in the
database and must resolve inside the folder recorded with them, so no URL can name a file. Every text
is rendered by Jinja2 with autoescaping on. Responses, error pages included, carry a strict
Content-Security-Policy and ``Referrer-Policy: no-referrer`` (the token is in the URL). POSTs from another
site are refused (Origin/Referer, and the per-form token). The ``--max-answers`` cap is enforced when an
answer is stored, in one write transaction, so it holds under concurrent raters.
"""

from __future__ import annotations

import io
import os
import re
import secrets
import sqlite3
import warnings
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from threading import Lock
from urllib.parse import urlsplit

from jinja2 import Environment, FileSystemLoader
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from ..images import load_rgb
from . import db as sdb
from . import ratings as rt
from .questions import ANSWER_LABELS, INSTRUCTIONS

TEMPLATES_DIR = Path(__file__).parent / "templates"
#: Long side (pixels) of images as served: the DreamBooth photos are phone pictures.
MAX_SIDE = 768
_KEY_RE = re.compile(r"^[0-9a-f]{24}$")
#: A question id as a form may carry it: 1 to 18 digits (no sign; far below SQLite's 2**63 limit).
_ID_RE = re.compile(r"^[0-9]{1,18}$")
_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; img-src 'self'; style-src 'self'; form-action 'self'; "
                               "base-uri 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


class _ImageCache:
    """A small LRU of encoded JPEGs keyed by (path, mtime), so each image is decoded once."""

    def __init__(self, size: int = 256):
        self.size, self.items, self.lock = size, OrderedDict(), Lock()

    def get(self, path: Path) -> bytes:
        key = (str(path), path.stat().st_mtime_ns)
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                return self.items[key]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # EXIF/mode conversions are expected for phone photos
            im = load_rgb(path)
        im.thumbnail((MAX_SIDE, MAX_SIDE))
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=90)
        data = buf.getvalue()
        with self.lock:
            self.items[key] = data
            while len(self.items) > self.size:
                self.items.popitem(last=False)
        return data


def resolve_image(row: sqlite3.Row) -> Path | None:
    """The file of an image row, or None when its relative path leaves its root folder (``..``, an
    absolute path) or names no file. The check is lexical, so symlinks placed inside a results folder
    by its owner (e.g. to dataset images) still work."""
    root = os.path.normpath(row["root"])
    path = os.path.normpath(os.path.join(root, row["relpath"]))
    if os.path.commonpath([root, path]) != root or path == root or not os.path.isfile(path):
        return None
    return Path(path)


def create_app(db_path: str | Path) -> Starlette:
    """The study web app over the database ``db_path`` (which must exist; see ``study create``)."""
    db_path = Path(db_path)
    # 1. Open the database now (a clear message on a missing or foreign file) and read its form secret.
    secret = _open_study(db_path)
    # 2. The handlers, sharing the templates, the image cache and the database.
    study = _StudyApp(db_path, secret)
    # 3. The routes; error pages carry the same CSP and security headers as every other page.
    errors = {code: study.http_error for code in (404, 405, 500)}
    return Starlette(routes=study.routes(), exception_handlers=errors)


def _open_study(db_path: Path) -> str:
    """The secret that signs the study's forms, once the database at ``db_path`` opens and is up to date."""
    sdb.connect(db_path).close()  # fail now, with a clear message, on a missing or foreign file
    conn = sdb.connect(db_path)
    try:
        sdb.ensure_served_table(conn)  # databases made before answers were tied to served questions
        rt.ensure_tables(conn)  # and before rating items existed
        return sdb.form_secret(conn)
    finally:
        conn.close()


class _StudyApp:
    """The request handlers of one study. An ``async`` route hands its database work to a thread (the
    ``_name`` method beside it), which opens a connection of its own."""

    def __init__(self, db_path: Path, secret: str):
        self.db_path = db_path
        self.secret = secret
        self.env = Environment(loader=FileSystemLoader(str(TEMPLATES_DIR)), autoescape=True)
        self.cache = _ImageCache()

    def routes(self) -> list[Route]:
        return [
            Route("/", self.home),
            Route("/r/{token}", self.rater_page),
            Route("/r/{token}/answer", self.answer, methods=["POST"]),
            Route("/r/{token}/rate", self.rate, methods=["POST"]),
            Route("/r/{token}/image/{key}", self.image),
            Route("/admin/{token}", self.admin),
            Route("/static/study.css", self.css),
        ]

    def page(self, name: str, status: int = 200, **ctx) -> HTMLResponse:
        return HTMLResponse(self.env.get_template(name).render(**ctx), status_code=status,
                            headers=_SECURITY_HEADERS)

    def forbidden(self) -> HTMLResponse:
        return self.page("message.html", 403, title="Link not valid",
                         message="This link is not valid. Ask the study organizer for your personal link.")

    def message(self, status: int, title: str, text: str) -> HTMLResponse:
        return self.page("message.html", status, title=title, message=text)

    def db(self) -> sqlite3.Connection:
        return sdb.connect(self.db_path)

    async def home(self, request: Request) -> Response:
        return self.page("message.html", title="dreambench human study",
                         message="Open the personal link you were given to take part in the study.")

    async def rater_page(self, request: Request) -> Response:
        return await run_in_threadpool(self._rater_page, request.path_params["token"])

    def _rater_page(self, token: str) -> HTMLResponse:
        conn = self.db()
        try:
            rater = sdb.rater_by_token(conn, token)
            if rater is None:
                return self.forbidden()
            done = sdb.rater_answer_count(conn, rater["id"]) + rt.rating_count(conn, rater["id"])
            qid = sdb.next_question_id(conn, rater["id"])
            if qid is None:
                return self._rating_page(conn, rater, token, done)
            sdb.mark_served(conn, rater["id"], qid)  # only served questions may be answered
            q = conn.execute("SELECT * FROM questions WHERE id = ?", (qid,)).fetchone()
            keys = {r["id"]: r["key"] for r in conn.execute(
                "SELECT id, key FROM images WHERE id IN (?, ?)", (q["image_a"], q["image_b"]))}
            left, right = (q["image_a"], q["image_b"]) if q["a_on_left"] else (q["image_b"], q["image_a"])
            refs = [r["key"] for r in conn.execute(
                "SELECT i.key FROM question_refs r JOIN images i ON i.id = r.image_id"
                " WHERE r.question_id = ? ORDER BY r.position", (qid,))]
            return self.page(
                "question.html", title="Image comparison", token=token, question_id=qid, qtype=q["qtype"],
                instruction=INSTRUCTIONS[q["qtype"]], reference_text=q["reference_text"], refs=refs,
                left=keys[left], right=keys[right], labels=ANSWER_LABELS, answered=done,
                form_token=sdb.form_token(self.secret, rater["id"], qid),
            )
        finally:
            conn.close()

    def _rating_page(self, conn: sqlite3.Connection, rater: sqlite3.Row, token: str, done: int) -> HTMLResponse:
        """The rater's next rating item (one image, 0-4), or the "done" page."""
        item_id = rt.next_item_id(conn, rater["id"])
        if item_id is None:
            return self.page("done.html", title="Thank you", answered=done)
        rt.mark_served(conn, rater["id"], item_id)
        it = conn.execute("SELECT * FROM rating_items WHERE id = ?", (item_id,)).fetchone()
        keys = {r["id"]: r["key"] for r in conn.execute(
            "SELECT id, key FROM images WHERE id IN (?, ?)", (it["image_id"], it["reference_id"]))}
        return self.page(
            "rating.html", title="Image rating", token=token, item_id=item_id, metric=it["metric"],
            instruction=rt.instruction(it["metric"], it["kind"]), prompt=it["prompt"],
            reference=keys[it["reference_id"]], image=keys[it["image_id"]], labels=rt.SCORE_LABELS,
            answered=done, form_token=rt.form_token(self.secret, rater["id"], item_id))

    async def rate(self, request: Request) -> Response:
        if not _same_origin(request):
            return self.message(403, "Cross-site request refused",
                                "Answers are accepted only from this study's pages.")
        form = await request.form()
        return await run_in_threadpool(self._rate, request.path_params["token"], str(form.get("item_id", "")),
                                       str(form.get("score", "")), str(form.get("form_token", "")))

    def _rate(self, token: str, item_id: str, score: str, form_tok: str) -> Response:
        bad = self.message(400, "Bad answer",
                           "That answer could not be recorded. Go back to your link and try again.")
        if not _ID_RE.match(item_id) or score not in {str(s) for s in rt.SCORES}:
            return bad
        item = int(item_id)
        return self._store(token, form_tok, lambda rater: rt.form_token(self.secret, rater, item),
                           lambda conn, rater: rt.record_rating(conn, rater, item, int(score)), "That image", bad)

    def _store(self, token: str, form_tok: str, expected: Callable[[int], str],
               record: Callable[[sqlite3.Connection, int], None], shown: str, bad: Response,
               exists: Callable[[sqlite3.Connection], bool] = lambda _conn: True) -> Response:
        """Record one submitted form of rater ``token`` (an answer or a rating) and go on to the next page:
        unknown rater 403; an unknown target (``exists``) 400; a form token other than ``expected(rater id)``
        403; a target not shown to the rater (``shown``: what it was) 409; one already full is skipped."""
        conn = self.db()
        try:
            rater = sdb.rater_by_token(conn, token)
            if rater is None:
                return self.forbidden()
            if not exists(conn):
                return bad
            if not secrets.compare_digest(form_tok, expected(rater["id"])):
                return self.message(403, "Form not valid",
                                    "This answer did not come from your question page. "
                                    "Go back to your link and answer there.")
            try:
                record(conn, rater["id"])
            except sdb.NotServed:
                return self.message(409, "Question not shown", f"{shown} was not shown to you. "
                                                               "Go back to your link for your next question.")
            except sdb.QuestionFull:
                pass  # others answered it meanwhile: nothing stored, on to the next question
            except ValueError:
                return bad
        finally:
            conn.close()
        return RedirectResponse(f"/r/{token}", status_code=303, headers=_SECURITY_HEADERS)

    async def answer(self, request: Request) -> Response:
        if not _same_origin(request):
            return self.message(403, "Cross-site request refused",
                                "Answers are accepted only from this study's pages.")
        form = await request.form()
        return await run_in_threadpool(self._answer, request.path_params["token"],
                                       str(form.get("question_id", "")), str(form.get("answer", "")),
                                       str(form.get("form_token", "")))

    def _answer(self, token: str, question_id: str, answer: str, form_tok: str) -> Response:
        bad = self.message(400, "Bad answer",
                           "That answer could not be recorded. Go back to your link and try again.")
        if not _ID_RE.match(question_id) or answer not in ANSWER_LABELS:
            return bad  # non-numeric, negative, huge (would overflow SQLite's 64-bit integers), unknown side
        qid = int(question_id)
        return self._store(token, form_tok, lambda rater: sdb.form_token(self.secret, rater, qid),
                           lambda conn, rater: sdb.record_answer(conn, rater, qid, answer), "That question", bad,
                           lambda conn: conn.execute("SELECT 1 FROM questions WHERE id = ?", (qid,)).fetchone()
                           is not None)

    async def image(self, request: Request) -> Response:
        return await run_in_threadpool(self._image, request.path_params["token"], request.path_params["key"])

    def _image(self, token: str, key: str) -> Response:
        conn = self.db()
        try:
            if sdb.rater_by_token(conn, token) is None and not sdb.is_admin_token(conn, token):
                return self.forbidden()
            row = sdb.image_by_key(conn, key) if _KEY_RE.match(key) else None
        finally:
            conn.close()
        path = resolve_image(row) if row is not None else None
        if path is None:
            return Response("not found", status_code=404, media_type="text/plain", headers=_SECURITY_HEADERS)
        headers = dict(_SECURITY_HEADERS, **{"Cache-Control": "private, max-age=3600"})
        return Response(self.cache.get(path), media_type="image/jpeg", headers=headers)

    async def admin(self, request: Request) -> Response:
        return await run_in_threadpool(self._admin, request.path_params["token"])

    def _admin(self, token: str) -> Response:
        conn = self.db()
        try:
            if not sdb.is_admin_token(conn, token):
                return self.forbidden()
            by_type = conn.execute(
                "SELECT qtype, method_a, method_b, COUNT(*) AS questions, SUM(n) AS answers,"
                " SUM(n > 0) AS answered, MAX(max_answers) AS max_answers,"
                " SUM(max_answers > 0 AND n >= max_answers) AS complete"
                " FROM (SELECT q.id, q.qtype, q.method_a, q.method_b, q.max_answers, COUNT(a.id) AS n"
                "       FROM questions q LEFT JOIN answers a ON a.question_id = q.id GROUP BY q.id)"
                " GROUP BY qtype, method_a, method_b ORDER BY method_a, method_b, qtype DESC"
            ).fetchall()
            raters = conn.execute(
                "SELECT r.name, r.created_at,"
                " SUM(CASE WHEN q.qtype = 'subject' THEN 1 ELSE 0 END) AS subject,"
                " SUM(CASE WHEN q.qtype = 'prompt' THEN 1 ELSE 0 END) AS prompt,"
                " COUNT(a.id) AS total, MAX(a.created_at) AS last"
                " FROM raters r LEFT JOIN answers a ON a.rater_id = r.id"
                " LEFT JOIN questions q ON q.id = a.question_id GROUP BY r.id ORDER BY r.id"
            ).fetchall()
            rated = {r["name"]: r["n"] for r in conn.execute(
                "SELECT t.name, COUNT(g.id) AS n FROM raters t JOIN ratings g ON g.rater_id = t.id GROUP BY t.id")}
            ratings = rt.progress(conn)
        finally:
            conn.close()
        return self.page("admin.html", title="Study progress", by_type=by_type, raters=raters, ratings=ratings,
                         rated=rated)

    async def css(self, request: Request) -> Response:
        return FileResponse(TEMPLATES_DIR / "study.css", media_type="text/css",
                            headers=dict(_SECURITY_HEADERS, **{"Cache-Control": "public, max-age=3600"}))

    async def http_error(self, request: Request, exc: Exception) -> Response:
        code = int(getattr(exc, "status_code", 500))
        titles = {404: "Not found", 405: "Method not allowed"}
        text = ("Nothing here. Open the personal link you were given." if code < 500
                else "Something went wrong on the server. Try again later.")
        return self.message(code, titles.get(code, "Error"), text)


def _same_origin(request: Request) -> bool:
    """Whether a POST may come from this site: an ``Origin`` (or, failing that, ``Referer``) header, when
    the browser sends one, must name this host. Pages use ``Referrer-Policy: no-referrer``, under which
    browsers send ``Origin: null``; the per-form token (see :func:`dreambench.study.db.form_token`) is
    what protects those."""
    host = request.headers.get("host", "")
    origin = request.headers.get("origin")
    if origin and origin != "null":
        return urlsplit(origin).netloc == host
    referer = request.headers.get("referer")
    if referer:
        return urlsplit(referer).netloc == host
    return True
