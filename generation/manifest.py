"""Write and verify the stimulus-set manifest (docs/stimulus-set.md). No torch here."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

FORMAT = "advlegit-stimulus-set"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"


class VerificationError(Exception):
    """The stimulus set on disk does not match its manifest."""

    def __init__(self, problems: list[str]):
        super().__init__(f"{len(problems)} problem(s): " + "; ".join(problems[:5]))
        self.problems = problems


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def list_files(folder: Path) -> dict[str, str]:
    """Every file except the manifest, with its sha256, by POSIX path relative to the folder."""
    return {p.relative_to(folder).as_posix(): sha256_file(p)
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != MANIFEST}


def write_manifest(folder: Path, manifest: dict[str, Any]) -> str:
    manifest = {**manifest, "format": FORMAT, "format_version": FORMAT_VERSION,
                "files": list_files(folder)}
    data = json.dumps(manifest, indent=1, sort_keys=False).encode()
    (folder / MANIFEST).write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def read_manifest(folder: Path) -> dict[str, Any]:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise VerificationError([f"{path}: missing"])
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise VerificationError([f"{path}: not valid JSON ({exc})"]) from None
    if manifest.get("format") != FORMAT:
        raise VerificationError([f"{path}: not an advlegit stimulus set (format={manifest.get('format')!r})"])
    return manifest


def verify(folder: str | Path) -> dict[str, Any]:
    """Check every listed file exists with its hash, nothing unlisted was added, and every image
    a stimulus or source names is listed with the same hash. Returns the manifest."""
    folder = Path(folder)
    if not folder.is_dir():
        raise VerificationError([f"{folder}: not a folder"])
    manifest = read_manifest(folder)
    listed: dict[str, str] = manifest.get("files", {})
    problems = []
    for rel, digest in listed.items():
        path = folder / rel
        if not path.is_file():
            problems.append(f"missing file {rel}")
        elif sha256_file(path) != digest:
            problems.append(f"altered file {rel} (sha256 differs from the manifest)")
    on_disk = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST}
    problems += [f"unlisted file {rel}" for rel in sorted(on_disk - set(listed))]
    for entry in manifest.get("sources", []) + manifest.get("stimuli", []):
        if listed.get(entry["image"]) != entry["sha256"]:
            problems.append(f"{entry['id']}: image hash disagrees with the file list")
        for method, sal in entry.get("saliency", {}).items():
            if listed.get(sal["image"]) != sal["sha256"]:
                problems.append(f"{entry['id']}: {method} saliency hash disagrees with the file list")
    if problems:
        raise VerificationError(problems)
    return manifest


def manifest_sha256(folder: str | Path) -> str:
    return sha256_file(Path(folder) / MANIFEST)
