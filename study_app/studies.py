"""Researcher side: import a stimulus set (idempotent) and define a study on it."""
from __future__ import annotations

import hashlib
import json
import logging
import secrets

from sqlalchemy import select

from advlegit.contracts.stimulus_set import class_names

from .db import db
from .design import Design, DesignError, check_against_set
from .manifest import LoadedSet
from .maps import KIND as MAP_KIND
from .maps import map_entries
from .models import AllocationLock, Image, StimulusSet, Study, StudyImage
from .stimuli import set_design, stimulus_kind, twin_of

log = logging.getLogger(__name__)
_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"  # no look-alikes: ids get read aloud and typed


def new_id(n: int = 10) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(n))


def import_stimulus_set(loaded: LoadedSet) -> StimulusSet:
    """Store the set's manifest and images once; importing the same manifest again returns the same row."""
    existing = db.session.scalar(select(StimulusSet).where(StimulusSet.manifest_sha256 == loaded.manifest_sha256))
    if existing is not None:
        log.info("stimulus set %s already imported (id %s)", loaded.manifest_sha256[:12], existing.id)
        return existing
    m = loaded.manifest
    sset = StimulusSet(
        manifest_sha256=loaded.manifest_sha256,
        name=loaded.name,
        config_hash=m["config_hash"],
        manifest_json=loaded.manifest_bytes.decode("utf-8"),
    )
    db.session.add(sset)
    db.session.flush()
    for s in m["sources"]:
        db.session.add(Image(stimulus_set_id=sset.id, key=s["id"], kind="source", sha256=s["sha256"],
                             png=loaded.images[s["id"]], source_key=s["id"], true_label=int(s["true_label"])))
    for s in m["stimuli"]:
        db.session.add(Image(stimulus_set_id=sset.id, key=s["id"], kind="stimulus", sha256=s["sha256"],
                             png=loaded.images[s["id"]], source_key=s["source_id"],
                             true_label=int(s["true_label"]), target_label=int(s["target_label"]),
                             group=s["group"], defense=s["defense"], success=bool(s["success"]),
                             stimulus_kind=stimulus_kind(s), twin_key=twin_of(s)))
    for key, s in map_entries(m).items():  # saliency maps (the explain task shows them)
        db.session.add(Image(stimulus_set_id=sset.id, key=key, kind=MAP_KIND, sha256=s["sha256"],
                             png=loaded.images[key], source_key=s["source_id"],
                             true_label=int(s["true_label"]), target_label=int(s["target_label"]),
                             group=s["group"], defense=s["defense"], success=bool(s["success"]),
                             stimulus_kind=stimulus_kind(s), twin_key=s["saliency_of"]))
    db.session.flush()
    log.info("imported stimulus set %s: %d sources, %d stimuli", sset.name, len(m["sources"]), len(m["stimuli"]))
    return sset


def design_hash(design: dict) -> str:
    """sha256 of the design's canonical JSON (sorted keys, no spaces): the same design, the same hash."""
    return hashlib.sha256(json.dumps(design, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def create_study(loaded: LoadedSet, design: Design, parent: Study | None = None) -> Study:
    """Check the design against the set, import the set, and create the study (caller commits)."""
    try:  # an unknown kind or design is refused before anything is written
        design_of_set = set_design(loaded.manifest)
        for s in loaded.manifest["stimuli"]:
            stimulus_kind(s)
    except ValueError as exc:
        raise DesignError(str(exc)) from exc
    check_against_set(design, loaded.defended, loaded.manifest["stimuli"], loaded.manifest["sources"],
                      set_design=design_of_set, classes=class_names(loaded.manifest))
    sset = import_stimulus_set(loaded)
    seed = design.seed if design.seed is not None else secrets.randbelow(2**31)
    design.seed = seed
    design_dict = design.to_dict()
    study = Study(
        id=new_id(),
        name=design.name,
        stimulus_set_id=sset.id,
        task_type=design.task,
        design_json=json.dumps(design_dict),
        design_sha256=design_hash(design_dict),
        parent_study_id=parent.id if parent is not None else None,
        version=parent.version + 1 if parent is not None else 1,
        status="open",
        seed=seed,
        completion_code=design.completion_code or new_id(8).upper(),
    )
    db.session.add(study)
    db.session.flush()
    db.session.add(AllocationLock(study_id=study.id, n_allocated=0))
    for image_id in db.session.scalars(select(Image.id).where(Image.stimulus_set_id == sset.id)):
        db.session.add(StudyImage(study_id=study.id, image_id=image_id, token=secrets.token_urlsafe(18)))
    db.session.flush()
    from .allocation import pool_of, seed_fill_rows  # here, not at a Start: the first Start stays quick

    seed_fill_rows(study, design, pool_of(study))
    return study
