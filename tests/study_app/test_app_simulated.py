"""Participants created by `advlegit bots` are stored, exported and shown as simulated; a person cannot
become simulated by accident, and a wrong bot token stores nothing."""
from __future__ import annotations

import csv
import io

from sqlalchemy import func, select
from study_fixtures import bot_token, create_study, start_participant


def _participants(app, study_id):
    from advlegit.study_app.db import db
    from advlegit.study_app.models import Participant

    with app.app_context():
        return {p.id: p.simulated for p in db.session.scalars(select(Participant)
                                                              .where(Participant.study_id == study_id))}


def test_bots_over_real_http_are_stored_and_exported_as_simulated(app, client, server_process, stimulus_dir_v2,
                                                                   tmp_path):
    from advlegit.study_app.bots import AnswerModel, Oracle, run_bots
    from advlegit.study_app.db import db
    from advlegit.study_app.export import iter_rows
    from advlegit.study_app.models import Study

    sid = create_study(app, stimulus_dir_v2, tmp_path, "identify", trials=12, practice=1, checks=1)
    start_participant(client, sid, "HUMAN1")  # a person, through the same entry link
    oracle = Oracle.from_stimulus_dir(str(stimulus_dir_v2))
    results = run_bots(server_process.url, sid, 2, oracle, AnswerModel(kind="rater", noise=0.1),
                       simulated_token=bot_token(sid), seed=3)
    assert len(results) == 2
    flags = _participants(app, sid)
    assert sorted(flags.values()) == [False, True, True]
    with app.app_context():
        rows = list(iter_rows(db.session.get(Study, sid)))
    bot_ids = {pid for pid, sim in flags.items() if sim}
    assert rows and {r["participant_id"] for r in rows} == bot_ids  # only the bots answered
    assert all(r["simulated"] is True for r in rows)
    # The admin dashboard says so.
    from test_app_admin import login

    login(app, client)
    page = client.get(f"/admin/studies/{sid}").get_data(as_text=True)
    assert 'id="n-simulated">2' in page and page.count('class="tag simulated"') == 2


def test_a_wrong_or_foreign_token_is_refused_and_stores_nothing(app, client, stimulus_dir, tmp_path):
    from advlegit.study_app.db import db
    from advlegit.study_app.models import Participant
    from advlegit.study_app.security import SIMULATED_HEADER, simulated_token_for

    sid = create_study(app, stimulus_dir, tmp_path, "identify")
    other = create_study(app, stimulus_dir, tmp_path, "rate")
    for bad in ("", "x", bot_token(other), simulated_token_for("another-secret", sid)):
        r = client.get(f"/s/{sid}?PROLIFIC_PID=BOTX&STUDY_ID=S&SESSION_ID=X", headers={SIMULATED_HEADER: bad})
        assert r.status_code == 403 and SIMULATED_HEADER in r.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Participant)) == 0
    # The right one, on the entry request only: stored as simulated. No header: a person.
    r = client.get(f"/s/{sid}?PROLIFIC_PID=BOTY&STUDY_ID=S&SESSION_ID=X", headers={SIMULATED_HEADER: bot_token(sid)})
    assert r.status_code == 303
    start_participant(client, sid, "HUMAN2")
    # Query parameters (what a shared link could carry) do nothing.
    client.get(f"/s/{sid}?PROLIFIC_PID=HUMAN3&STUDY_ID=S&SESSION_ID=X&simulated=1&{SIMULATED_HEADER}={bot_token(sid)}")
    with app.app_context():
        flags = dict(db.session.execute(select(Participant.platform_pid, Participant.simulated)).all())
    assert flags == {"boty": True, "human2": False, "human3": False}  # Prolific ids in lower case


def test_bots_command_refuses_to_run_unlabelled(app, db_url, stimulus_dir, tmp_path):
    """`advlegit bots` with a secret other than the server's fails loudly; nothing is recorded as a person."""
    from click.testing import CliRunner
    from study_fixtures import ServerProcess

    from advlegit.study_app.cli import cli

    sid = create_study(app, stimulus_dir, tmp_path, "identify", trials=4, practice=1, checks=1)
    env = {"DATABASE_URL": db_url, "ADVLEGIT_INSTANCE": str(tmp_path / "inst"),
           "ADVLEGIT_SECRET_KEY": "not-the-server-secret"}
    with ServerProcess(db_url, tmp_path / "srv") as srv:
        res = CliRunner().invoke(cli, ["bots", "--url", srv.url, "--study", sid, "-n", "1", "--stimuli",
                                       str(stimulus_dir)], env=env)
        assert res.exit_code != 0 and "X-Advlegit-Simulated" in res.output, res.output
        assert _participants(app, sid) == {}
        # The token printed by `advlegit study bot-token` on the server's side works from anywhere.
        server_env = {"DATABASE_URL": db_url, "ADVLEGIT_INSTANCE": str(tmp_path / "inst"),
                      "ADVLEGIT_SECRET_KEY": "test-secret"}
        tok = CliRunner().invoke(cli, ["study", "bot-token", sid], env=server_env)
        assert tok.exit_code == 0 and tok.output.strip() == bot_token(sid)
        res = CliRunner().invoke(cli, ["bots", "--url", srv.url, "--study", sid, "-n", "1", "--stimuli",
                                       str(stimulus_dir), "--simulated-token", tok.output.strip()], env=env)
        assert res.exit_code == 0, res.output
    assert list(_participants(app, sid).values()) == [True]


def test_export_header_carries_simulated_for_people_too(app, client, study_id):
    from test_app_admin import complete, login

    complete(client, study_id, "PERSON1")
    login(app, client)
    rows = list(csv.DictReader(io.StringIO(client.get(f"/admin/studies/{study_id}/export.csv").get_data(as_text=True))))
    assert rows and all(r["simulated"] == "false" for r in rows)
    assert 'class="tag simulated"' not in client.get(f"/admin/studies/{study_id}").get_data(as_text=True)
