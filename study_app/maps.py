"""Saliency maps of a stimulus set as images the app can serve (the `explain` task shows them).

`advlegit generate` with `[interpretability] export_saliency = [...]` writes, per stimulus and method,
`saliency/<method>/<stimulus id>.png` and lists it under the stimulus' `saliency` (docs/stimulus-set.md).
The app stores each map as an Image row of kind "saliency" keyed `<stimulus id>@<method>`, so trials,
tokens, bots and the export treat it like any other image. A map's entry is its stimulus' entry (same
defense, group, labels, predictions) plus `saliency_of` and `saliency_method`: the map is that model's
explanation of that image.
"""
from __future__ import annotations

from typing import Any

KIND = "saliency"  # Image.kind of a map


def map_key(stimulus_id: str, method: str) -> str:
    return f"{stimulus_id}@{method}"


def map_entries(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{map key: entry} for every saliency map the manifest lists."""
    out = {}
    for e in manifest.get("stimuli", []):
        for method, sal in (e.get("saliency") or {}).items():
            key = map_key(e["id"], method)
            out[key] = {k: v for k, v in e.items() if k != "saliency"} | {
                "id": key, "image": sal["image"], "sha256": sal["sha256"],
                "saliency_of": e["id"], "saliency_method": method}
    return out


def methods_of(stimuli: list[dict[str, Any]]) -> list[str]:
    """The saliency methods every one of these stimuli has a map for, sorted."""
    common: set[str] | None = None
    for e in stimuli:
        have = set(e.get("saliency") or {})
        common = have if common is None else common & have
    return sorted(common or ())
