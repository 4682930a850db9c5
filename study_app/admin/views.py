"""Researcher pages behind a login: studies, progress, participant review, open/close, export."""
from __future__ import annotations

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    redirect,
    render_template,
    request,
    session,
    stream_with_context,
    url_for,
)
from sqlalchemy import func, select

from .. import audit, erasure, review, roles, security
from ..auth import check_csrf, check_login, csrf_token, login_required, start_admin_session
from ..db import db
from ..design import estimated_minutes
from ..export import debrief_rows, stream_audit_csv, stream_csv, stream_debrief_csv, stream_jsonl
from ..models import REVIEWS, Participant, Study
from ..models import Response as ResponseRow
from ..stats import attention_failures_by_participant, presentation_summary, study_stats

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.app_context_processor
def _csrf():
    return {"csrf_token": csrf_token, "is_site_admin": roles.is_site_admin}


@bp.route("/login", methods=["GET", "POST"])
def login():
    error = None
    if request.method == "POST":
        check_csrf()
        username = (request.form.get("username") or "")[:100]
        security.count_login_attempt(username)  # counted first; 429 past the limit, before any password is checked
        if check_login(username, request.form.get("password") or ""):
            security.record_login_success(username)
            start_admin_session(username)  # a new session: nothing from before the login survives
            nxt = request.args.get("next", "")
            safe = nxt.startswith("/admin/") and "//" not in nxt and "\\" not in nxt
            return redirect(nxt if safe else url_for("admin.studies"), 303)
        session.pop("admin", None)  # a failed attempt never leaves an older login in place
        session.pop("login_at", None)
        error = "Wrong username or password."
    return render_template("admin/login.html", error=error), (401 if error else 200)


@bp.post("/logout")
@login_required
def logout():
    check_csrf()
    session.clear()
    return redirect(url_for("admin.login"), 303)


@bp.get("/")
@login_required
def studies():
    stmt = select(Study).order_by(Study.created_at.desc())
    visible = roles.visible_study_ids()
    if visible is not None:  # a researcher sees only the studies they are a member of
        stmt = stmt.where(Study.id.in_(visible))
    rows = db.session.scalars(stmt).all()
    counts = dict(db.session.execute(select(Participant.study_id, func.count()).group_by(Participant.study_id)).all())
    return render_template("admin/studies.html", studies=rows, counts=counts)


def get_study(study_id: str) -> Study:
    study = db.session.get(Study, study_id)
    if study is None:
        abort(404)
    return study


@bp.get("/studies/<study_id>")
@login_required
def study(study_id: str):
    st = get_study(study_id)
    role = roles.require(st.id, "view")
    participants = db.session.scalars(select(Participant).where(Participant.study_id == st.id)
                                      .order_by(Participant.created_at)).all()
    answered = dict(db.session.execute(select(ResponseRow.participant_id, func.count()).join(Participant)
                                       .where(Participant.study_id == st.id)
                                       .group_by(ResponseRow.participant_id)).all())
    return render_template("admin/study.html", study=st, design=st.design, stats=study_stats(st),
                           participants=participants, answered=answered, debrief=debrief_rows(st),
                           failures=attention_failures_by_participant(st), reviews=REVIEWS, labels=review.LABELS,
                           entry_url=url_for("participant.entry", study_id=st.id, _external=True),
                           minutes=estimated_minutes(st.design), role=role,
                           can=lambda action: roles.can(st.id, action),
                           audit_events=audit.events(st.id, limit=50) if roles.can(st.id, "audit") else [],
                           members=roles.members(st.id), role_names=roles.ROLES)


@bp.post("/studies/<study_id>/status")
@login_required
def set_status(study_id: str):
    check_csrf()
    st = get_study(study_id)
    roles.require(st.id, "status")
    status = request.form.get("status")
    if status not in ("open", "closed"):
        abort(400, description="status must be open or closed")
    changed = st.status != status
    st.status = status
    if changed:
        audit.record(session.get("admin", ""), f"study_{status}" if status == "closed" else "study_opened", st.id)
    db.session.commit()
    flash(f"Study {st.id} is now {status}.")
    return redirect(url_for("admin.study", study_id=st.id), 303)


def get_participant(participant_id: str, lock: bool = False) -> Participant:
    # lock: a review changes the state too, so it queues behind the participant's own step (PostgreSQL;
    # SQLite has one writer), as participant/views.load does.
    stmt = select(Participant).where(Participant.id == participant_id)
    if lock:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    p = db.session.scalar(stmt)
    if p is None:
        abort(404)
    return p


@bp.get("/participants/<participant_id>")
@login_required
def participant(participant_id: str):
    p = get_participant(participant_id)
    roles.require(p.study_id, "participants")
    answered = db.session.scalar(select(func.count()).select_from(ResponseRow)
                                 .where(ResponseRow.participant_id == p.id))
    return render_template("admin/participant.html", p=p, study=p.study, answered=answered,
                           failures=attention_failures_by_participant(p.study).get(p.id, 0),
                           shown=presentation_summary(p.id),
                           reviews=REVIEWS, labels=review.LABELS, can_erase=roles.can(p.study_id, "erase"))


@bp.post("/participants/<participant_id>/review")
@login_required
def set_review(participant_id: str):
    check_csrf()
    p = get_participant(participant_id, lock=True)
    roles.require(p.study_id, "review")
    mark = request.form.get("review")  # "" clears the mark; a missing field is an error, not a clear
    note = request.form.get("note") or ""
    if mark is None or mark not in REVIEWS:
        abort(400, description=f"review must be one of: {', '.join(review.LABELS[m] for m in REVIEWS)}")
    back = url_for("admin.study", study_id=p.study_id, _anchor=f"p-{p.id}")
    if request.form.get("from") == "participant":
        back = url_for("admin.participant", participant_id=p.id)
    if mark in review.NEEDS_CONFIRMATION and mark != p.review and request.form.get("confirm") != "yes":
        # Nothing changes until the researcher confirms on this page.
        return render_template("admin/confirm_review.html", p=p, mark=mark, note=note, back=back,
                               label=review.LABELS[mark], labels=review.LABELS)
    previous = p.review
    try:
        changed = review.set_mark(p, mark, session.get("admin", ""), note)
    except review.ReviewError as exc:
        db.session.rollback()
        abort(400, description=str(exc))
    if changed:
        audit.record(session.get("admin", ""), "review_mark", p.study_id,
                     f"participant {p.id}: {review.LABELS[previous]} -> {review.LABELS[mark]}")
    db.session.commit()
    flash(f"Participant {p.id}: {review.LABELS[mark]}." if changed
          else f"Participant {p.id} was already marked {review.LABELS[mark]}; nothing changed.")
    return redirect(back, 303)


@bp.get("/studies/<study_id>/export.<fmt>")
@login_required
def export(study_id: str, fmt: str):
    st = get_study(study_id)
    with_ids = request.args.get("platform_ids") == "1"
    roles.require(st.id, "export_ids" if with_ids else "export")
    if fmt not in ("csv", "jsonl"):
        abort(404)
    stream, mime = (stream_csv, "text/csv") if fmt == "csv" else (stream_jsonl, "application/x-ndjson")
    audit.record(session.get("admin", ""), "export", st.id, f"{fmt}{' with platform ids' if with_ids else ''}")
    db.session.commit()

    def body():
        # Runs after the view returned: reload the study in the session that is current then.
        yield from stream(db.session.get(Study, study_id), with_ids)

    resp = Response(stream_with_context(body()), mimetype=mime)
    resp.headers["Content-Disposition"] = f'attachment; filename="{st.id}-responses.{fmt}"'
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.get("/studies/<study_id>/audit.csv")
@login_required
def audit_export(study_id: str):
    st = get_study(study_id)
    roles.require(st.id, "audit")
    resp = Response("".join(stream_audit_csv(audit.events(st.id))), mimetype="text/csv")
    resp.headers["Content-Disposition"] = f'attachment; filename="{st.id}-audit.csv"'
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.route("/participants/<participant_id>/erase", methods=["POST"])
@login_required
def erase_participant(participant_id: str):
    """Erase everything of one participant, on their request. A confirmation step first: nothing is
    deleted until the researcher has typed the participant id."""
    check_csrf()
    p = get_participant(participant_id, lock=True)
    roles.require(p.study_id, "erase")
    reason = (request.form.get("reason") or "").strip()[:200]
    if request.form.get("confirm_id") != p.id:
        if request.form.get("confirm_id") is not None:
            flash("The id you typed does not match; nothing was erased.")
        db.session.rollback()
        return render_template("admin/confirm_erase.html", p=p, reason=reason)
    done = erasure.erase(p, session.get("admin", ""), reason or "on request")
    db.session.commit()
    flash(f"Participant {done.participant_id} erased: {done.responses} answers and {done.trials} trials deleted.")
    return redirect(url_for("admin.study", study_id=done.study_id), 303)


@bp.get("/studies/<study_id>/debrief.csv")
@login_required
def debrief_export(study_id: str):
    st = get_study(study_id)
    roles.require(st.id, "view")
    resp = Response("".join(stream_debrief_csv(st)), mimetype="text/csv")
    resp.headers["Content-Disposition"] = f'attachment; filename="{st.id}-debrief.csv"'
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.post("/studies/<study_id>/members")
@login_required
def set_member(study_id: str):
    """Owners add, change and remove the study's members (by account name)."""
    check_csrf()
    st = get_study(study_id)
    roles.require(st.id, "members")
    try:
        change = roles.set_member(st.id, request.form.get("username") or "", request.form.get("role") or "")
    except roles.RoleError as exc:
        db.session.rollback()
        abort(400, description=str(exc))
    audit.record(session.get("admin", ""), "member", st.id, change)
    db.session.commit()
    flash(f"Members: {change}.")
    return redirect(url_for("admin.study", study_id=st.id, _anchor="members"), 303)


@bp.route("/accounts", methods=["GET", "POST"])
@login_required
def accounts():
    """Site admins create researcher accounts (or more site admins) here, as `create-admin` does."""
    if not roles.is_site_admin():
        abort(403, description="Only site admins manage accounts.")
    if request.method == "POST":
        check_csrf()
        from ..accounts import AccountError, save_account

        try:
            created = save_account(request.form.get("username") or "", request.form.get("password") or "",
                                   site_admin=request.form.get("site_admin") == "yes")
        except AccountError as exc:
            db.session.rollback()
            abort(400, description=str(exc))
        audit.record(session.get("admin", ""), "account", None, created)
        db.session.commit()
        flash(f"Account {created}.")
        return redirect(url_for("admin.accounts"), 303)
    users = db.session.scalars(select(roles.AdminUser).order_by(roles.AdminUser.username)).all()
    return render_template("admin/accounts.html", users=users)
