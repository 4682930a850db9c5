"""Contract 1: the stimulus-set folder (manifest.json + files). Constants, the per-stimulus fields
every consumer may rely on, and the ONE verifier both `generation` and `study_app` call.

Standard library only: analysis, study_app and generation may all import this.
See docs/stimulus-set.md.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

FORMAT = "advlegit-stimulus-set"
FORMAT_VERSION = 2
SUPPORTED_VERSIONS = (1, 2)        # 1: before stimulus designs and controls (read as design "minimal")
MANIFEST = "manifest.json"

KINDS = ("clean", "adversarial", "control_flip", "control_noise")
STIMULUS_KINDS = KINDS[1:]         # what the `stimuli` array may hold
CONTROL_KINDS = {"flip": "control_flip", "noise": "control_noise"}
DESIGNS = ("fixed_budget", "matched_norm", "minimal", "ross")

# One plain-English sentence per design: what a contrast between defenses estimates.
ESTIMANDS: dict[str, str] = {
    "fixed_budget": (
        "How often images made by the same attack at the same budget (epsilon, steps, step size) are "
        "seen as the target class, per defense, whether or not the attack fooled the model; "
        "perturbation norms may still differ between defenses at equal epsilon."),
    "matched_norm": (
        "How often images whose perturbations have the same size (the configured norm, equal within "
        "the stated tolerance across the defenses of each source/target group) are seen as the target "
        "class, per defense: the effect of the perturbation's structure at equal size."),
    "minimal": (
        "How often each model's own smallest successful perturbation is seen as the target class; "
        "confounded with perturbation size, because more robust models need larger perturbations."),
    "ross": (
        "Ross & Doshi-Velez's protocol (iterated targeted FGSM, fixed step count and step size, no "
        "epsilon-ball): how target-like each defense's images look after the same attack schedule; "
        "for direct replication, perturbation sizes are not controlled."),
}
LEGACY_DESIGN = {"design": "minimal", "estimand": ESTIMANDS["minimal"], "legacy": True,
                 "note": "format_version 1 set: until-success ladder, per-stimulus budget as recorded"}

# Fields every stimulus entry carries (format 2). Analysis reads them from the export.
STIMULUS_FIELDS = ("id", "image", "sha256", "kind", "twin", "group", "source_id", "source_index",
                   "true_label", "target_label", "defense", "design", "attack", "attack_params",
                   "budget", "seed", "norms", "success", "predictions")


class VerificationError(Exception):
    """The stimulus set on disk does not match its manifest (or its manifest is malformed)."""

    def __init__(self, problems: list[str]):
        super().__init__(f"{len(problems)} problem(s): " + "; ".join(problems[:5]))
        self.problems = problems


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """Parse DIR/manifest.json; refuse anything that is not a stimulus set of a known version."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise VerificationError([f"{path}: missing (is this a stimulus set folder?)"])
    try:
        manifest = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise VerificationError([f"{path}: not valid JSON ({exc})"]) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        got = manifest.get("format") if isinstance(manifest, dict) else None
        raise VerificationError([f"{path}: not an advlegit stimulus set (format={got!r})"])
    version = manifest.get("format_version")
    if version not in SUPPORTED_VERSIONS:
        raise VerificationError([f"{path}: stimulus-set format_version {version!r} is not supported "
                                 f"(this version reads {', '.join(map(str, SUPPORTED_VERSIONS))})"])
    return manifest


def stimulus_fields(entry: dict[str, Any], manifest: dict[str, Any] | None = None) -> dict[str, Any]:
    """The analysis-facing fields of one stimulus entry, with format-1 defaults filled in
    (kind adversarial, no twin, design 'minimal')."""
    design = (manifest or {}).get("stimulus_design", LEGACY_DESIGN)["design"]
    norms = entry.get("norms") or {}
    return {"id": entry["id"], "kind": entry.get("kind", "adversarial"), "twin": entry.get("twin"),
            "design": entry.get("design", design), "budget": entry.get("budget"),
            "group": entry.get("group"), "defense": entry.get("defense"), "success": entry.get("success"),
            "attack_params": entry.get("attack_params", {}),
            "norm_l2": norms.get("l2"), "norm_linf": norms.get("linf"), "norm_l0": norms.get("l0")}


def normalized(manifest: dict[str, Any]) -> dict[str, Any]:
    """A format-1 manifest read as format 2: every stimulus adversarial, design 'minimal' (legacy).
    Format-2 manifests are returned unchanged. The bytes on disk (and so the hash) never change."""
    if manifest.get("format_version", FORMAT_VERSION) >= 2:
        return manifest
    out = dict(manifest, stimulus_design=dict(LEGACY_DESIGN))
    out["sources"] = [{"kind": "clean", "twin": None, **e} for e in manifest.get("sources", [])]
    out["stimuli"] = [{"kind": "adversarial", "twin": None, "design": "minimal", **e}
                      for e in manifest.get("stimuli", [])]
    return out


def class_names(manifest: dict[str, Any]) -> list[str]:
    """The names participants are shown for labels 0..K-1 (CIFAR-10: airplane, ..., truck); sets
    written before the field existed hold digits, named "0".."9"."""
    return list((manifest.get("dataset") or {}).get("classes") or [str(d) for d in range(10)])


def _check_classes(dataset: Any, problems: list[str]) -> list[str] | None:
    """dataset.classes, when present: distinct, non-empty names (absent: the digits, as format 1)."""
    classes = dataset.get("classes") if isinstance(dataset, dict) else None
    if classes is None:
        return None
    if (not isinstance(classes, list) or not classes
            or not all(isinstance(c, str) and c.strip() for c in classes)):
        problems.append("dataset.classes must be a non-empty list of non-empty class names")
        return None
    if len(set(classes)) != len(classes):
        problems.append("dataset.classes names a class twice")
    return classes


def _inside(root: Path, rel: str) -> bool:
    p = (root / rel).resolve()
    return root in p.parents


def verify(folder: str | Path) -> dict[str, Any]:
    """Every problem with a stimulus set, all at once, or the manifest (normalized to format 2).

    Files: every listed file exists inside the folder with its hash; nothing unlisted was added;
    no listed path leaves the folder. Entries: ids unique; every image and saliency map a source or
    stimulus names is listed with the same hash; required fields present; every model predicted on
    every image; defenses known; kinds valid; a control's twin exists, is adversarial and has the
    same defense and group; dataset.classes (when present) distinct names that every label indexes.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise VerificationError([f"{folder}: not a folder"])
    manifest = read_manifest(folder)
    problems: list[str] = []
    for key in ("config_hash", "dataset", "models", "sources", "stimuli", "files"):
        if key not in manifest:
            problems.append(f"manifest.json: the top level has no '{key}'")
    if problems:
        raise VerificationError(problems)
    root = folder.resolve()
    listed: dict[str, str] = manifest["files"]
    for rel, digest in listed.items():
        if not _inside(root, rel):
            problems.append(f"file path {rel!r} leaves the folder")
        elif not (folder / rel).is_file():
            problems.append(f"missing file {rel}")
        elif sha256_file(folder / rel) != digest:
            problems.append(f"altered file {rel} (sha256 differs from the manifest)")
    on_disk = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST}
    problems += [f"unlisted file {rel}" for rel in sorted(on_disk - set(listed))]

    m = normalized(manifest)
    classes = _check_classes(m.get("dataset"), problems)
    models = {mod.get("name") for mod in m["models"]}
    ids: dict[str, dict[str, Any]] = {}
    for section, required in (("sources", ("id", "image", "sha256", "true_label")),
                              ("stimuli", ("id", "image", "sha256", "true_label", "group", "source_id",
                                           "target_label", "defense", "success", "kind"))):
        for n, entry in enumerate(m[section]):
            missing = [k for k in required if k not in entry]
            if missing:
                problems.append(f"{section}[{n}]: no {', '.join(repr(k) for k in missing)}")
                continue
            sid = entry["id"]
            if sid in ids:
                problems.append(f"duplicate id {sid}")
            ids[sid] = entry
            if listed.get(entry["image"]) != entry["sha256"]:
                problems.append(f"{sid}: image hash disagrees with the file list")
            for method, sal in (entry.get("saliency") or {}).items():
                if listed.get(sal.get("image")) != sal.get("sha256"):
                    problems.append(f"{sid}: {method} saliency hash disagrees with the file list")
            absent = models - set(entry.get("predictions") or {})
            if absent:
                problems.append(f"{sid}: no predictions for models {sorted(absent)}")
            if classes is not None:
                for key in ("true_label", "target_label"):
                    label = entry.get(key)
                    if label is not None and not (isinstance(label, int) and 0 <= label < len(classes)):
                        problems.append(f"{sid}: {key} {label!r} is not a class of dataset.classes "
                                        f"(0..{len(classes) - 1})")
            if section == "sources":
                continue
            if entry["defense"] not in models:
                problems.append(f"{sid}: unknown defense {entry['defense']!r}")
            if entry["kind"] not in STIMULUS_KINDS:
                problems.append(f"{sid}: kind {entry['kind']!r} is not one of {', '.join(STIMULUS_KINDS)}")
    for entry in m["stimuli"]:
        if entry.get("kind") not in CONTROL_KINDS.values() or "id" not in entry:
            if entry.get("kind") == "adversarial" and entry.get("twin") is not None:
                problems.append(f"{entry.get('id')}: an adversarial stimulus has no twin (got {entry['twin']!r})")
            continue
        twin = ids.get(entry.get("twin"))
        if twin is None or twin.get("kind") != "adversarial":
            problems.append(f"{entry['id']}: twin {entry.get('twin')!r} is not an adversarial stimulus of this set")
        elif (twin["defense"], twin["group"]) != (entry.get("defense"), entry.get("group")):
            problems.append(f"{entry['id']}: defense/group differ from its twin {twin['id']}")
    if problems:
        raise VerificationError(problems)
    return m
