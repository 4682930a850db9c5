"""Read and verify a stimulus set (contract 1, docs/stimulus-set.md) from its JSON and files only."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .pngsafe import NotAPNG, strip_png


class StimulusSetError(ValueError):
    """The folder is not a valid, intact stimulus set."""


@dataclass(frozen=True)
class LoadedSet:
    path: Path
    manifest: dict[str, Any]
    manifest_bytes: bytes
    manifest_sha256: str
    images: dict[str, bytes]  # manifest id -> stripped PNG bytes

    @property
    def name(self) -> str:
        ds = self.manifest.get("dataset", {}).get("name", "stimuli")
        return f"{ds}-{self.manifest.get('config_hash', '')[:12]}"

    @property
    def models(self) -> list[dict[str, Any]]:
        return list(self.manifest["models"])

    @property
    def defended(self) -> list[str]:
        return [m["name"] for m in self.manifest["models"] if m.get("role", "defended") == "defended"]

    @property
    def raters(self) -> list[str]:
        return [m["name"] for m in self.manifest["models"] if m.get("role") == "rater"]


def _sha(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _require(d: dict, key: str, where: str) -> Any:
    if key not in d:
        raise StimulusSetError(f"manifest.json: {where} has no '{key}'")
    return d[key]


def load_stimulus_set(directory: str | Path) -> LoadedSet:
    """Load DIR/manifest.json and verify every listed file and every image hash; raise on any problem."""
    root = Path(directory)
    mpath = root / "manifest.json"
    if not mpath.is_file():
        raise StimulusSetError(f"{root}: no manifest.json (is this a stimulus set folder?)")
    raw = mpath.read_bytes()
    try:
        manifest = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise StimulusSetError(f"manifest.json is not valid JSON: {exc}") from exc
    if manifest.get("format") != "advlegit-stimulus-set":
        raise StimulusSetError("manifest.json: 'format' is not 'advlegit-stimulus-set'")
    if manifest.get("format_version") != 1:
        raise StimulusSetError(f"manifest.json: unsupported format_version {manifest.get('format_version')!r}")
    for key in ("config_hash", "dataset", "models", "sources", "stimuli", "files"):
        _require(manifest, key, "the top level")

    files: dict[str, str] = manifest["files"]
    root_resolved = root.resolve()
    for rel, digest in files.items():
        p = (root / rel).resolve()
        if root_resolved not in p.parents:
            raise StimulusSetError(f"manifest.json: file path {rel!r} leaves the folder")
        if not p.is_file():
            raise StimulusSetError(f"missing file listed in manifest: {rel}")
        if _sha(p) != digest:
            raise StimulusSetError(f"altered file (sha256 mismatch): {rel}")
    listed = set(files) | {"manifest.json"}
    for p in root.rglob("*"):
        if p.is_file() and p.relative_to(root).as_posix() not in listed:
            raise StimulusSetError(f"unlisted file in stimulus set: {p.relative_to(root).as_posix()}")

    model_names = {_require(m, "name", "a model entry") for m in manifest["models"]}
    images: dict[str, bytes] = {}
    for section in ("sources", "stimuli"):
        for entry in manifest[section]:
            sid = _require(entry, "id", f"an entry in '{section}'")
            rel = _require(entry, "image", f"{section} entry {sid}")
            digest = _require(entry, "sha256", f"{section} entry {sid}")
            _require(entry, "true_label", f"{section} entry {sid}")
            p = root / rel
            if not p.is_file():
                raise StimulusSetError(f"{section} entry {sid}: image {rel} is missing")
            data = p.read_bytes()
            if hashlib.sha256(data).hexdigest() != digest:
                raise StimulusSetError(f"{section} entry {sid}: image {rel} does not match its sha256")
            if files.get(rel) != digest:
                raise StimulusSetError(f"{section} entry {sid}: image {rel} is not listed in 'files' with that hash")
            if sid in images:
                raise StimulusSetError(f"duplicate id in manifest: {sid}")
            try:
                images[sid] = strip_png(data)
            except NotAPNG as exc:
                raise StimulusSetError(f"{section} entry {sid}: {rel}: {exc}") from exc
            missing = model_names - set(entry.get("predictions", {}))
            if missing:
                raise StimulusSetError(f"{section} entry {sid}: no predictions for models {sorted(missing)}")
    for entry in manifest["stimuli"]:
        for key in ("group", "source_id", "target_label", "defense", "success"):
            _require(entry, key, f"stimulus {entry['id']}")
        if entry["defense"] not in model_names:
            raise StimulusSetError(f"stimulus {entry['id']}: unknown defense {entry['defense']!r}")
    return LoadedSet(root, manifest, raw, hashlib.sha256(raw).hexdigest(), images)
