"""Numbers for the admin dashboard: fill per cell, participants by state, completion, durations."""
from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import aliased

from .db import db
from .models import Image, Participant, Response, Study, Transition, Trial
from .states import FINISHED
from .tasks import attention_passed


@dataclass
class StudyStats:
    by_state: dict[str, int] = field(default_factory=dict)
    cells: dict[str, int] = field(default_factory=dict)  # "defense" (or "a vs b", + " (kind)") -> answered main trials
    n_participants: int = 0
    n_simulated: int = 0  # created by `advlegit bots`
    n_completed: int = 0
    completion_rate: float | None = None
    median_minutes: float | None = None
    attention_failures: int = 0
    participants_failing_attention: int = 0


def study_stats(study: Study) -> StudyStats:
    s = StudyStats()
    s.by_state = dict(db.session.execute(select(Participant.state, func.count()).where(
        Participant.study_id == study.id).group_by(Participant.state)).all())
    s.n_participants = sum(s.by_state.values())
    s.n_completed = sum(s.by_state.get(k, 0) for k in FINISHED)
    s.n_simulated = db.session.scalar(select(func.count()).select_from(Participant).where(
        Participant.study_id == study.id, Participant.simulated.is_(True))) or 0
    started = s.n_participants - s.by_state.get("entered", 0)
    s.completion_rate = s.n_completed / started if started else None

    ImageB = aliased(Image)
    rows = db.session.execute(
        select(Image.defense, ImageB.defense, Image.stimulus_kind, func.count()).select_from(Response)
        .join(Trial, Trial.id == Response.trial_id).join(Participant, Participant.id == Response.participant_id)
        .join(Image, Image.id == Trial.image_id).outerjoin(ImageB, ImageB.id == Trial.image_b_id)
        .where(Participant.study_id == study.id, Trial.kind == "main")
        .group_by(Image.defense, ImageB.defense, Image.stimulus_kind)).all()
    for da, db_, kind, n in rows:
        key = " vs ".join(sorted([da, db_])) if db_ else da
        if kind and kind != "adversarial":  # controls are their own cells
            key += f" ({kind})"
        s.cells[key] = s.cells.get(key, 0) + n
    s.cells = dict(sorted(s.cells.items()))

    t_entered = aliased(Transition)
    t_done = aliased(Transition)
    durations = db.session.execute(
        select(t_entered.at, t_done.at).join(t_done, t_done.participant_id == t_entered.participant_id)
        .join(Participant, Participant.id == t_entered.participant_id)
        .where(Participant.study_id == study.id, t_entered.to_state == "entered", t_done.to_state == "data_complete")
    ).all()
    if durations:
        s.median_minutes = statistics.median((b - a).total_seconds() / 60 for a, b in durations)

    checks = db.session.execute(
        select(Trial, Response.response, Participant.id).join(Response, Response.trial_id == Trial.id)
        .join(Participant, Participant.id == Trial.participant_id)
        .where(Participant.study_id == study.id, Trial.kind == "attention_check")).all()
    failing = set()
    for trial, resp, pid in checks:
        if not attention_passed(study.task_type, trial, resp):
            s.attention_failures += 1
            failing.add(pid)
    s.participants_failing_attention = len(failing)
    return s


def attention_failures_by_participant(study: Study) -> dict[str, int]:
    out: dict[str, int] = {}
    rows = db.session.execute(
        select(Trial, Response.response).join(Response, Response.trial_id == Trial.id)
        .join(Participant, Participant.id == Trial.participant_id)
        .where(Participant.study_id == study.id, Trial.kind == "attention_check")).all()
    for trial, resp in rows:
        if not attention_passed(study.task_type, trial, resp):
            out[trial.participant_id] = out.get(trial.participant_id, 0) + 1
    return out


@dataclass
class PresentationSummary:
    """One participant's answers under the study's [presentation], for the admin page (the same
    numbers are per-row columns of the export, where the analysis applies its exclusion rules)."""

    refresh_hz: tuple[float, float] | None = None  # lowest and highest measured
    timed: int = 0  # answers with a timed exposure
    exposure_missed: int = 0  # of those, off by more than one frame
    dropped_frames: int = 0
    timed_out: int = 0
    focus_lost: int = 0
    fullscreen_exits: int = 0


def presentation_summary(participant_id: str) -> PresentationSummary:
    from .export import exposure_missed

    rows = db.session.scalars(select(Response).where(Response.participant_id == participant_id)).all()
    s = PresentationSummary()
    hz = [r.refresh_hz for r in rows if r.refresh_hz]
    s.refresh_hz = (min(hz), max(hz)) if hz else None
    for r in rows:
        s.timed += r.exposure_ms_requested is not None
        s.exposure_missed += bool(exposure_missed(r))
        s.dropped_frames += r.dropped_frames or 0
        s.timed_out += bool(r.response_timed_out)
        s.focus_lost += bool(r.focus_lost)
        s.fullscreen_exits += r.fullscreen_exits or 0
    return s
