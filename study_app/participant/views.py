"""Participant pages: entry from a recruitment link, consent, instructions, task shell, debrief, completion."""
from __future__ import annotations

import hashlib
import json
import secrets

import markdown
from flask import Blueprint, Response, abort, current_app, redirect, render_template, request, url_for
from markupsafe import Markup
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from .. import allocation, security
from ..security import check_participant_csrf
from ..db import db, utcnow
from ..models import Image, Participant, Study, StudyImage
from ..recruitment import RecruitmentError, mturk_submit_url, parse_arrival, prolific_redirect
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


def load(token: str) -> Participant:
    p = db.session.scalar(select(Participant).where(Participant.access_token == token))
    if p is None:
        abort(404)
    return p


def goto(p: Participant):
    endpoint = PAGE_FOR_STATE.get(p.state)
    if endpoint is None:
        return message("Thank you", "This session has ended. You can close this page.", 410)
    return redirect(url_for(endpoint, token=p.access_token), 303)


def at_state(token: str, *states: str) -> tuple[Participant, object | None]:
    """The participant, plus a redirect when they are not on this page's step."""
    p = load(token)
    if p.state == "timed_out":
        resume_if_timed_out(p)
        db.session.commit()
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
    return message("advlegit", "This is a research study server. Please use the link you were given.")


@bp.get("/s/<study_id>")
def entry(study_id: str):
    security.hit(*security.entry_limits())
    study = db.session.get(Study, study_id)
    if study is None:
        return message("Study not found", "This link does not lead to a study. Please check the address.", 404)
    try:
        arrival = parse_arrival(request.args, tuple(current_app.config["MTURK_SUBMIT_HOSTS"]))
    except RecruitmentError as exc:
        return message("Link problem", f"This study link is incomplete or damaged ({exc}).", 400)
    simulated = security.arrival_is_simulated(study.id)  # before anything is written: a bad token changes nothing
    if arrival.preview:
        return render_template("participant/preview.html", study=study, design=study.design)
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
            return message("Already taken part", "Our records show you have already taken part in this study, "
                           "so you cannot take it again. Thank you!", 403)
    if study.status != "open":
        return message("Study closed", "This study is not accepting participants at the moment. Thank you!", 410)
    finished = db.session.scalar(select(func.count()).select_from(Participant).where(
        Participant.study_id == study.id, Participant.state.in_(FINISHED)))
    if finished >= study.design["target_sample_size"]:
        return message("Study full", "This study has all the participants it needs. Thank you!", 410)
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
            abort(400, description="Choose “I agree” or “I do not agree”.")
        db.session.commit()
        return goto(p)
    db.session.commit()
    return render_template("participant/consent.html", p=p, text=md(p.study.design["consent_md"]))


@bp.route("/p/<token>/instructions", methods=["GET", "POST"])
def instructions(token: str):
    if request.method == "POST":
        check_participant_csrf(token)  # before anything is read or written
    p, away = at_state(token, "consented", "instructed")
    if away:
        return away
    if p.state == "consented":
        transition(p, "instructed", "instructions shown")
    if request.method == "POST":
        allocation.begin_allocation()  # commits the line above, then takes the study's write lock
        db.session.refresh(p)
        if p.state != "instructed":  # a double-submitted form already allocated
            db.session.commit()
            return goto(p)
        try:
            allocation.allocate(p)
        except allocation.AllocationError as exc:
            db.session.rollback()
            current_app.logger.error("allocation failed for %s: %s", p.id, exc)
            return message("Please try again later", "The study cannot start a new session right now. "
                           "Nothing was recorded; you may close this page.", 503)
        transition(p, "in_task", "allocated")
        db.session.commit()
        return goto(p)
    db.session.commit()
    design = p.study.design
    return render_template("participant/instructions.html", p=p, text=md(design["instructions_md"]),
                           design=design, task=p.study.task_type)


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
            return message("Not finished", "Some of your answers have not reached us yet.", 409)
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
            submit = mturk_submit_url(info, tuple(current_app.config["MTURK_SUBMIT_HOSTS"]))
        except RecruitmentError:  # a row stored before the stricter check: the HIT link gives a good one
            return message("Link problem", f"Your completion code is {p.completion_code}. Please open the HIT "
                           "again from MTurk to submit it.", 400)
    # Prolific: a page that shows the code and then navigates on (meta refresh, no script needed), so
    # a failed redirect still leaves the person with their code.
    back = prolific_redirect(p.completion_code) if p.platform == "prolific" else None
    return render_template("participant/done.html", p=p, submit=submit, info=info, redirect_url=back)


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
    transition(p, "returned", "withdrew")
    db.session.commit()
    return message("You have left the study", "Thank you for your time. You can close this page.")


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
