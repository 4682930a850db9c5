"""Read and verify a stimulus set (contract 1, docs/stimulus-set.md) from its JSON and files only."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from advlegit.contracts.stimulus_set import VerificationError
from advlegit.contracts.stimulus_set import verify as verify_stimulus_set

from .maps import map_entries
from .pngsafe import NotAPNG, strip_png


class StimulusSetError(ValueError):
    """The folder is not a valid, intact stimulus set."""


@dataclass(frozen=True)
class LoadedSet:
    path: Path
    manifest: dict[str, Any]
    manifest_bytes: bytes
    manifest_sha256: str
    images: dict[str, bytes]  # manifest id (or saliency map key, see maps.py) -> stripped PNG bytes

    @property
    def name(self) -> str:
        ds = self.manifest.get("dataset", {}).get("name", "stimuli")
        return f"{ds}-{self.manifest.get('config_hash', '')[:12]}"

    @property
    def defended(self) -> list[str]:
        return [m["name"] for m in self.manifest["models"] if m.get("role", "defended") == "defended"]

    @property
    def raters(self) -> list[str]:
        return [m["name"] for m in self.manifest["models"] if m.get("role") == "rater"]


def load_stimulus_set(directory: str | Path) -> LoadedSet:
    """Load DIR/manifest.json and verify it with the one shared verifier (contracts.stimulus_set:
    files, hashes, paths inside the folder, saliency, kinds, twins); raise on any problem.
    A format-1 manifest is read as format 2 (every stimulus adversarial, design 'minimal')."""
    root = Path(directory)
    mpath = root / "manifest.json"
    if not mpath.is_file():
        raise StimulusSetError(f"{root}: no manifest.json (is this a stimulus set folder?)")
    raw = mpath.read_bytes()
    try:
        manifest = verify_stimulus_set(root)
    except VerificationError as exc:
        raise StimulusSetError("; ".join(exc.problems)) from exc
    images: dict[str, bytes] = {}
    for section, entries in (("sources", manifest["sources"]), ("stimuli", manifest["stimuli"]),
                             ("saliency", list(map_entries(manifest).values()))):
        for entry in entries:
            sid, rel = entry["id"], entry["image"]
            try:
                images[sid] = strip_png((root / rel).read_bytes())
            except NotAPNG as exc:
                raise StimulusSetError(f"{section} entry {sid}: {rel}: {exc}") from exc
    return LoadedSet(root, manifest, raw, hashlib.sha256(raw).hexdigest(), images)
