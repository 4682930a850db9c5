"""Measure what issue 11 asks of a config's stimulus designs.

    python -m advlegit.generation.acceptance CONFIG [--small-models]

(--small-models: the config's defenses and stimuli on quarter-width models trained 60 steps, without
[interpretability], sources not required to be classified correctly; for a busy machine.)

Generates the config as written (design and controls as configured), then the same config as
fixed_budget and as minimal without controls (the models and evaluation come from the cache), and
prints, as JSON: wall time of each run; per-defense median norms; for matched_norm the largest
relative difference of per-defense median L2 and of norms within a group; for fixed_budget whether
every group used one epsilon; for controls the largest |control - twin| difference of L2 and L-inf,
from the manifest and from the PNG files themselves.
"""
from __future__ import annotations

import dataclasses
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from advlegit.contracts.stimulus_set import verify


def summarize(folder: Path) -> dict[str, Any]:
    from .render import read_png

    m = verify(folder)
    stimuli = {s["id"]: s for s in m["stimuli"]}
    adversarial = [s for s in stimuli.values() if s["kind"] == "adversarial"]
    defenses = list(dict.fromkeys(s["defense"] for s in adversarial))
    median = {d: {k: statistics.median(s["norms"][k] for s in adversarial if s["defense"] == d)
                  for k in ("l2", "linf")} for d in defenses}
    l2 = [v["l2"] for v in median.values()]
    groups: dict[str, list[dict[str, Any]]] = {}
    for s in adversarial:
        groups.setdefault(s["group"], []).append(s)
    out: dict[str, Any] = {
        "design": m["stimulus_design"]["design"], "stimuli": len(stimuli), "adversarial": len(adversarial),
        "success_rate": {d: round(statistics.mean(s["success"] for s in adversarial if s["defense"] == d), 3)
                         for d in defenses},
        "median_norms": {d: {k: round(v, 4) for k, v in n.items()} for d, n in median.items()},
        "median_l2_max_relative_spread": round(max(l2) / min(l2) - 1, 5),
        "median_budget": {d: statistics.median(s["budget"] for s in adversarial if s["defense"] == d)
                          for d in defenses if all(s["budget"] is not None for s in adversarial)},
        "groups_one_epsilon": all(len({s["budget"] for s in g}) == 1 for g in groups.values()),
        # (a zero perturbation, e.g. a source its model already calls the target, counts as 1e-12)
        "group_l2_max_relative_spread": round(max(max(s["norms"]["l2"] for s in g)
                                                  / max(min(s["norms"]["l2"] for s in g), 1e-12) - 1
                                                  for g in groups.values()), 5),
    }
    if out["design"] == "matched_norm":
        sd = m["stimulus_design"]
        out["groups"] = {k: sd[k] for k in ("groups_total", "groups_matched", "groups_dropped")}
    controls = [s for s in stimuli.values() if s["kind"] != "adversarial"]
    if controls:
        sources = {s["id"]: read_png(folder / s["image"]).astype(np.float64) for s in m["sources"]}

        def png_norms(s: dict[str, Any]) -> tuple[float, float]:
            d = read_png(folder / s["image"]).astype(np.float64) - sources[s["source_id"]]
            return float(np.sqrt((d ** 2).sum())), float(np.abs(d).max())

        diffs = {"manifest_l2": 0.0, "manifest_linf": 0.0, "png_l2": 0.0, "png_linf": 0.0}
        for c in controls:
            t = stimuli[c["twin"]]
            diffs["manifest_l2"] = max(diffs["manifest_l2"], abs(c["norms"]["l2"] - t["norms"]["l2"]))
            diffs["manifest_linf"] = max(diffs["manifest_linf"], abs(c["norms"]["linf"] - t["norms"]["linf"]))
            (cl2, clinf), (tl2, tlinf) = png_norms(c), png_norms(t)
            diffs["png_l2"] = max(diffs["png_l2"], abs(cl2 - tl2))
            diffs["png_linf"] = max(diffs["png_linf"], abs(clinf - tlinf))
        out["controls"] = {"n": len(controls), "max_abs_norm_difference_to_twin": diffs,
                           "not_norm_matched": sum(not c["control"]["norms_matched"] for c in controls),
                           "flip_moved_pixels_total": sum(c["control"].get("moved_pixels", 0) for c in controls),
                           "success_rate": round(statistics.mean(c["success"] for c in controls), 3)}
    return out


def main(config: str, small_models: bool = False) -> None:
    import logging

    from .config import InterpretabilityConfig, load_config
    from .pipeline import generate

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    cfg = load_config(config)
    if small_models:  # the config's stimuli and defenses on quick.toml-sized models (a busy machine)
        cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, width=0.25),
                                  training=dataclasses.replace(cfg.training, steps=60, lr=0.002),
                                  interpretability=InterpretabilityConfig(),
                                  # such models cannot all classify 3 digits of every class correctly
                                  stimuli=dataclasses.replace(cfg.stimuli, require_correct=False))
    variants = {"as_configured": cfg,
                "fixed_budget": dataclasses.replace(
                    cfg, stimuli=dataclasses.replace(cfg.stimuli, design="fixed_budget")),
                "minimal_no_controls": dataclasses.replace(cfg, stimuli=dataclasses.replace(
                    cfg.stimuli, design="minimal", controls=[]))}
    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, c in variants.items():
            started, cpu = time.time(), time.process_time()
            out = generate(c, Path(tmp) / name)
            # CPU seconds as well as wall time: on a shared machine the wall time says little
            report[name] = {"seconds": round(time.time() - started, 1),
                            "cpu_seconds": round(time.process_time() - cpu, 1), **summarize(out)}
            print(json.dumps({name: report[name]}, indent=1), flush=True)
    print("ACCEPTANCE " + json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1], small_models="--small-models" in sys.argv[2:])
