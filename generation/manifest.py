"""Write the stimulus-set manifest (docs/stimulus-set.md). No torch here.

Reading and verifying is contracts.stimulus_set's job (one verifier for generation and study_app);
the names are re-exported so `advlegit.generation.manifest.verify` keeps working.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from advlegit.contracts.stimulus_set import (
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    VerificationError,
    read_manifest,
    sha256_file,
    verify,
)

__all__ = ["FORMAT", "FORMAT_VERSION", "MANIFEST", "VerificationError", "list_files", "manifest_sha256",
           "read_manifest", "sha256_file", "verify", "write_manifest"]


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


def manifest_sha256(folder: str | Path) -> str:
    return sha256_file(Path(folder) / MANIFEST)
