"""The trial list reads the image tokens of the participant's own trials, not every image of the set:
on a 20,000-stimulus set the whole table cost every participant a 25,000-row read (BENCHMARKS.md,
bench_start), which starved the Starts running beside it."""
from __future__ import annotations

from sqlalchemy import event, select
from study_fixtures import start_participant


def test_trial_list_reads_only_the_participants_image_tokens(app, client, study_id):
    from advlegit.study_app.db import db
    from advlegit.study_app.models import Participant, StudyImage, Trial

    token = start_participant(client, study_id)
    with app.app_context():
        p = db.session.scalar(select(Participant).where(Participant.access_token == token))
        shown = {i for t in db.session.scalars(select(Trial).where(Trial.participant_id == p.id))
                 for i in (t.image_id, t.image_b_id) if i}
        in_set = len(db.session.scalars(select(StudyImage.id).where(StudyImage.study_id == study_id)).all())
    assert len(shown) < in_set
    token_rows: list[int] = []

    def count(state):
        """Runs the statement, counts the rows of every read of study_images, hands the rows on."""
        if StudyImage.__table__ not in state.statement.get_final_froms():
            return None
        result = state.invoke_statement().freeze()
        token_rows.append(len(result().all()))
        return result()

    with app.app_context():
        factory = db.session.session_factory
    event.listen(factory, "do_orm_execute", count)
    try:
        r = client.get(f"/api/p/{token}/trials")
    finally:
        event.remove(factory, "do_orm_execute", count)
    assert r.status_code == 200
    images = [u for t in r.get_json()["trials"] for u in (t["image"], t["image_b"]) if u]
    assert len(set(images)) == len(shown)
    assert token_rows and sum(token_rows) == len(shown), (token_rows, len(shown), in_set)
