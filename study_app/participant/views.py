"""Participant pages: entry from a recruitment link, consent, instructions, task shell, debrief, completion."""
from __future__ import annotations

import hashlib
import json
import secrets

import markdown
from flask import Blueprint, Response, abort, current_app, redirect, render_template, request, url_for
from flask_babel import gettext as _
from markupsafe import Markup
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from .. import allocation, security
from ..db import db, utcnow
from ..design import debrief_explanation, estimated_minutes, with_minutes
from ..erasure import erase
from ..i18n import use_language
from ..models import Image, Participant, Study, StudyImage
from ..presentation import Presentation, display_problem
from ..recruitment import RecruitmentError, mturk_submit_url, parse_arrival, prolific_redirect
from ..security import check_participant_csrf
from ..states import FINISHED, enter, resume_if_timed_out, transition
from ..studies import new_id

bp = Blueprint("participant", __name__)

PAGE_FOR_STATE = {
    "entered": "participant.consent",
    "consented": "participant.instructions",
    "instructed": "participant.instructions",
    "in_task": "participant.task",
    "data_complete": "participant.debrief",
    "code_issued": "participant.done",
}


def message(title: str, text: str, status: int = 200):
    return render_template("participant/message.html", title=title, text=text), status


def load(token: str, lock: bool = False) -> Participant:
    stmt = select(Participant).where(Participant.access_token == token)
    if lock:
        # PostgreSQL: the row stays locked until commit, so two steps at once (a double click, withdraw
        # beside the last answer) queue and the second sees what the first stored. SQLite needs no
        # lock: its transactions begin IMMEDIATE and hold the one write lock.
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    p = db.session.scalar(stmt)
    if p is None:  # most often an older tab after the recruitment link was opened again (a new link)
        abort(404, description=_("This link is no longer valid. If you opened the study again from Prolific or "
                                 "MTurk, please continue in the newest tab or window; otherwise open the study "
                                 "again from your recruitment link, and you will continue where you left off."))
    use_language(p.study.design.get("language"))
    return p


# What someone who left must still do on their recruitment platform, so they are not timed out there and
# their place goes to someone else.
def return_on_platform(platform: str | None) -> str:
    if platform == "prolific":
        return _("On Prolific, please return your submission: open this study on Prolific and choose "
                 "“Stop without completing” (or “Return submission”). That frees your place for someone else.")
    if platform == "mturk":
        return _("On MTurk, please return the HIT (the “Return” button), so that it is not held for you.")
    return _("You can close this page.")


def ended(p: Participant, status: int = 410):
    """The page for a participant whose session is over without a completion code."""
    if p.state != "returned":
        return message(_("Thank you"), _("This session has ended. You can close this page."), status)
    declined = any(t.reason == "declined consent" for t in p.transitions if t.to_state == "returned")
    first = (_("You chose not to take part, so this study has ended for you.") if declined
             else _("You have left the study."))
    thanks = _("Thank you for your time.")
    text = f"{first} {thanks} {return_on_platform(p.platform)}"
    return message(_("You have left the study"), text, status)


def goto(p: Participant):
    endpoint = PAGE_FOR_STATE.get(p.state)
    if endpoint is None:
        return ended(p)
    return redirect(url_for(endpoint, token=p.access_token), 303)


def at_state(token: str, *states: str) -> tuple[Participant, object | None]:
    """The participant, plus a redirect when they are not on this page's step. A POST holds the
    participant's row until it commits: the state checked here is the state it changes."""
    lock = request.method == "POST"
    p = load(token, lock)
    if p.state == "timed_out":
        resume_if_timed_out(p)
        db.session.commit()
        if lock:
            p = load(token, lock)  # the commit let go of the row
    if p.state not in states:
        return p, goto(p)
    p.last_seen_at = utcnow()
    return p, None


@bp.after_request
def _no_store(resp):
    # Pages reflect server state (the back button must not show a stale trial); images may be cached.
    if request.endpoint != "participant.image":
        resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.get("/")
def index():
    return message("advlegit", _("This is a research study server. Please use the link you were given."))


@bp.get("/s/<study_id>")
def entry(study_id: str):
    security.hit(*security.entry_limits())
    study = db.session.get(Study, study_id)
    if study is None:
        return message(_("Study not found"), _("This link does not lead to a study. Please check the address."), 404)
    use_language(study.design.get("language"))
    try:
        arrival = parse_arrival(request.args)
    except RecruitmentError as exc:
        return message(_("Link problem"),
                       _("This study link is incomplete or damaged (%(problem)s).", problem=exc), 400)
    simulated = security.arrival_is_simulated(study.id)  # before anything is written: a bad token changes nothing
    if arrival.preview:
        return render_template("participant/preview.html", study=study, design=study.design,
                               minutes=estimated_minutes(study.design))
    if arrival.platform_pid:
        prior = db.session.scalar(select(Participant).where(
            Participant.study_id == study.id, Participant.platform == arrival.platform,
            Participant.platform_pid == arrival.platform_pid))
        if prior is not None:
            # Closing a study stops new arrivals only: people already in it may finish.
            if prior.state in ("entered", "consented", "instructed", "in_task", "data_complete", "timed_out",
                               "code_issued"):
                # Coming back through the recruitment link issues a new secret link: an old one (from a
                # shared screen, a log, a planted link) stops working. Answers are keyed by participant.
                prior.access_token = secrets.token_urlsafe(32)
                refresh_platform_info(prior, arrival.info)
                if prior.state == "code_issued":
                    db.session.commit()
                    return redirect(url_for("participant.done", token=prior.access_token), 303)
                return goto_resumed(prior)
            if prior.state == "returned":  # they declined or withdrew: say so, and what to do on the platform
                return ended(prior, 403)
            return message(_("Already taken part"), _("Our records show you have already taken part in this study, "
                                                      "so you cannot take it again. Thank you!"), 403)
    if study.status != "open":
        return message(_("Study closed"), _("This study is not accepting participants at the moment. Thank you!"), 410)
    finished = db.session.scalar(select(func.count()).select_from(Participant).where(
        Participant.study_id == study.id, Participant.state.in_(FINISHED)))
    if finished >= study.design["target_sample_size"]:
        return message(_("Study full"), _("This study has all the participants it needs. Thank you!"), 410)
    p = Participant(id="p" + new_id(15), study_id=study.id, access_token=secrets.token_urlsafe(32),
                    platform=arrival.platform, platform_pid=arrival.platform_pid,
                    platform_json=json.dumps(arrival.info), state="entered", simulated=simulated,
                    user_agent=(request.user_agent.string or "")[:500], created_at=utcnow(), last_seen_at=utcnow())
    db.session.add(p)
    enter(p, reason=arrival.platform)
    try:
        db.session.commit()
    except IntegrityError:  # the same platform id arrived twice at once: send both to one session
        db.session.rollback()
        prior = db.session.scalar(select(Participant).where(
            Participant.study_id == study.id, Participant.platform == arrival.platform,
            Participant.platform_pid == arrival.platform_pid))
        if prior is None:
            raise
        return goto_resumed(prior)
    return redirect(url_for("participant.consent", token=p.access_token), 303)


def refresh_platform_info(p: Participant, info: dict[str, str]) -> None:
    """A returning worker's newest assignment wins: MTurk gives a new assignmentId (and maybe another
    turkSubmitTo) when a HIT is accepted again, and only that one can be submitted and paid. The ids
    seen before are kept under "previous" for the record."""
    old = p.platform_info
    current = {k: v for k, v in old.items() if k != "previous"}
    if not info or info == current:
        return
    p.platform_json = json.dumps({**info, "previous": [*old.get("previous", []), current][-20:]})


def goto_resumed(p: Participant):
    resume_if_timed_out(p)
    db.session.commit()
    return goto(p)


@bp.get("/p/<token>")
def resume(token: str):
    return goto_resumed(load(token))


def md(text: str) -> Markup:
    return Markup(markdown.markdown(text, extensions=["extra", "sane_lists"]))


@bp.route("/p/<token>/consent", methods=["GET", "POST"])
def consent(token: str):
    if request.method == "POST":
        check_participant_csrf(token)  # before anything is read or written
    p, away = at_state(token, "entered")
    if away:
        return away
    if request.method == "POST":
        choice = request.form.get("choice")
        if choice == "agree":
            transition(p, "consented", "agreed")
        elif choice == "decline":
            transition(p, "returned", "declined consent")
        else:
            abort(400, description=_("Choose “I agree” or “I do not agree”."))
        db.session.commit()
        return goto(p)
    db.session.commit()
    design = p.study.design
    return render_template("participant/consent.html", p=p, text=md(with_minutes(design["consent_md"], design)))


@bp.route("/p/<token>/instructions", methods=["GET", "POST"])
def instructions(token: str):
    if request.method == "POST":
        check_participant_csrf(token)  # before anything is read or written
    p, away = at_state(token, "consented", "instructed")
    if away:
        return away
    if p.state == "consented":
        transition(p, "instructed", "instructions shown")
    design = p.study.design
    presentation = Presentation.from_dict(design.get("presentation"))
    problem = None
    if request.method == "POST":
        # A display below the design's minimum is told why and not started: no trials are allocated, and
        # after resizing (or on another device) the same Start button works.
        problem = display_problem(presentation, request.form.get("refresh_hz"), request.form.get("viewport_width"),
                                  request.form.get("viewport_height"))
    if request.method == "POST" and not problem:
        study = p.study
        db.session.commit()  # the step above, and the row lock: the study's lock is always taken first
        allocation.prepare_start(study)  # time-outs in bulk and the pool, before the study's lock
        allocation.begin_allocation()  # SQLite: takes the one write lock
        allocation.lock_study(study.id)
        p = load(token, lock=True)  # read after the study lock: a double-submitted form already allocated
        if p.state != "instructed":
            db.session.commit()
            return goto(p)
        try:
            allocation.allocate(p)
        except allocation.AllocationError as exc:
            db.session.rollback()
            current_app.logger.error("allocation failed for %s: %s", p.id, exc)
            return message(_("Please try again later"), _("The study cannot start a new session right now. "
                                                          "Nothing was recorded; you may close this page."), 503)
        transition(p, "in_task", "allocated")
        db.session.commit()
        return goto(p)
    db.session.commit()
    text = md(with_minutes(design["instructions_md"], design))
    return render_template("participant/instructions.html", p=p, text=text,
                           design=design, task=p.study.task_type, presentation=presentation,
                           display_problem=problem), (422 if problem else 200)


@bp.get("/p/<token>/task")
def task(token: str):
    p, away = at_state(token, "in_task")
    if away:
        return away
    db.session.commit()
    return render_template("participant/task.html", p=p, task=p.study.task_type)


@bp.route("/p/<token>/debrief", methods=["GET", "POST"])
def debrief(token: str):
    if request.method == "POST":
        check_participant_csrf(token)  # before anything is read or written
    p, away = at_state(token, "data_complete")
    if away:
        return away
    questions = p.study.design["debrief_questions"]
    if request.method == "POST":
        from ..responses import count_stored

        # The code is issued only when the server itself has counted every expected response.
        if count_stored(p) != p.n_trials:
            return message(_("Not finished"), _("Some of your answers have not reached us yet."), 409)
        answers = {q: (request.form.get(f"q{i}", "") or "")[:2000] for i, q in enumerate(questions)}
        p.debrief_json = json.dumps(answers)
        p.completion_code = p.study.completion_code if p.platform == "prolific" else new_id(10).upper()
        transition(p, "code_issued", "debrief submitted")
        db.session.commit()
        return goto(p)
    db.session.commit()
    return render_template("participant/debrief.html", p=p, questions=questions)


@bp.get("/p/<token>/done")
def done(token: str):
    p, away = at_state(token, "code_issued")
    if away:
        return away
    db.session.commit()
    info = p.platform_info
    submit = None
    if p.platform == "mturk":
        try:
            submit = mturk_submit_url(info)
        except RecruitmentError:  # a row stored before the stricter check: the HIT link gives a good one
            return message(_("Link problem"), _("Your completion code is %(code)s. Please open the HIT again from "
                                                "MTurk to submit it.", code=p.completion_code), 400)
    # Prolific: the code stays on screen beside a link back; no automatic redirect, which would replace
    # the code with a browser error page if Prolific could not be reached.
    back = prolific_redirect(p.completion_code) if p.platform == "prolific" else None
    # What the study was about: only now, so it cannot colour the debrief answers (stored before the code).
    explanation = debrief_explanation(p.study.design)
    return render_template("participant/done.html", p=p, submit=submit, info=info, redirect_url=back,
                           explanation=md(explanation) if explanation.strip() else None)


@bp.route("/p/<token>/withdraw", methods=["GET", "POST"])
def withdraw(token: str):
    if request.method == "POST":
        check_participant_csrf(token)
    p, away = at_state(token, "entered", "consented", "instructed", "in_task")
    if away:
        return away
    if request.method == "GET":  # a confirmation step, so a stray tap does not end the session
        db.session.commit()
        return render_template("participant/withdraw.html", p=p)
    answers = request.form.get("answers", "keep")
    if answers not in ("keep", "delete"):
        abort(400, description=_("Choose whether your answers are kept or deleted."))
    transition(p, "returned", "withdrew")
    if answers == "keep":
        db.session.commit()
        return ended(p, 200)
    platform = p.platform
    erase(p, "participant", "withdrew and asked for their answers to be deleted")
    db.session.commit()
    text = _("You have left the study and everything you answered has been deleted. Thank you for your time.")
    return message(_("You have left the study"), f"{text} {return_on_platform(platform)}", 200)


@bp.get("/img/<token>")
def image(token: str):
    png = db.session.scalar(select(Image.png).join(StudyImage, StudyImage.image_id == Image.id)
                            .where(StudyImage.token == token))
    if png is None:
        abort(404)
    # Opaque per-study names whose bytes never change: a proxy or CDN may keep them for a year.
    resp = Response(png, mimetype="image/png")
    resp.headers["Cache-Control"] = "public, max-age=31536000, immutable"
    resp.set_etag(hashlib.sha256(png).hexdigest()[:32])
    return resp.make_conditional(request)
