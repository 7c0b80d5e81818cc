"""Issue 11, the human study: answers only to served questions, the cap under concurrency, bad ids, cross-site
protection and the headers of error pages. The concurrency test runs uvicorn on 127.0.0.1."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from starlette.testclient import TestClient
from study_fixtures import StudyEnv, form, make_env, question_id_of

from dreambench.study import db as sdb
from dreambench.study.app import create_app


def _count(env: StudyEnv, sql: str = "SELECT COUNT(*) FROM answers", args=()) -> int:
    conn = sdb.connect(env.db)
    try:
        return int(conn.execute(sql, args).fetchone()[0])
    finally:
        conn.close()


def _client(env: StudyEnv, **kw) -> TestClient:
    return TestClient(create_app(env.db), follow_redirects=False, **kw)


def test_only_served_questions_can_be_answered(study_env: StudyEnv):
    c, alice, bob = _client(study_env), study_env.tokens["alice"], study_env.tokens["bob"]
    served_to_bob = question_id_of(c.get(f"/r/{bob}").text)
    mine = question_id_of(c.get(f"/r/{alice}").text)
    others = [q for q in range(1, _count(study_env, "SELECT COUNT(*) FROM questions") + 1) if q != mine]
    for qid in others:  # with a valid form token even: not served to alice, so refused
        r = c.post(f"/r/{alice}/answer", data={**form(study_env, alice, qid), "answer": "left"})
        assert r.status_code == 409, qid
    assert served_to_bob in others or served_to_bob == mine
    # no form token, or another rater's token for this question: refused too
    assert c.post(f"/r/{alice}/answer", data={"question_id": str(mine), "answer": "left"}).status_code == 403
    assert c.post(f"/r/{alice}/answer", data={**form(study_env, bob, mine), "answer": "left"}).status_code == 403
    assert _count(study_env) == 0
    assert c.post(f"/r/{alice}/answer", data={**form(study_env, alice, mine), "answer": "left"}).status_code == 303
    assert _count(study_env) == 1


def test_bad_ids_are_4xx_never_500(study_env: StudyEnv):
    c, tok = _client(study_env, raise_server_exceptions=False), study_env.tokens["alice"]
    c.get(f"/r/{tok}")
    for qid in ("-1", "0", str(2**63), str(2**64), "9" * 40, "1e3", "0x10", " 1", "1.0", "", "\u0663", "nan"):
        r = c.post(f"/r/{tok}/answer", data={"question_id": qid, "answer": "left", "form_token": "x"})
        assert 400 <= r.status_code < 500, (qid, r.status_code)
    for key in ("-1", str(2**63), "f" * 24, "%00"):
        assert 400 <= c.get(f"/r/{tok}/image/{key}").status_code < 500, key
    assert _count(study_env) == 0


def test_cross_site_posts_are_refused(study_env: StudyEnv):
    c, tok = _client(study_env), study_env.tokens["alice"]
    qid = question_id_of(c.get(f"/r/{tok}").text)
    data = {**form(study_env, tok, qid), "answer": "left"}
    for headers in ({"origin": "https://evil.example"}, {"referer": "https://evil.example/page"}):
        assert c.post(f"/r/{tok}/answer", data=data, headers=headers).status_code == 403
    assert _count(study_env) == 0
    # what a browser sends under Referrer-Policy: no-referrer, with the form's token
    assert c.post(f"/r/{tok}/answer", data=data, headers={"origin": "null"}).status_code == 303
    assert _count(study_env) == 1


def test_error_pages_carry_the_security_headers(study_env: StudyEnv):
    c = _client(study_env, raise_server_exceptions=False)
    page_csp = c.get("/").headers["content-security-policy"]
    tok = study_env.tokens["alice"]
    responses = {404: c.get("/no/such/page"), 405: c.get(f"/r/{tok}/answer")}
    study_env.db.rename(study_env.db.with_suffix(".gone"))  # every request now fails inside the app
    responses[500] = c.get(f"/r/{tok}")
    for code, r in responses.items():
        assert r.status_code == code
        assert r.headers["content-security-policy"] == page_csp
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "no-referrer"
        assert "Traceback" not in r.text


def test_max_answers_holds_under_concurrent_raters(tmp_path):
    """Eight raters all have both questions open (served) and answer them at once: the cap of 1 holds."""
    import socket

    import uvicorn

    raters = tuple(f"r{i}" for i in range(8))
    env = make_env(tmp_path, n_per_type=1, max_answers=1, raters=raters)
    conn = sdb.connect(env.db)
    qids = [r[0] for r in conn.execute("SELECT id FROM questions")]
    rater_ids = {name: conn.execute("SELECT id FROM raters WHERE name = ?", (name,)).fetchone()[0] for name in raters}
    for rid in rater_ids.values():
        for q in qids:
            sdb.mark_served(conn, rid, q)
    conn.close()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(create_app(env.db), host="127.0.0.1", port=port, log_level="warning",
                                        lifespan="off"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a, **k):
            return None

    opener = urllib.request.build_opener(NoRedirect)

    def post(args) -> int:
        name, qid = args
        body = urllib.parse.urlencode({**form(env, env.tokens[name], qid), "answer": "left"}).encode()
        try:
            return opener.open(f"http://127.0.0.1:{port}/r/{env.tokens[name]}/answer", body, timeout=30).status
        except urllib.error.HTTPError as e:
            return e.code

    try:
        with ThreadPoolExecutor(16) as pool:
            codes = list(pool.map(post, [(n, q) for n in raters for q in qids]))
    finally:
        srv.should_exit = True
        thread.join(timeout=10)
    assert set(codes) == {303}, codes
    for q in qids:
        assert _count(env, "SELECT COUNT(*) FROM answers WHERE question_id = ?", (q,)) == 1
