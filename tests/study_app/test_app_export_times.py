"""instructions_ms and session_ms: per-participant times the exclusion rules read, computed from the
participant's own state transitions and responses on the server's clock."""
from __future__ import annotations

import csv
import io
from datetime import timedelta

from sqlalchemy import select, update
from study_fixtures import answer_body, post_answer, start_participant
from test_app_admin import login


def test_export_carries_instruction_and_session_times_per_participant(app, client, study_id):
    from advlegit.study_app.db import db, utcnow
    from advlegit.study_app.models import Participant, Response, Transition

    tokens = {}
    for pid in ("PID_A", "PID_B"):
        tokens[pid] = start_participant(client, study_id, pid)
        trials = client.get(f"/api/p/{tokens[pid]}/trials").get_json()["trials"]
        for t in trials[:3]:
            assert post_answer(client, tokens[pid], answer_body(t["index"], "3")).status_code == 201
    t0 = utcnow().replace(microsecond=0) - timedelta(hours=1)
    expected = {}
    with app.app_context():  # known times: instructions 25.5 s, then 100 s (A) and 7 min (B) to the last answer
        people = db.session.scalars(select(Participant)).all()
        assert len(people) == 2
        for n, p in enumerate(people):
            session = 100.0 if n == 0 else 420.0
            db.session.execute(update(Transition).where(Transition.participant_id == p.id,
                                                        Transition.to_state == "instructed").values(at=t0))
            db.session.execute(update(Transition).where(Transition.participant_id == p.id,
                                                        Transition.to_state == "in_task")
                               .values(at=t0 + timedelta(seconds=25.5)))
            rs = db.session.scalars(select(Response).where(Response.participant_id == p.id)
                                    .order_by(Response.trial_index)).all()
            for i, r in enumerate(rs):  # the latest received, not the last index, ends the session
                r.received_at = t0 + timedelta(seconds=25.5 + (session if i == 1 else 10.0 * i))
            expected[p.id] = (25500.0, session * 1000)
        db.session.commit()
    login(app, client)
    rows = list(csv.DictReader(io.StringIO(client.get(f"/admin/studies/{study_id}/export.csv").get_data(as_text=True))))
    header = list(rows[0])
    assert header.index("instructions_ms") == header.index("simulated") + 1  # beside the participant columns
    assert len(rows) == 6
    for row in rows:
        assert (float(row["instructions_ms"]), float(row["session_ms"])) == expected[row["participant_id"]]
