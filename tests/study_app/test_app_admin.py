"""Admin pages: login, dashboard numbers, open/close, review marks, exports exactly as docs/export.md."""
from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import select
from study_fixtures import answer_body, form, page_csrf, post_answer, start_participant

PASSWORD = "correct horse battery"


def login(app, client):
    from advlegit.study_app.cli import cli

    res = CliRunner().invoke(cli, ["create-admin", "--username", "alice"],
                             env={"DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
                                  "ADVLEGIT_INSTANCE": app.instance_path, "ADVLEGIT_ADMIN_PASSWORD": PASSWORD})
    assert res.exit_code == 0, res.output
    r = admin_login(client, "alice", PASSWORD)
    assert r.status_code == 303


def admin_login(client, username, password):
    return client.post("/admin/login", data={"username": username, "password": password,
                                             "csrf": page_csrf(client, "/admin/login")})


def csrf(client, path):
    return re.search(r'name="csrf" value="([^"]+)"', client.get(path).get_data(as_text=True)).group(1)


def complete(client, study_id, pid, answer="3", n_answer=None):
    token = start_participant(client, study_id, pid)
    trials = client.get(f"/api/p/{token}/trials").get_json()["trials"]
    for t in trials[: n_answer if n_answer is not None else len(trials)]:
        assert post_answer(client, token, answer_body(t["index"], answer)).status_code == 201
    if n_answer is None:
        client.post(f"/p/{token}/debrief", data=form(token, **{"q0": "x"}))
    return token


def test_admin_requires_login_and_the_right_password(app, client, study_id):
    for path in ("/admin/", f"/admin/studies/{study_id}", f"/admin/studies/{study_id}/export.csv"):
        r = client.get(path)
        assert r.status_code == 302 and "/admin/login" in r.headers["Location"]
    assert admin_login(client, "alice", "nope").status_code == 401
    login(app, client)
    assert admin_login(client, "alice", "wrong").status_code == 401
    assert client.get("/admin/").status_code == 302  # a failed login does not keep the old session
    admin_login(client, "alice", PASSWORD)
    assert study_id in client.get("/admin/").get_data(as_text=True)


def test_password_hash_from_environment(app, client, study_id):
    from werkzeug.security import generate_password_hash

    app.config["ADMIN_PASSWORD_HASH"] = generate_password_hash("from-env-secret")
    assert admin_login(client, "admin", "from-env-secret").status_code == 303
    assert client.get("/admin/").status_code == 200


def test_dashboard_review_and_close(app, client, study_id):
    from advlegit.study_app.db import db
    from advlegit.study_app.models import Participant

    complete(client, study_id, "P1")
    complete(client, study_id, "P2", answer="none")  # fails both attention checks
    complete(client, study_id, "P3", n_answer=3)
    login(app, client)
    page = client.get(f"/admin/studies/{study_id}").get_data(as_text=True)
    assert 'id="n-participants">3<' in page and 'id="n-completed">2 of 500' in page
    assert f"<title>Study {study_id}</title>" in page  # the title is text, not a copy of a table
    assert page.count("<h2>Debrief answers</h2>") == 1
    cells = {d: int(n) for d, n in re.findall(r"<tr><td>(\w+)</td><td>(\d+)</td></tr>", page)}
    defenses = ("undefended_ce", "gradreg_dbp", "advtrain_fgsm", "distill_t50")
    # 2 finished x 2 per defense, plus P3's one main answer after two practice trials.
    assert sum(cells[d] for d in defenses) == 17 and all(cells[d] in (4, 5) for d in defenses)
    from advlegit.study_app.models import Response, Trial

    with app.app_context():
        checks = db.session.execute(select(Trial.participant_id, Trial.expected, Response.response)
                                    .join(Response, Response.trial_id == Trial.id)
                                    .where(Trial.kind == "attention_check")).all()
    failed = [pid for pid, expected, resp in checks if resp != expected]
    assert len(checks) == 4 and len(failed) >= 2  # P2 answered "not a digit" to both
    assert f"Attention-check failures</dt><dd>{len(failed)} ({len(set(failed))} participants)" in page
    with app.app_context():
        # Prolific ids are stored in lower case
        p2 = db.session.scalar(select(Participant).where(Participant.platform_pid == "p2"))
        p2_id = p2.id
    token = csrf(client, f"/admin/studies/{study_id}")
    # Bad input changes nothing.
    assert (
        client.post(f"/admin/participants/{p2_id}/review", data={"review": "banned", "csrf": token}).status_code == 400
    )
    assert client.post(f"/admin/participants/{p2_id}/review", data={"review": "excluded"}).status_code == 403
    with app.app_context():
        assert db.session.get(Participant, p2_id).review == ""
    # Exclusion asks for confirmation first (nothing changes), then applies.
    assert (
        client.post(f"/admin/participants/{p2_id}/review", data={"review": "excluded", "csrf": token}).status_code
        == 200
    )
    with app.app_context():
        assert db.session.get(Participant, p2_id).review == ""
    assert client.post(f"/admin/participants/{p2_id}/review",
                       data={"review": "excluded", "csrf": token, "confirm": "yes"}).status_code == 303
    with app.app_context():
        p2 = db.session.get(Participant, p2_id)
        assert (p2.review, p2.state) == ("excluded", "excluded")
        assert [t.to_state for t in p2.transitions][-1] == "excluded"
    assert client.post(f"/admin/studies/{study_id}/status", data={"status": "closed", "csrf": token}).status_code == 303
    assert client.get(f"/s/{study_id}?PROLIFIC_PID=LATE").status_code == 410
    client.post(f"/admin/studies/{study_id}/status", data={"status": "open", "csrf": token})
    assert client.get(f"/s/{study_id}?PROLIFIC_PID=LATE").status_code == 303


def documented_columns() -> list[str]:
    text = (Path(__file__).resolve().parents[2] / "docs" / "export.md").read_text()
    cols = []
    for line in text.splitlines():
        if line.startswith("| `"):
            cols += re.findall(r"`([a-z_<>0-9]+)`", line.split("|")[1])
    return cols


def test_export_matches_docs_and_keeps_platform_ids_out(app, client, study_id):
    from advlegit.study_app.db import db
    from advlegit.study_app.models import Response

    complete(client, study_id, "PROLIFIC_AAA111")
    complete(client, study_id, "PROLIFIC_BBB222", n_answer=5)
    login(app, client)
    r = client.get(f"/admin/studies/{study_id}/export.csv")
    assert r.status_code == 200 and r.mimetype == "text/csv"
    text = r.get_data(as_text=True)
    rows = list(csv.DictReader(io.StringIO(text)))
    header = text.splitlines()[0].split(",")
    # Every documented column is there (model_<name> expanded for every manifest model, _b variants too).
    manifest_models = ["undefended_ce", "gradreg_dbp", "advtrain_fgsm", "distill_t50", "rater_cnn_holdout"]
    for col in documented_columns():
        if "<name>" in col:
            for m in manifest_models:
                assert col.replace("<name>", m) in header and col.replace("<name>", m) + "_b" in header
        else:
            assert col in header, col
    with app.app_context():
        assert len(rows) == db.session.query(Response).count() == 12 + 5
    assert "PROLIFIC_AAA111" not in text and "platform_pid" not in header
    sha = rows[0]["manifest_sha256"]
    assert len(sha) == 64 and all(row["manifest_sha256"] == sha for row in rows)
    main = [row for row in rows if row["trial_kind"] == "main"]
    assert all(row["defense"] and row["attack"] and row["target_hit"] in ("true", "false") for row in main)
    assert all(row["response"] == "3" and row["response_label"] == "3" for row in rows)
    for row in main:
        assert row["target_hit"] == ("true" if row["target_label"] == "3" else "false")
    checks = [row for row in rows if row["is_attention_check"] == "true"]
    from advlegit.study_app.models import Trial

    with app.app_context():
        answered_checks = db.session.scalar(select(db.func.count()).select_from(Response)
                                            .join(Trial, Trial.id == Response.trial_id)
                                            .where(Trial.kind == "attention_check"))
    assert len(checks) == answered_checks >= 2
    assert all(row["attention_passed"] in ("true", "false") and not row["defense"] for row in checks)
    assert all(row["model_rater_cnn_holdout_label"] != "" for row in rows)
    # JSON lines: same rows, same columns, typed.
    lines = client.get(f"/admin/studies/{study_id}/export.jsonl").get_data(as_text=True).splitlines()
    objs = [json.loads(x) for x in lines]
    assert [o["response_uuid"] for o in objs] == [row["response_uuid"] for row in rows]
    assert list(objs[0]) == header and isinstance(objs[0]["trial_index"], int)
    # Identifying ids only on request.
    with_ids = client.get(f"/admin/studies/{study_id}/export.csv?platform_ids=1").get_data(as_text=True)
    assert "PROLIFIC_AAA111" in with_ids


def test_cli_export_writes_file_and_companion(app, client, study_id, tmp_path):
    from advlegit.study_app.cli import cli

    complete(client, study_id, "P1")
    env = {"DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"], "ADVLEGIT_INSTANCE": app.instance_path}
    out = tmp_path / "new-folder" / "responses.csv"  # a folder that does not exist yet
    res = CliRunner().invoke(cli, ["export", "--study", study_id, "-o", str(out)], env=env)
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 12
    side = json.loads((out.parent / "responses.study.json").read_text())
    assert side["design"]["analysis"]["rt_floor_ms"] == 200 and side["manifest_sha256"] == rows[0]["manifest_sha256"]
    res = CliRunner().invoke(cli, ["export", "--study", "nope", "-o", str(tmp_path / "x.csv")], env=env)
    assert res.exit_code != 0 and "no study" in res.output
    res = CliRunner().invoke(cli, ["export", "--study", study_id, "-o", str(tmp_path / "x.xlsx")], env=env)
    assert res.exit_code != 0 and ".csv or .jsonl" in res.output


def test_compare_and_rate_exports_fill_their_columns(app, client, stimulus_dir, tmp_path):
    from study_fixtures import create_study

    login(app, client)
    for task, answer in (("compare", "right"), ("rate", "6")):
        sid = create_study(app, stimulus_dir, tmp_path, task)
        complete(client, sid, f"X{task}", answer=answer)
        rows = list(csv.DictReader(io.StringIO(client.get(f"/admin/studies/{sid}/export.csv").get_data(as_text=True))))
        main = [r for r in rows if r["trial_kind"] == "main"]
        assert main and all(r["response"] == answer for r in rows)
        if task == "compare":
            for r in main:
                assert r["defense"] != r["defense_b"] and r["chosen_defense"] == r["defense_b"]
                assert r["group"] and r["stimulus_id_b"] and r["chosen_side"] == "right"
                assert r["prompt_label"] == r["target_label"] and r["model_gradreg_dbp_label_b"] != ""
            assert all(r["rating"] == "" and r["target_hit"] == "" for r in rows)
        else:
            assert all(r["rating"] == "6" and r["chosen_side"] == "" for r in rows)
            assert all(r["prompt_label"] == r["target_label"] for r in main)
            assert all(r["prompt_label"] != "" for r in rows)
