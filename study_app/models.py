"""SQLAlchemy 2.0 typed models. Schema changes only through Alembic revisions in migrations/."""
from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import (
    DDL,
    BigInteger,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    event,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.sql.expression import false as sql_false
from sqlalchemy.sql.expression import true as sql_true

from advlegit.contracts.export import REVIEW_MARKS

from .db import UTCDateTime, db, utcnow

# The vocabularies live once, in contracts/export.py (the analysis reads the same ones).
REVIEWS = REVIEW_MARKS


class StimulusSet(db.Model):
    __tablename__ = "stimulus_sets"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    manifest_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    config_hash: Mapped[str] = mapped_column(String(64))
    manifest_json: Mapped[str] = mapped_column(Text)
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    images: Mapped[list[Image]] = relationship(back_populates="stimulus_set")

    @property
    def manifest(self) -> dict[str, Any]:
        return json.loads(self.manifest_json)


class Image(db.Model):
    """One PNG of a stimulus set: a clean source digit or an adversarial stimulus."""

    __tablename__ = "images"
    __table_args__ = (UniqueConstraint("stimulus_set_id", "key"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    stimulus_set_id: Mapped[int] = mapped_column(ForeignKey("stimulus_sets.id"), index=True)
    key: Mapped[str] = mapped_column(String(200))  # the manifest id, e.g. src-0003 / stim-0003-t5-normal
    kind: Mapped[str] = mapped_column(String(16))  # source | stimulus
    sha256: Mapped[str] = mapped_column(String(64))  # of the file as listed in the manifest
    png: Mapped[bytes] = mapped_column(LargeBinary)  # served bytes (text chunks stripped)
    source_key: Mapped[str] = mapped_column(String(200))
    true_label: Mapped[int] = mapped_column(Integer)
    target_label: Mapped[int | None] = mapped_column(Integer)
    group: Mapped[str | None] = mapped_column(String(200))
    defense: Mapped[str | None] = mapped_column(String(200))
    success: Mapped[bool | None] = mapped_column()
    # Stimuli only: adversarial | control_flip | control_noise (manifest v1: adversarial), and for a
    # control the manifest id of its adversarial twin. The allocator balances kinds as their own cells.
    stimulus_kind: Mapped[str | None] = mapped_column(String(16))
    twin_key: Mapped[str | None] = mapped_column(String(200))

    stimulus_set: Mapped[StimulusSet] = relationship(back_populates="images")


class Study(db.Model):
    __tablename__ = "studies"
    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    stimulus_set_id: Mapped[int] = mapped_column(ForeignKey("stimulus_sets.id"), index=True)
    task_type: Mapped[str] = mapped_column(String(16))
    design_json: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | closed
    seed: Mapped[int] = mapped_column(Integer)
    completion_code: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # sha256 of the canonical design JSON, on every exported row; a changed design is a new study
    # (`study clone`), linked here to the one it was made from.
    design_sha256: Mapped[str] = mapped_column(String(64), default="", server_default="")
    parent_study_id: Mapped[str | None] = mapped_column(ForeignKey("studies.id"))
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")

    stimulus_set: Mapped[StimulusSet] = relationship()

    @property
    def design(self) -> dict[str, Any]:
        return json.loads(self.design_json)


class StudyImage(db.Model):
    """Opaque per-study token for an image: participants never see manifest ids."""

    __tablename__ = "study_images"
    __table_args__ = (UniqueConstraint("study_id", "image_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[str] = mapped_column(ForeignKey("studies.id"), index=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"))
    token: Mapped[str] = mapped_column(String(43), unique=True)

    image: Mapped[Image] = relationship()


class AllocationLock(db.Model):
    """One row per study, locked (FOR UPDATE / BEGIN IMMEDIATE) while a participant is allocated."""

    __tablename__ = "allocation_locks"
    study_id: Mapped[str] = mapped_column(ForeignKey("studies.id"), primary_key=True)
    n_allocated: Mapped[int] = mapped_column(Integer, default=0)


class Participant(db.Model):
    __tablename__ = "participants"
    __table_args__ = (UniqueConstraint("study_id", "platform", "platform_pid"),)
    id: Mapped[str] = mapped_column(String(24), primary_key=True)  # pseudonymous, exported
    study_id: Mapped[str] = mapped_column(ForeignKey("studies.id"), index=True)
    access_token: Mapped[str] = mapped_column(String(64), unique=True)  # secret, in the URL
    platform: Mapped[str] = mapped_column(String(16))  # prolific | mturk | anonymous
    platform_pid: Mapped[str | None] = mapped_column(String(200))  # never exported by default
    platform_json: Mapped[str] = mapped_column(Text, default="{}")
    state: Mapped[str] = mapped_column(String(16), default="entered")
    review: Mapped[str] = mapped_column(String(16), default="")
    # Created by `advlegit bots` (a signed header on arrival, see security.simulated_token_for): not a person.
    simulated: Mapped[bool] = mapped_column(default=False, server_default=sql_false())
    next_trial_index: Mapped[int] = mapped_column(Integer, default=0)
    n_trials: Mapped[int] = mapped_column(Integer, default=0)
    completion_code: Mapped[str | None] = mapped_column(String(64))
    debrief_json: Mapped[str | None] = mapped_column(Text)
    user_agent: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    study: Mapped[Study] = relationship()
    transitions: Mapped[list[Transition]] = relationship(
        back_populates="participant", order_by="Transition.id"
    )
    review_events: Mapped[list[ReviewEvent]] = relationship(order_by="ReviewEvent.id")

    @property
    def platform_info(self) -> dict[str, Any]:
        return json.loads(self.platform_json or "{}")


class Transition(db.Model):
    __tablename__ = "transitions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    participant_id: Mapped[str] = mapped_column(ForeignKey("participants.id"), index=True)
    from_state: Mapped[str | None] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(200), default="")
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    participant: Mapped[Participant] = relationship(back_populates="transitions")


class ReviewEvent(db.Model):
    """One row per change of a participant's review mark: who, when, from what, why. Never updated."""

    __tablename__ = "review_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    participant_id: Mapped[str] = mapped_column(ForeignKey("participants.id"), index=True)
    previous: Mapped[str] = mapped_column(String(16), default="")
    mark: Mapped[str] = mapped_column(String(16), default="")
    by: Mapped[str] = mapped_column(String(100), default="")
    note: Mapped[str] = mapped_column(String(500), default="")
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Trial(db.Model):
    __tablename__ = "trials"
    __table_args__ = (UniqueConstraint("participant_id", "index"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    participant_id: Mapped[str] = mapped_column(ForeignKey("participants.id"), index=True)
    index: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))  # practice | main | attention_check
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"), index=True)
    image_b_id: Mapped[int | None] = mapped_column(ForeignKey("images.id"))
    prompt_label: Mapped[int | None] = mapped_column(Integer)  # rate/compare: the class asked about
    expected: Mapped[str | None] = mapped_column(String(16))  # practice/attention: the right answer

    image: Mapped[Image] = relationship(foreign_keys=[image_id])
    image_b: Mapped[Image | None] = relationship(foreign_keys=[image_b_id])


class Response(db.Model):
    """One row per answer, written when it is given; never updated."""

    __tablename__ = "responses"
    __table_args__ = (UniqueConstraint("participant_id", "trial_index"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    participant_id: Mapped[str] = mapped_column(ForeignKey("participants.id"), index=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id"), unique=True)
    trial_index: Mapped[int] = mapped_column(Integer)
    response: Mapped[str] = mapped_column(String(16))
    rt_ms: Mapped[float] = mapped_column(Float)
    shown_at: Mapped[datetime] = mapped_column(UTCDateTime)
    answered_at: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    screen_width: Mapped[int | None] = mapped_column(Integer)
    screen_height: Mapped[int | None] = mapped_column(Integer)
    viewport_width: Mapped[int | None] = mapped_column(Integer)
    viewport_height: Mapped[int | None] = mapped_column(Integer)
    device_pixel_ratio: Mapped[float | None] = mapped_column(Float)
    # What the browser measured while presenting the trial ([presentation], docs/export.md). Empty on
    # rows stored before revision 0005 and where a value does not apply (an untimed exposure, no mask).
    refresh_hz: Mapped[float | None] = mapped_column(Float)
    exposure_ms_requested: Mapped[int | None] = mapped_column(Integer)
    exposure_ms_measured: Mapped[float | None] = mapped_column(Float)
    mask_ms_measured: Mapped[float | None] = mapped_column(Float)
    dropped_frames: Mapped[int | None] = mapped_column(Integer)
    response_timed_out: Mapped[bool | None] = mapped_column()  # None: the study has no response window
    confidence: Mapped[int | None] = mapped_column(Integer)  # 1-4, when the design asks for it
    focus_lost: Mapped[bool | None] = mapped_column()
    fullscreen_exits: Mapped[int | None] = mapped_column(Integer)

    trial: Mapped[Trial] = relationship()


class AllocationLog(db.Model):
    """Enough to replay an allocation: the seed and the fill counts it saw."""

    __tablename__ = "allocation_logs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[str] = mapped_column(ForeignKey("studies.id"), index=True)
    participant_id: Mapped[str] = mapped_column(ForeignKey("participants.id"), unique=True)
    seed: Mapped[int] = mapped_column(BigInteger)
    counts_json: Mapped[str] = mapped_column(Text)
    plan_json: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class FillCount(db.Model):
    """How many counted participants (finished, or in task and not timed out; not rejected or excluded)
    were given each main-trial item of a study: kept up to date in the same transaction as every event
    that changes who counts (study_app/fills.py), so a Start reads a few rows instead of rescanning.

    `cell` and `source` describe the item for the allocator; `rank` is a fixed random order among items
    of one fill level, so a Start reads its cell's least-filled items from the (study, cell, n, rank)
    index and different cells' first items do not share source digits by construction.
    """

    __tablename__ = "fill_counts"
    study_id: Mapped[str] = mapped_column(ForeignKey("studies.id"), primary_key=True)
    item_key: Mapped[str] = mapped_column(String(500), primary_key=True)
    cell: Mapped[str] = mapped_column(String(500))
    source: Mapped[str] = mapped_column(String(200))
    rank: Mapped[int] = mapped_column(Integer)
    n: Mapped[int] = mapped_column(Integer, default=0)


Index("ix_fill_counts_least_filled", FillCount.study_id, FillCount.cell, FillCount.n, FillCount.rank)


class AdminUser(db.Model):
    """A researcher's login. Site admins (`create-admin`, the default) see and run every study and manage
    accounts; other accounts (`create-admin --researcher`) see only the studies they are members of."""

    __tablename__ = "admin_users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    password_hash: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Accounts made before roles existed could do everything: they stay site admins on upgrade.
    is_site_admin: Mapped[bool] = mapped_column(default=True, server_default=sql_true())


class StudyMember(db.Model):
    """A researcher's role in one study: owner, collaborator or viewer (study_app/roles.py)."""

    __tablename__ = "study_members"
    __table_args__ = (UniqueConstraint("study_id", "user_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[str] = mapped_column(ForeignKey("studies.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("admin_users.id"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    user: Mapped[AdminUser] = relationship()


class AuditEvent(db.Model):
    """One row per researcher action (study created, opened, closed, review marks, exports, erasures).

    Never updated and never holds a participant's data: an erasure is recorded by the participant's
    pseudonymous id only, so copies of earlier exports can be cleaned, while the platform id is gone.
    No foreign keys: the log outlives what it describes.
    """

    __tablename__ = "audit_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(100))  # admin username, "cli", or "participant"
    action: Mapped[str] = mapped_column(String(32))
    study_id: Mapped[str | None] = mapped_column(String(16), index=True)
    detail: Mapped[str] = mapped_column(String(500), default="")


class RateCounter(db.Model):
    """A fixed-window request counter (rate limits, admin login lockout), shared by every app process.

    Kept in the database so that several gunicorn workers and several app servers count together;
    `key` names the limit, the client and the window, so a row is only ever incremented. Expired
    rows are swept now and then (study_app/security/sweeping.py). On PostgreSQL the table is UNLOGGED:
    counters need no crash safety, and their commits need no fsync.
    """

    __tablename__ = "rate_counters"
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


event.listen(RateCounter.__table__, "after_create",
             DDL("ALTER TABLE rate_counters SET UNLOGGED").execute_if(dialect="postgresql"))


class StudyLockedError(ValueError):
    pass


# A study's design and stimulus set are locked once its first participant arrived: what people saw is
# what the export says they saw. A change means a new study (`advlegit study clone`).
LOCKED_FIELDS = ("design_json", "design_sha256", "stimulus_set_id", "task_type", "seed")


@event.listens_for(Study, "before_update")
def _refuse_changes_to_a_started_study(mapper, connection, study: Study) -> None:
    from sqlalchemy import func, select
    from sqlalchemy import inspect as sa_inspect

    state = sa_inspect(study)
    changed = [f for f in LOCKED_FIELDS if state.attrs[f].history.has_changes()]
    if not changed:
        return
    n = connection.execute(select(func.count()).select_from(Participant.__table__)
                           .where(Participant.__table__.c.study_id == study.id)).scalar()
    if n:
        raise StudyLockedError(f"study {study.id} has {n} participants: its {', '.join(changed)} cannot change; "
                               "make a new version with `advlegit study clone`")
