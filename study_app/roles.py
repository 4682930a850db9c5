"""Who may do what in a study. Site admins may do everything everywhere; other researchers only what
their role in a study allows. Roles are ordered: each can do what the ones before it can.

- viewer: the study page (progress, counts, debrief answers) and the export without platform ids;
- collaborator: also participants' pages (platform ids), review marks, open/close, exports with ids;
- owner: also members, erasure and the audit log.
"""
from __future__ import annotations

from flask import abort, session
from sqlalchemy import select

from .db import db
from .models import AdminUser, StudyMember

ROLES = ("viewer", "collaborator", "owner")
NEEDS = {"view": "viewer", "export": "viewer", "participants": "collaborator", "export_ids": "collaborator",
         "review": "collaborator", "status": "collaborator", "erase": "owner", "audit": "owner",
         "members": "owner"}
ENV_ADMIN = "admin"  # the account ADVLEGIT_ADMIN_PASSWORD_HASH logs in: a site admin


class RoleError(ValueError):
    pass


def user(username: str | None = None) -> AdminUser | None:
    username = username if username is not None else session.get("admin", "")
    return db.session.scalar(select(AdminUser).where(AdminUser.username == username)) if username else None


def is_site_admin(username: str | None = None) -> bool:
    username = username if username is not None else session.get("admin", "")
    u = user(username)
    return u.is_site_admin if u is not None else username == ENV_ADMIN


def role_in(study_id: str, username: str | None = None) -> str | None:
    """The user's role in the study (site admins: owner); None when they are not a member."""
    username = username if username is not None else session.get("admin", "")
    if is_site_admin(username):
        return "owner"
    return db.session.scalar(select(StudyMember.role).join(AdminUser, AdminUser.id == StudyMember.user_id)
                             .where(StudyMember.study_id == study_id, AdminUser.username == username))


def can(study_id: str, action: str, username: str | None = None) -> bool:
    role = role_in(study_id, username)
    return role is not None and ROLES.index(role) >= ROLES.index(NEEDS[action])


def require(study_id: str, action: str) -> str:
    """The current user's role, or abort: 404 for a study they are not a member of (its existence is not
    theirs to know), 403 for an action their role does not allow."""
    role = role_in(study_id)
    if role is None:
        abort(404)
    if ROLES.index(role) < ROLES.index(NEEDS[action]):
        abort(403, description=f"Your role in this study ({role}) does not allow this; "
                               f"it needs {NEEDS[action]} or above. Ask the study's owner.")
    return role


def visible_study_ids(username: str | None = None) -> set[str] | None:
    """The studies a user may see; None means all (a site admin)."""
    username = username if username is not None else session.get("admin", "")
    if is_site_admin(username):
        return None
    return set(db.session.scalars(select(StudyMember.study_id).join(AdminUser, AdminUser.id == StudyMember.user_id)
                                  .where(AdminUser.username == username)))


def set_member(study_id: str, username: str, role: str) -> str:
    """Add, change or (role "none") remove a member, in the caller's transaction; returns what changed."""
    if role not in (*ROLES, "none"):
        raise RoleError(f"role must be one of: {', '.join(ROLES)}, none")
    u = user(username.strip())
    if u is None:
        raise RoleError(f"no account {username!r}: create it first (advlegit create-admin --researcher)")
    row = db.session.scalar(select(StudyMember).where(StudyMember.study_id == study_id,
                                                      StudyMember.user_id == u.id).with_for_update())
    if role == "none":
        if row is None:
            return f"{u.username} was not a member"
        if row.role == "owner" and _owners(study_id) == 1:
            raise RoleError(f"{u.username} is the study's only owner; make someone else owner first")
        db.session.delete(row)
        return f"{u.username} removed (was {row.role})"
    if row is None:
        db.session.add(StudyMember(study_id=study_id, user_id=u.id, role=role))
        return f"{u.username} added as {role}"
    if row.role == role:
        return f"{u.username} already {role}"
    if row.role == "owner" and _owners(study_id) == 1:
        raise RoleError(f"{u.username} is the study's only owner; make someone else owner first")
    old, row.role = row.role, role
    return f"{u.username}: {old} -> {role}"


def _owners(study_id: str) -> int:
    return len(db.session.scalars(select(StudyMember.id).where(StudyMember.study_id == study_id,
                                                             StudyMember.role == "owner")).all())


def members(study_id: str) -> list[StudyMember]:
    return list(db.session.scalars(select(StudyMember).where(StudyMember.study_id == study_id)
                                   .order_by(StudyMember.created_at, StudyMember.id)))
