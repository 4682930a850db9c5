"""Review marks (issue 14, items 22-23): one coherent, reversible mark with its history; platform ids for
payments on the admin pages. Runs on SQLite and PostgreSQL (the app fixture)."""
from __future__ import annotations

import re

from sqlalchemy import select
from study_fixtures import start_participant
from test_app_admin import complete, csrf, login


def _participant(app, pid):
    from advlegit.study_app.db import db
    from advlegit.study_app.models import Participant

    with app.app_context():
        # Prolific ids are stored in lower case (recruitment.py), whatever case the link used.
        p = db.session.scalar(select(Participant).where(Participant.platform_pid == pid.lower()))
        return p.id, p.state, p.review, [(e.previous, e.mark, e.by, e.note) for e in p.review_events]


def _mark(client, study_id, participant_id, review, **extra):
    token = csrf(client, f"/admin/studies/{study_id}")
    return client.post(f"/admin/participants/{participant_id}/review",
                       data={"review": review, "csrf": token, **extra})


def test_exclusion_needs_confirmation_then_is_reversible_with_history(app, client, study_id):
    start_participant(client, study_id, "MIDWAY")
    login(app, client)
    pid, state, review, events = _participant(app, "MIDWAY")
    assert (state, review, events) == ("in_task", "", [])

    # First post: a confirmation page; nothing changes yet.
    r = _mark(client, study_id, pid, "excluded", note="fast clicker")
    assert r.status_code == 200 and "Yes, mark excluded" in r.get_data(as_text=True)
    assert _participant(app, "MIDWAY")[1:] == ("in_task", "", [])

    r = _mark(client, study_id, pid, "excluded", confirm="yes", note="fast clicker")
    assert r.status_code == 303 and r.headers["Location"].endswith(f"#p-{pid}")  # back to the same row
    assert _participant(app, "MIDWAY")[1:] == ("excluded", "excluded", [("", "excluded", "alice", "fast clicker")])

    # Approving an excluded participant reinstates them where they were: never "excluded + approved".
    r = _mark(client, study_id, pid, "approved")
    assert r.status_code == 303
    _, state, review, events = _participant(app, "MIDWAY")
    assert (state, review) == ("in_task", "approved")
    assert events[-1][:2] == ("excluded", "approved")

    # Clearing the mark is allowed and recorded; repeating a mark changes nothing.
    assert _mark(client, study_id, pid, "").status_code == 303
    assert _mark(client, study_id, pid, "").status_code == 303
    _, state, review, events = _participant(app, "MIDWAY")
    assert (state, review, len(events)) == ("in_task", "", 3)

    # The participant page shows platform ids and both histories.
    page = client.get(f"/admin/participants/{pid}").get_data(as_text=True)
    assert "<code>midway</code>" in page and "XMIDWAY</code>" in page  # PROLIFIC_PID, SESSION_ID
    assert "fast clicker" in page and "exclusion undone by alice" in page
    assert page.count("<tr><td>") >= 3 + 4


def test_bad_review_input_changes_nothing(app, client, study_id):
    start_participant(client, study_id, "P1")
    login(app, client)
    pid = _participant(app, "P1")[0]
    token = csrf(client, f"/admin/studies/{study_id}")
    for data in ({"csrf": token}, {"review": "banned", "csrf": token}, {"review": "excluded"}):
        assert client.post(f"/admin/participants/{pid}/review", data=data).status_code in (400, 403)
    assert (
        client.post("/admin/participants/nobody/review", data={"review": "approved", "csrf": token}).status_code == 404
    )
    assert _participant(app, "P1")[1:] == ("in_task", "", [])


def test_rejection_also_needs_confirmation_and_approval_does_not(app, client, study_id):
    complete(client, study_id, "DONE")
    login(app, client)
    pid = _participant(app, "DONE")[0]
    assert _mark(client, study_id, pid, "rejected").status_code == 200
    assert _participant(app, "DONE")[2] == ""
    assert _mark(client, study_id, pid, "rejected", confirm="yes").status_code == 303
    assert _mark(client, study_id, pid, "approved").status_code == 303
    _, state, review, events = _participant(app, "DONE")
    assert (state, review, [e[1] for e in events]) == ("code_issued", "approved", ["rejected", "approved"])


def test_study_page_lists_platform_ids_and_offers_the_export_with_them(app, client, study_id):
    complete(client, study_id, "PAYME")
    login(app, client)
    page = client.get(f"/admin/studies/{study_id}").get_data(as_text=True)
    assert "<code>payme</code>" in page
    link = re.search(r'href="([^"]*export\.csv\?platform_ids=1)"', page).group(1)
    body = client.get(link.replace("&amp;", "&")).get_data(as_text=True)
    assert "platform_pid" in body.splitlines()[0] and "payme" in body
    assert "payme" not in client.get(f"/admin/studies/{study_id}/export.csv").get_data(as_text=True)


def test_people_who_leave_are_told_to_return_their_submission_and_see_it_again(app, client, study_id):
    """Item 18: decline and withdraw on Prolific say to return the submission, now and on a later visit."""
    from study_fixtures import form, page_csrf

    r = client.get(f"/s/{study_id}?PROLIFIC_PID=NOPE&STUDY_ID=S1&SESSION_ID=X1")
    token = re.search(r"/p/([^/]+)/", r.headers["Location"]).group(1)
    page_csrf(client, f"/p/{token}/consent")
    r = client.post(f"/p/{token}/consent", data=form(token, choice="decline"), follow_redirects=True)
    text = r.get_data(as_text=True)
    assert "chose not to take part" in text and "return your submission" in text
    again = client.get(f"/s/{study_id}?PROLIFIC_PID=NOPE&STUDY_ID=S1&SESSION_ID=X1").get_data(as_text=True)
    assert "chose not to take part" in again and "already taken part" not in again

    token = start_participant(client, study_id, "QUITTER")
    r = client.post(f"/p/{token}/withdraw", data=form(token))
    assert r.status_code == 200 and "return your submission" in r.get_data(as_text=True)
    again = client.get(f"/s/{study_id}?PROLIFIC_PID=QUITTER&STUDY_ID=S1&SESSION_ID=XQ").get_data(as_text=True)
    assert "You have left the study" in again and "return your submission" in again


def test_completion_page_keeps_the_code_without_redirecting(app, client, study_id):
    """Item 17: no automatic navigation away from the code; a copy button and a manual link."""
    token = complete(client, study_id, "FINISHER")
    page = client.get(f"/p/{token}/done").get_data(as_text=True)
    assert 'http-equiv="refresh"' not in page
    assert 'id="completion-code"' in page and 'id="copy-code"' in page
    assert re.search(r'id="completion-link" class="btn primary" href="https://app\.prolific\.co/submissions/'
                     r'complete\?cc=[A-Z0-9]+"', page)
