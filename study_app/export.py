"""Tidy export (contract 2, docs/export.md): one row per response, streamed as CSV or JSON lines."""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import aliased

from advlegit.contracts import export as contract

from .db import db
from .maps import map_entries
from .models import Image, Participant, Response, Study, Transition, Trial
from .stimuli import set_design, set_estimand, stimulus_kind, twin_of
from .tasks import OUTCOME_COLUMNS, task_of

# The columns and their types are contract 2 (contracts/export.py); the analysis reads the same list.
BASE_COLUMNS = list(contract.names(contract.BASE))
RESPONSE_COLUMNS = list(contract.names(contract.RESPONSE))
PLATFORM_COLUMNS = list(contract.names(contract.PLATFORM))


def columns(manifest: dict[str, Any], include_platform_ids: bool = False) -> list[str]:
    models = [m["name"] for m in manifest["models"]]
    return [c.name for c in contract.export_columns(models, include_platform_ids)]


def _entries(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["id"]: e for e in manifest["sources"]} | {e["id"]: e for e in manifest["stimuli"]} | map_entries(manifest)


def _iso(t) -> str | None:
    return t.isoformat().replace("+00:00", "Z") if t is not None else None


def _image_fields(e: dict[str, Any], model_names: list[str], suffix: str = "") -> dict[str, Any]:
    norms = e.get("norms") or {}
    out = {f"norm_l2{suffix}": norms.get("l2"), f"norm_linf{suffix}": norms.get("linf"),
           f"norm_l0{suffix}": norms.get("l0")}
    for name in model_names:
        pred = e.get("predictions", {}).get(name, {})
        out[f"model_{name}_label{suffix}"] = pred.get("label")
        out[f"model_{name}_confidence{suffix}"] = pred.get("confidence")
    return out


def _ms(start, end) -> float | None:
    return round((end - start).total_seconds() * 1000, 1) if start is not None and end is not None else None


def participant_times(study: Study) -> dict[str, dict[str, float | None]]:
    """{participant id: instructions_ms, session_ms} from the server's own clock: the first showing of the
    instructions (transition to instructed), Start (the first transition to in_task), and the last response
    received. Two grouped queries for the whole study, whatever its size."""
    first = {}
    for pid, state, at in db.session.execute(
            select(Transition.participant_id, Transition.to_state, func.min(Transition.at))
            .join(Participant, Participant.id == Transition.participant_id)
            .where(Participant.study_id == study.id, Transition.to_state.in_(("instructed", "in_task")))
            .group_by(Transition.participant_id, Transition.to_state)):
        first[(pid, state)] = at
    last = dict(db.session.execute(
        select(Response.participant_id, func.max(Response.received_at))
        .join(Participant, Participant.id == Response.participant_id)
        .where(Participant.study_id == study.id).group_by(Response.participant_id)).all())
    out = {}
    for pid in {k[0] for k in first} | set(last):
        start = first.get((pid, "in_task"))
        out[pid] = {"instructions_ms": _ms(first.get((pid, "instructed")), start),
                    "session_ms": _ms(start, last.get(pid))}
    return out


def iter_rows(study: Study, include_platform_ids: bool = False, batch: int = 500) -> Iterator[dict[str, Any]]:
    sset = study.stimulus_set
    manifest = sset.manifest
    entries = _entries(manifest)
    model_names = [m["name"] for m in manifest["models"]]
    ImageB = aliased(Image)
    stmt = (
        select(Response, Trial, Participant, Image.key, ImageB.key)
        .join(Trial, Trial.id == Response.trial_id)
        .join(Participant, Participant.id == Response.participant_id)
        .join(Image, Image.id == Trial.image_id)
        .outerjoin(ImageB, ImageB.id == Trial.image_b_id)
        .where(Participant.study_id == study.id)
        .order_by(Participant.created_at, Participant.id, Response.trial_index)
        .execution_options(yield_per=batch)
    )
    task = study.task_type
    plugin = task_of(task)
    no_outcomes = dict.fromkeys(OUTCOME_COLUMNS)  # another task's outcome columns stay empty
    design_of_set = set_design(manifest)
    times = participant_times(study)
    no_times = {"instructions_ms": None, "session_ms": None}
    for r, t, p, key_a, key_b in db.session.execute(stmt):
        a = entries[key_a]
        b = entries[key_b] if key_b else {}
        is_clean_a = "defense" not in a
        row: dict[str, Any] = {
            "response_uuid": r.uuid, "study_id": study.id, "participant_id": p.id,
            "participant_state": p.state, "participant_review": p.review, "simulated": bool(p.simulated),
            **times.get(p.id, no_times),
            "task_type": task, "trial_index": r.trial_index, "trial_kind": t.kind,
            "stimulus_id": key_a, "stimulus_id_b": key_b,
            "stimulus_kind": stimulus_kind(a), "stimulus_kind_b": stimulus_kind(b) if b else None,
            "twin_stimulus_id": twin_of(a), "twin_stimulus_id_b": twin_of(b) if b else None,
            "group": a.get("group"), "source_id": a.get("source_id", a["id"] if is_clean_a else None),
            "source_index": a.get("source_index"), "true_label": a.get("true_label"),
            "target_label": a.get("target_label"), "prompt_label": t.prompt_label,
            "defense": a.get("defense"), "defense_b": b.get("defense"), "attack": a.get("attack"),
            "attack_params": json.dumps(a["attack_params"], sort_keys=True) if "attack_params" in a else None,
            "budget": a.get("budget"), "attack_success": a.get("success"),
            "stimulus_design": design_of_set,
        }
        row |= _image_fields(a, model_names)
        row |= _image_fields(b, model_names, "_b") if b else {k + "_b": None for k in _image_fields({}, model_names)}
        resp = r.response
        is_check = t.kind == "attention_check"
        # A timed-out answer is missing data: its raw response stays, the task's outcomes stay empty.
        row |= {"response": resp} | no_outcomes | ({} if r.response_timed_out else plugin.outcomes(resp, a, b))
        row |= {
            "is_attention_check": is_check,
            "attention_passed": plugin.attention_passed(t, resp) if is_check else None,
            "rt_ms": r.rt_ms, "shown_at": _iso(r.shown_at), "answered_at": _iso(r.answered_at),
            "received_at": _iso(r.received_at),
            "screen_width": r.screen_width, "screen_height": r.screen_height,
            "viewport_width": r.viewport_width, "viewport_height": r.viewport_height,
            "device_pixel_ratio": r.device_pixel_ratio,
            **presentation_fields(r),
            "manifest_sha256": sset.manifest_sha256, "stimulus_set": sset.name,
            "design_sha256": study.design_sha256,
        }
        if include_platform_ids:
            info = p.platform_info
            row |= {"platform": p.platform, "platform_pid": p.platform_pid,
                    "platform_session": info.get("SESSION_ID") or info.get("assignmentId")}
        yield row


def exposure_missed(r: Response) -> bool | None:
    """Whether the measured exposure missed the requested one by more than one frame of the measured
    refresh rate (the flag the design's timing rule is about); None when the exposure was untimed."""
    if r.exposure_ms_requested is None or r.exposure_ms_measured is None or not r.refresh_hz:
        return None
    return abs(r.exposure_ms_measured - r.exposure_ms_requested) > 1000.0 / r.refresh_hz + 0.5


def presentation_fields(r: Response) -> dict[str, Any]:
    return {"refresh_hz": r.refresh_hz, "exposure_ms_requested": r.exposure_ms_requested,
            "exposure_ms_measured": r.exposure_ms_measured, "mask_ms_measured": r.mask_ms_measured,
            "dropped_frames": r.dropped_frames, "exposure_missed": exposure_missed(r),
            "response_timed_out": r.response_timed_out, "confidence": r.confidence,
            "focus_lost": r.focus_lost, "fullscreen_exits": r.fullscreen_exits}


# A text cell starting with one of these is run as a formula by Excel, LibreOffice and Google Sheets
# (`=HYPERLINK(…)` typed into a debrief box). CSV cells get a leading apostrophe; JSONL stays raw.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return "'" + v if v.startswith(FORMULA_PREFIXES) else v
    return str(v)  # numbers stay numbers: -0.5 is a value, not a formula


def stream_csv(study: Study, include_platform_ids: bool = False) -> Iterator[str]:
    cols = columns(study.stimulus_set.manifest, include_platform_ids)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for n, row in enumerate(iter_rows(study, include_platform_ids), 1):
        w.writerow([_cell(row.get(c)) for c in cols])
        if n % 200 == 0:
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue()


def stream_jsonl(study: Study, include_platform_ids: bool = False) -> Iterator[str]:
    cols = columns(study.stimulus_set.manifest, include_platform_ids)
    for row in iter_rows(study, include_platform_ids):
        yield json.dumps({c: row.get(c) for c in cols}) + "\n"


def companion(study: Study) -> dict[str, Any]:
    """The study's design (with its [analysis] section) for the analysis package, next to the export."""
    sset = study.stimulus_set
    manifest = sset.manifest
    return {"study_id": study.id, "name": study.name, "task_type": study.task_type, "status": study.status,
            "design": study.design, "manifest_sha256": sset.manifest_sha256, "stimulus_set": sset.name,
            "design_sha256": study.design_sha256, "version": study.version,
            "parent_study_id": study.parent_study_id,
            # the set's stimulus design and the estimand it identifies (format 1: minimal, with its standard sentence)
            "stimulus_design": set_design(manifest), "estimand": set_estimand(manifest),
            "columns": columns(manifest)}


DEBRIEF_COLUMNS = ["study_id", "participant_id", "participant_state", "participant_review", "question_index",
                   "question", "answer"]


def debrief_rows(study: Study) -> list[dict[str, Any]]:
    """Free-text debrief answers, one row per participant and question (answered or not)."""
    out = []
    for p in db.session.scalars(select(Participant).where(Participant.study_id == study.id,
                                                          Participant.debrief_json.is_not(None))
                                .order_by(Participant.created_at, Participant.id)):
        try:
            answers = json.loads(p.debrief_json or "{}")
        except ValueError:
            answers = {}
        for i, (question, answer) in enumerate(answers.items()):
            out.append({"study_id": study.id, "participant_id": p.id, "participant_state": p.state,
                        "participant_review": p.review, "question_index": i, "question": question,
                        "answer": answer})
    return out


def stream_debrief_csv(study: Study) -> Iterator[str]:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(DEBRIEF_COLUMNS)
    for row in debrief_rows(study):
        w.writerow([_cell(row[c]) for c in DEBRIEF_COLUMNS])
    yield buf.getvalue()


AUDIT_COLUMNS = ["at", "actor", "action", "detail"]


def stream_audit_csv(events) -> Iterator[str]:
    """A study's audit log, oldest first."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(AUDIT_COLUMNS)
    for e in sorted(events, key=lambda e: e.id):
        w.writerow([_cell(v) for v in (e.at.strftime("%Y-%m-%dT%H:%M:%SZ"), e.actor, e.action, e.detail)])
    yield buf.getvalue()
