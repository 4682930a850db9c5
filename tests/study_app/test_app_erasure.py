"""Withdrawal with deletion, erasure on request, and the audit log (issue 17, items 1 and 6).
Runs on SQLite and PostgreSQL (the app fixture)."""
from __future__ import annotations

import csv
import io

from click.testing import CliRunner
from sqlalchemy import String, Text, inspect, select, text
from study_fixtures import answer_body, form, post_answer, start_participant
from test_app_admin import complete, csrf, login
from test_app_fill_rows import _at_start


def _ids(app, platform_pid):
    from advlegit.study_app.db import db
    from advlegit.study_app.models import Participant, Response

    with app.app_context():
        p = db.session.scalar(select(Participant).where(Participant.platform_pid == platform_pid.lower()))
        uuids = list(db.session.scalars(select(Response.uuid).where(Response.participant_id == p.id)))
        return {"id": p.id, "token": p.access_token, "pid": p.platform_pid, "uuids": uuids}


def _traces(app, needles: list[str]) -> list[str]:
    """Every (table.column) in the database whose text holds one of the needles."""
    from advlegit.study_app.db import db

    found = []
    with app.app_context():
        with db.engine.connect() as conn:  # one connection: SQLite allows one writer at a time
            insp = inspect(conn)
            for table in insp.get_table_names():
                for col in insp.get_columns(table):
                    if not isinstance(col["type"], (String, Text)):
                        continue
                    for value in conn.execute(text(f'SELECT "{col["name"]}" FROM "{table}"')).scalars():
                        if value and any(n in value for n in needles):
                            found.append(f"{table}.{col['name']}")
    return sorted(set(found))


def _export(client, study_id):
    return list(csv.DictReader(io.StringIO(client.get(f"/admin/studies/{study_id}/export.csv?platform_ids=1")
                                           .get_data(as_text=True))))


def test_withdraw_and_delete_leaves_nothing_of_the_person(app, client, study_id):
    keep = complete(client, study_id, "KEEPER")
    token = start_participant(client, study_id, "LEAVER")
    trials = client.get(f"/api/p/{token}/trials").get_json()["trials"]
    for t in trials[:3]:
        assert post_answer(client, token, answer_body(t["index"], "3")).status_code == 201
    who = _ids(app, "LEAVER")
    assert len(who["uuids"]) == 3
    page = client.get(f"/p/{token}/withdraw").get_data(as_text=True)
    assert "delete my answers" in page and "keep my answers" in page
    r = client.post(f"/p/{token}/withdraw", data=form(token, answers="delete"))
    assert r.status_code == 200
    body = r.get_data(as_text=True)
    assert "deleted" in body and "Prolific" in body  # told what happened and to return the submission
    needles = [who["id"], who["token"], who["pid"], "XLEAVER", *who["uuids"]]
    traces = _traces(app, needles)
    # The audit log names the pseudonymous id only (so earlier exports can be cleaned), nothing else.
    assert traces == ["audit_events.detail"]
    assert _traces(app, [who["token"], who["pid"], "XLEAVER", *who["uuids"]]) == []
    # The old link no longer opens anything; the other participant is untouched.
    assert client.get(f"/p/{token}/task").status_code == 404
    login(app, client)
    rows = _export(client, study_id)
    assert rows and {r["participant_id"] for r in rows} == {_ids(app, "KEEPER")["id"]}
    assert keep


def test_withdraw_and_keep_keeps_the_answers(app, client, study_id):
    token = start_participant(client, study_id, "STAYER")
    trials = client.get(f"/api/p/{token}/trials").get_json()["trials"]
    assert post_answer(client, token, answer_body(trials[0]["index"], "3")).status_code == 201
    assert client.post(f"/p/{token}/withdraw", data=form(token, answers="keep")).status_code == 200
    assert len(_ids(app, "STAYER")["uuids"]) == 1
    r = client.post(f"/p/{token}/withdraw", data=form(token, answers="delete"))  # too late: already left
    assert r.status_code in (200, 303, 410)
    assert len(_ids(app, "STAYER")["uuids"]) == 1


def test_bad_choice_changes_nothing(app, client, study_id):
    token = start_participant(client, study_id, "ODD")
    assert client.post(f"/p/{token}/withdraw", data=form(token, answers="shred")).status_code == 400
    from advlegit.study_app.db import db
    from advlegit.study_app.models import Participant

    with app.app_context():
        assert db.session.scalar(select(Participant.state).where(Participant.platform_pid == "odd")) == "in_task"


def test_admin_erases_on_request_after_typing_the_id_and_the_audit_log_says_so(app, client, study_id):
    complete(client, study_id, "ASKER")
    complete(client, study_id, "OTHER")
    who = _ids(app, "ASKER")
    login(app, client)
    url = f"/admin/participants/{who['id']}/erase"
    token = csrf(client, f"/admin/participants/{who['id']}")
    # First post: the confirmation page; a wrong id changes nothing.
    r = client.post(url, data={"csrf": token, "reason": "email of 2 Dec"})
    assert r.status_code == 200 and "Type the participant id" in r.get_data(as_text=True)
    r = client.post(url, data={"csrf": token, "reason": "email of 2 Dec", "confirm_id": "nope"})
    assert r.status_code == 200 and len(_ids(app, "ASKER")["uuids"]) == len(who["uuids"])
    r = client.post(url, data={"csrf": token, "reason": "email of 2 Dec", "confirm_id": who["id"]})
    assert r.status_code == 303
    assert _traces(app, [who["token"], who["pid"], *who["uuids"]]) == []
    _at_start(app, study_id)  # the balance rows no longer count them: equal to a rescan
    rows = _export(client, study_id)
    assert who["id"] not in {r["participant_id"] for r in rows} and rows
    log = list(csv.DictReader(io.StringIO(client.get(f"/admin/studies/{study_id}/audit.csv").get_data(as_text=True))))
    assert [e["action"] for e in log] == ["erasure", "export"]
    assert log[0]["actor"] == "alice" and who["id"] in log[0]["detail"] and "email of 2 Dec" in log[0]["detail"]
    assert log[1]["detail"] == "csv with platform ids"
    assert "asker" not in "".join(e["detail"] for e in log).lower()
    page = client.get(f"/admin/studies/{study_id}").get_data(as_text=True)
    assert "audit-log" in page and "erasure" in page
    # The admin's other actions are logged too: closing the study.
    client.post(f"/admin/studies/{study_id}/status", data={"csrf": token, "status": "closed"})
    log = client.get(f"/admin/studies/{study_id}/audit.csv").get_data(as_text=True)
    assert "study_closed" in log


def test_cli_erase_by_platform_id(app, client, study_id):
    from advlegit.study_app.cli import cli

    complete(client, study_id, "CLIPERSON")
    who = _ids(app, "CLIPERSON")
    env = {"DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"], "ADVLEGIT_INSTANCE": app.instance_path}
    res = CliRunner().invoke(cli, ["erase", "--study", study_id, "--platform-id", "nobody", "--yes"], env=env)
    assert res.exit_code == 1 and "no participant with platform id" in res.output
    res = CliRunner().invoke(cli, ["erase", "--study", study_id, "--platform-id", "CLIPERSON"], env=env, input="n\n")
    assert res.exit_code == 1 and "nothing erased" in res.output
    assert len(_ids(app, "CLIPERSON")["uuids"]) == len(who["uuids"])
    res = CliRunner().invoke(cli, ["erase", "--study", study_id, "--platform-id", "CLIPERSON", "--yes"], env=env)
    assert res.exit_code == 0, res.output
    assert f"erased participant {who['id']}" in res.output
    assert _traces(app, [who["token"], who["pid"], *who["uuids"]]) == []
