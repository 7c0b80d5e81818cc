"""The rating web app through starlette's TestClient: tokens, answers, isolation, admin, escaping, paths."""

from __future__ import annotations

import io
import os
import re
import sqlite3

import pytest
from PIL import Image
from starlette.testclient import TestClient
from study_fixtures import METHOD_A, METHOD_B, StudyEnv, form, make_env, question_id_of

from dreambench.study import db as sdb
from dreambench.study.app import create_app


def client(env: StudyEnv) -> TestClient:
    return TestClient(create_app(env.db), follow_redirects=False)


def rows(env: StudyEnv, sql: str, args=()) -> list[sqlite3.Row]:
    conn = sdb.connect(env.db)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def test_token_required(study_env: StudyEnv):
    c = client(study_env)
    assert c.get("/").status_code == 200
    for url in ("/r/not-a-token", "/r/" + "x" * 43, "/admin/not-a-token", f"/admin/{study_env.tokens['alice']}",
                "/r/nope/image/" + "0" * 24):
        assert c.get(url).status_code == 403, url
    r = c.post("/r/not-a-token/answer", data={"question_id": "1", "answer": "left"})
    assert r.status_code == 403
    assert rows(study_env, "SELECT COUNT(*) FROM answers")[0][0] == 0
    # only hashes are stored
    stored = {r[0] for r in rows(study_env, "SELECT token_hash FROM raters")}
    assert study_env.tokens["alice"] not in stored and sdb.hash_token(study_env.tokens["alice"]) in stored


def test_answer_is_stored_once_and_next_question_follows(study_env: StudyEnv):
    c, tok = client(study_env), study_env.tokens["alice"]
    page = c.get(f"/r/{tok}")
    assert page.status_code == 200
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
    assert page.headers["referrer-policy"] == "no-referrer"
    qid = question_id_of(page.text)
    r = c.post(f"/r/{tok}/answer", data={**form(study_env, tok, qid), "answer": "left"})
    assert r.status_code == 303 and r.headers["location"] == f"/r/{tok}"
    (ans,) = rows(study_env, "SELECT a.*, q.a_on_left FROM answers a JOIN questions q ON q.id = a.question_id")
    assert (ans["question_id"], ans["shown"]) == (qid, "left")
    assert ans["choice"] == ("a" if ans["a_on_left"] else "b")  # the side is mapped to the method shown there
    # a double submit stores nothing more; the next page shows another question
    c.post(f"/r/{tok}/answer", data={**form(study_env, tok, qid), "answer": "right"})
    assert rows(study_env, "SELECT COUNT(*) FROM answers")[0][0] == 1
    assert question_id_of(c.get(f"/r/{tok}").text) != qid
    # bad input is refused without storing
    for data in ({"question_id": str(qid + 1), "answer": "sideways"}, {"question_id": "99999", "answer": "left"},
                 {"question_id": "x", "answer": "left"}, {}):
        assert c.post(f"/r/{tok}/answer", data=data).status_code == 400
    assert rows(study_env, "SELECT COUNT(*) FROM answers")[0][0] == 1


def test_rater_sees_no_one_elses_answers_nor_methods(study_env: StudyEnv):
    c, alice, bob = client(study_env), study_env.tokens["alice"], study_env.tokens["bob"]
    for _ in range(3):
        qid = question_id_of(c.get(f"/r/{alice}").text)
        c.post(f"/r/{alice}/answer", data={**form(study_env, alice, qid), "answer": "right"})
    page = c.get(f"/r/{bob}").text
    assert "Answered so far: 0" in page
    for secret in (METHOD_A, METHOD_B, "alice", ".png", "right"):
        assert secret not in page.replace('value="right"', "").replace("answer-right", ""), secret
    assert c.get(f"/admin/{bob}").status_code == 403
    assert "Answered so far: 3" in c.get(f"/r/{alice}").text


def test_every_rater_finishes_and_caps_hold(study_env: StudyEnv):
    """With max_answers=2 and two raters each answers every question once, then sees the done page."""
    c = client(study_env)
    n_questions = rows(study_env, "SELECT COUNT(*) FROM questions")[0][0]
    for tok in study_env.tokens.values():
        for _ in range(n_questions):
            qid = question_id_of(c.get(f"/r/{tok}").text)
            assert c.post(f"/r/{tok}/answer", data={**form(study_env, tok, qid), "answer": "undecided"}).status_code == 303
        assert "no more questions" in c.get(f"/r/{tok}").text
    counts = rows(study_env, "SELECT COUNT(*) FROM answers GROUP BY question_id")
    assert len(counts) == n_questions and {r[0] for r in counts} == {2}


def test_admin_page_shows_progress(study_env: StudyEnv):
    c, tok = client(study_env), study_env.tokens["alice"]
    types = []
    for _ in range(2):
        qid = question_id_of(c.get(f"/r/{tok}").text)
        types.append(rows(study_env, "SELECT qtype FROM questions WHERE id = ?", (qid,))[0][0])
        c.post(f"/r/{tok}/answer", data={**form(study_env, tok, qid), "answer": "left"})
    page = c.get(f"/admin/{study_env.admin}")
    assert page.status_code == 200
    html = page.text
    n_subject = types.count("subject")
    assert f"<tr><td>alice</td><td>{n_subject}</td><td>{2 - n_subject}</td><td>2</td>" in html
    assert "<tr><td>bob</td><td>0</td><td>0</td><td>0</td>" in html
    assert METHOD_A in html and METHOD_B in html


def test_prompts_and_names_are_escaped(tmp_path):
    evil = '<script>alert(1)</script> & "q"'
    env = make_env(tmp_path, n_per_type=1, raters=("<b>eve</b>",), plain_override=evil)
    c, tok = client(env), env.tokens["<b>eve</b>"]
    seen_prompt = False
    for _ in range(2):
        html = c.get(f"/r/{tok}").text
        assert "<script>" not in html
        if "Reference text" in html:
            assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &#34;q&#34;" in html
            seen_prompt = True
        c.post(f"/r/{tok}/answer", data={**form(env, tok, question_id_of(html)), "answer": "left"})
    assert seen_prompt
    admin = c.get(f"/admin/{env.admin}").text
    assert "<b>eve</b>" not in admin and "&lt;b&gt;eve&lt;/b&gt;" in admin


def test_images_by_key_only(study_env: StudyEnv, tmp_path):
    c, tok = client(study_env), study_env.tokens["alice"]
    html = c.get(f"/r/{tok}").text
    keys = re.findall(rf"/r/{tok}/image/([0-9a-f]{{24}})", html)
    assert len(keys) >= 2
    r = c.get(f"/r/{tok}/image/{keys[-1]}")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(r.content)).size) <= 768
    assert c.get(f"/admin/{study_env.admin}").status_code == 200
    # traversal attempts: the route takes a key, never a path
    for url in (f"/r/{tok}/image/../../../../etc/passwd", f"/r/{tok}/image/..%2f..%2f..%2fetc%2fpasswd",
                f"/r/{tok}/image/%2e%2e%2f%2e%2e%2fetc%2fpasswd", f"/r/{tok}/image/" + "f" * 24,
                f"/r/{tok}/image/{keys[-1]}/../../../etc/passwd", f"/r/{tok}/image/manifest.csv"):
        r = c.get(url)
        assert r.status_code in (403, 404), url
        assert b"root:" not in r.content
    # even a database row naming a file outside its folder is refused
    outside = tmp_path / "secret.png"
    Image.new("RGB", (8, 8)).save(outside)
    os.symlink(outside, study_env.results / "images" / "link.png")  # owner-made symlinks inside are fine
    conn = sdb.connect(study_env.db)
    bad = {"a" * 24: "../../secret.png", "b" * 24: str(outside), "c" * 24: "", "d" * 24: "link.png"}
    with sdb.transaction(conn):
        for key, rel in bad.items():
            conn.execute("INSERT INTO images (key, root, relpath, role, subject) VALUES (?, ?, ?, 'generated', 'dog')",
                         (key, str(study_env.results / "images"), rel))
    conn.close()
    for key in list(bad)[:3]:
        assert c.get(f"/r/{tok}/image/{key}").status_code == 404, bad[key]
    assert c.get(f"/r/{tok}/image/{'d' * 24}").status_code == 200


def test_missing_database_is_a_clear_error(tmp_path):
    from dreambench.errors import DreambenchError

    with pytest.raises(DreambenchError, match="no such study database"):
        create_app(tmp_path / "nope.sqlite")
    (tmp_path / "junk.sqlite").write_text("not sqlite")
    with pytest.raises(DreambenchError, match="not a dreambench study database"):
        create_app(tmp_path / "junk.sqlite")
