"""Participant JSON API: the trial list, one POST per response, the server's view of progress.

Only the participant's own secret token addresses anything, so no one can reach another's trials.
"""
from __future__ import annotations

from dataclasses import asdict

from flask import Blueprint, current_app, jsonify, request, url_for
from sqlalchemy import select

from advlegit.contracts.stimulus_set import class_names

from .. import security
from ..answers import ResponseError, store
from ..db import db
from ..i18n import use_language
from ..memo import OncePerProcess
from ..models import Participant, StimulusSet, StudyImage, Trial
from ..responses import count_stored, study_presentation
from ..security import check_participant_csrf, participant_csrf
from ..tasks import feedback, label_name, prompt, task_of

bp = Blueprint("api", __name__, url_prefix="/api")


def error(status: int, code: str, message: str):
    return jsonify({"error": code, "message": message}), status


def load(token: str) -> Participant | None:
    return db.session.scalar(select(Participant).where(Participant.access_token == token))


def progress(p: Participant) -> dict:
    return {"state": p.state, "next_index": p.next_trial_index, "n_trials": p.n_trials,
            "stored": count_stored(p), "next_url": url_for("participant.resume", token=p.access_token)}


@bp.get("/p/<token>/state")
def state(token: str):
    p = load(token)
    if p is None:
        return error(404, "unknown_participant", "unknown participant link")
    return jsonify(progress(p))


_CLASSES: OncePerProcess[list[str]] = OncePerProcess(keep=64)


def set_classes(stimulus_set_id: int) -> list[str]:
    """A stimulus set's class names, read from its manifest once per process (memo.py): a set never
    changes after import, and its manifest can be tens of MB."""
    def build() -> list[str]:
        return class_names(db.session.get(StimulusSet, stimulus_set_id).manifest)
    return _CLASSES.get((current_app.config["SQLALCHEMY_DATABASE_URI"], stimulus_set_id), build)


@bp.get("/p/<token>/trials")
def trials(token: str):
    p = load(token)
    if p is None:
        return error(404, "unknown_participant", "unknown participant link")
    if p.state not in ("in_task", "data_complete", "code_issued", "timed_out"):
        return error(409, "not_in_task", f"no trials in state '{p.state}'")
    use_language(p.study.design.get("language"))  # prompts, feedback and keys in the study's language
    task = p.study.task_type
    plugin = task_of(task)
    classes = set_classes(p.study.stimulus_set_id)
    rows = db.session.scalars(select(Trial).where(Trial.participant_id == p.id).order_by(Trial.index)).all()
    shown = {i for t in rows for i in (t.image_id, t.image_b_id) if i}  # this person's images, not the set's
    tokens = dict(db.session.execute(select(StudyImage.image_id, StudyImage.token)
                                     .where(StudyImage.study_id == p.study_id, StudyImage.image_id.in_(shown))).all())

    def img(image_id):
        return url_for("participant.image", token=tokens[image_id]) if image_id else None

    out = []
    for t in rows:
        practice = t.kind == "practice"
        out.append({
            "index": t.index,
            "practice": practice,  # attention checks are indistinguishable from main trials here
            "image": img(t.image_id),
            "image_b": img(t.image_b_id),
            "prompt": prompt(task, t, classes),
            "label": label_name(classes, t.prompt_label),
            "expected": t.expected if practice else None,
            "feedback": feedback(task, t, classes),
            "classes": classes,  # the answer buttons' names (identify: "cat" beside key 3)
            **plugin.trial_text(t, classes),  # rate: the scale's ends, which name the class
        })
    return jsonify({**progress(p), "task": task, "keys": plugin.keys(), "trials": out,
                    "presentation": study_presentation(p.study_id).to_dict(),
                    "csrf": participant_csrf(p.access_token),
                    "debrief_url": url_for("participant.debrief", token=p.access_token)})


@bp.post("/p/<token>/responses")
def post_response(token: str):
    """One answer: 201 stored, 200 stored before (a retry of the same UUID), 4xx refused with nothing kept."""
    check_participant_csrf(token)  # the X-CSRF-Token header task.js sends; before anything is counted or read
    result = store(token, json_body(), security.answer_limits(token))
    if isinstance(result, ResponseError):
        return error(result.status, result.code, result.message)
    return jsonify({"saved": True, **asdict(result)}), 200 if result.duplicate else 201


def json_body():
    """The request's JSON, or None when it is not JSON. Deeply nested arrays (`[[[[…]]]]`, a few KB)
    make the parser raise RecursionError rather than ValueError: that is bad input too, not a 500."""
    try:
        return request.get_json(silent=True)
    except RecursionError:
        return None


@bp.errorhandler(413)
def too_large(_exc):
    return error(413, "too_large", "request body too large")


@bp.after_request
def no_store(resp):
    resp.headers["Cache-Control"] = "no-store"
    return resp

