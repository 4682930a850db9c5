"""`advlegit prereg DESIGN.toml -o plan.md`: the pre-registered analysis plan as a document with its hash.

The plan is built from the study design (task, defenses, `[analysis]`), normalised through
AnalysisConfig so that a value spelled out and the same value left to its default hash alike. The
document carries the plan as a JSON block and its SHA-256; `advlegit analyze --plan plan.md` checks the
hash, names it in the report and lists every deviation of the analysis actually run. Without `--plan`,
the analysis rebuilds the plan from the design in the export's companion `.study.json` (same hash when
the design is the same).
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from advlegit.analysis import designs
from advlegit.analysis.config import AnalysisConfig, option_names, read_toml, section_values
from advlegit.analysis.errors import AnalysisError
from advlegit.contracts.exclusion_rules import SHORTHANDS, describe

FORMAT = "advlegit-analysis-plan/1"
COMPUTATIONAL = {"n_boot", "seed", "r_crosscheck", "mixed_model", "mixed_model_max_participants"}
_BLOCK = re.compile(r"```json advlegit-plan\n(.*?)\n```", re.S)
_HASH = re.compile(r"Plan SHA-256: `([0-9a-f]{64})`")


def _jsonable(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


def normalise(name: str, task: str, defenses: list[str], analysis: dict, stimulus_design: str = "") -> dict:
    from advlegit.analysis.tasks import TASKS

    if task not in TASKS:
        raise AnalysisError(f"study.task must be one of {', '.join(TASKS)}, got {task!r}")
    values = section_values(dict(analysis or {}), "[analysis]")
    cfg = AnalysisConfig(**values)
    if not cfg.reference_defense and defenses:
        cfg.reference_defense = defenses[0]  # what the study app does with an empty reference
    options = {k: _jsonable(v) for k, v in cfg.values().items()}
    if options.get("exclusions") is None:  # no list: the plan (and its hash) as before lists existed
        options.pop("exclusions", None)
    else:
        options["exclusions"] = [dict(r) for r in options["exclusions"]]
    options["primary_outcome"] = cfg.outcome_for(task)
    return {
        "format": FORMAT, "study": {"name": name, "task": task, "defenses": list(defenses)},
        "stimulus_design": stimulus_design or "",
        "options": options,
        "primary": {
            "task": task, "outcome": cfg.outcome_for(task),
            "contrasts": cfg.primary_family or list(cfg.primary_contrast),
            "reference_defense": cfg.reference_defense or "normal if present, else the first defense",
            "stimuli": "adversarial only (control stimuli analysed separately)",
            "covariates": ("none (matched_norm fixes the perturbation norm)" if designs.norm_fixed(stimulus_design)
                           else "norm_l2 (the design does not fix the perturbation norm)"),
            "clusters": "participant and (source, target) group (else image)",
            "correction": "Holm within the family" if cfg.primary_family else "none (one contrast)",
            "alpha": cfg.alpha,
        },
    }


def plan_from_toml(path: Path) -> dict:
    doc = read_toml(path, "design file")
    study = doc.get("study") or {}
    stim = study.get("stimulus_design") or (doc.get("stimuli") or {}).get("design") or ""
    return normalise(str(study.get("name", "")), str(study.get("task", "")), list(study.get("defenses") or []),
                     doc.get("analysis") or {}, str(stim))


def plan_from_companion(doc: dict) -> dict | None:
    design = doc.get("design") if isinstance(doc, dict) else None
    if not isinstance(design, dict) or "task" not in design:
        return None
    stim = doc.get("stimulus_design") or design.get("stimulus_design") or ""
    if isinstance(stim, dict):
        stim = stim.get("name") or stim.get("design") or ""
    section = design.get("analysis") or {}
    analysis = {k: v for k, v in section.items() if k in option_names() or k == "attention_min_pass_rate"}
    set_in = section.get("set_in_design")
    if analysis.get("exclusions") is not None and isinstance(set_in, list):
        # the app stores every option: a shorthand the design did not set is no rival to the list
        analysis = {k: v for k, v in analysis.items() if k not in SHORTHANDS or k in set_in}
    return normalise(str(design.get("name", "")), str(design["task"]), list(design.get("defenses") or []),
                     analysis, str(stim))


def _rules(options: dict) -> list[dict]:
    """The plan's exclusion rules in order (a plan without a list: the default one)."""
    return list(AnalysisConfig(attention_threshold=options["attention_threshold"], rt_floor_ms=options["rt_floor_ms"],
                               exclusions=options.get("exclusions")).exclusion_rules())


def _first_upper(text: str) -> str:
    return text[:1].upper() + text[1:]


def plan_hash(plan: dict) -> str:
    return hashlib.sha256(json.dumps(plan, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def render(plan: dict) -> str:
    h = plan_hash(plan)
    p, o, s = plan["primary"], plan["options"], plan["study"]
    contrasts = p["contrasts"]
    fam = {"each_vs_reference": "each defense against the reference defense",
           "all_pairs": "every pair of defenses"}.get(contrasts) if isinstance(contrasts, str) else (
        f"{contrasts[0]} against {contrasts[1]} (a single contrast)")
    outcome_words = {"target_hit": "whether the participant names the target class",
                     "original_hit": "whether the participant names the original digit",
                     "rating": "the 1-7 rating of how much the image looks like the target class",
                     "chosen_defense": "which defense's image is chosen as looking more like the target"}
    design = plan["stimulus_design"] or "not stated in the design file"
    lines = [
        f"# Analysis plan: {s['name'] or '(unnamed study)'}", "",
        f"Plan SHA-256: `{h}`", "",
        "Written by `advlegit prereg` before data collection. `advlegit analyze --plan` checks this hash and "
        "lists every deviation from the plan in the report.", "",
        "## Study", "",
        f"- Task: **{s['task']}**; defenses: {', '.join(s['defenses']) or 'every defended model in the stimulus set'}.",
        f"- Stimulus design: **{design}**. "
        + (designs.estimand_text(plan["stimulus_design"]) if plan["stimulus_design"] else
           "It is read from the stimulus set at analysis time and stated in the report; the primary test adjusts "
           "for the L2 norm of the perturbation unless the set is `matched_norm`."), "",
        "## Primary test", "",
        f"- Outcome: {outcome_words.get(p['outcome'], p['outcome'])} (`{p['outcome']}`).",
        f"- Contrasts: {fam}; reference defense: **{p['reference_defense']}**.",
        f"- Stimuli: {p['stimuli']}. Covariates: {p['covariates']}.",
        f"- Model: {'logistic regression' if p['outcome'] != 'rating' else 'least squares'} with "
        f"cluster-robust (CRV1) standard errors clustered by {p['clusters']}; t reference with (clusters of the "
        "smaller factor - 1) degrees of freedom.",
        f"- Multiple comparisons: {p['correction']}; α = {p['alpha']:g} (two-sided); intervals at "
        f"{100 * (1 - p['alpha']):g}%.", "",
        "## Exclusions (in this order)", "",
        "1. Participants the researcher marked excluded in the app.",
        f"2. Participants whose state is not one of {', '.join(o['complete_states'])}.",
        *[f"{i}. {_first_upper(describe(r))}." for i, r in enumerate(_rules(o), 3)], "",
        "## Every option", "",
        "| option | value |", "|---|---|",
        *[f"| {k} | {json.dumps(v)} |" for k, v in o.items()], "",
        "## Machine-readable plan (hashed)", "",
        "```json advlegit-plan", json.dumps(plan, sort_keys=True, indent=2), "```", "",
    ]
    return "\n".join(lines)


def read_plan(path: Path) -> tuple[dict, str]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AnalysisError(f"plan file not found: {path}") from None
    m = _BLOCK.search(text)
    if not m:
        raise AnalysisError(f"{path}: not an analysis plan (no advlegit-plan JSON block; write one with "
                            "`advlegit prereg DESIGN.toml -o plan.md`)")
    try:
        plan = json.loads(m.group(1))
    except json.JSONDecodeError as exc:
        raise AnalysisError(f"{path}: the plan's JSON block is not valid: {exc}") from None
    h = plan_hash(plan)
    stated = _HASH.search(text)
    if stated is None or stated.group(1) != h:
        raise AnalysisError(f"{path}: the plan was changed after it was hashed (stated "
                            f"{stated.group(1) if stated else 'no hash'}, content hashes to {h})")
    return plan, h


def deviations(plan: dict, cfg: AnalysisConfig, tasks: list[str], defenses: dict[str, list[str]],
               design: str, references: dict[str, str] | None = None) -> list[str]:
    """Every way the analysis run differs from the plan."""
    out = []
    want = plan.get("options", {})
    have = {k: _jsonable(v) for k, v in cfg.values().items()}
    task = plan.get("study", {}).get("task", "")
    if task:
        have["primary_outcome"] = cfg.outcome_for(task)
    for k in sorted(set(want) | set(have)):
        if k not in want or k not in have:
            continue
        a, b = want[k], have[k]
        if k == "reference_defense" and not b:
            b = (references or {}).get(task, b)  # the default resolved on the data
        if a != b and not (isinstance(a, (int, float)) and isinstance(b, (int, float)) and float(a) == float(b)):
            where = cfg.sources.get(k, "default")
            out.append(f"option `{k}`: planned {json.dumps(a)}, used {json.dumps(b)} (from {where})"
                       + (" — computational, does not change the tests" if k in COMPUTATIONAL else ""))
    if task and tasks and tasks != [task]:
        out.append(f"task: planned {task}, analysed {', '.join(tasks) or 'none'}")
    planned = plan.get("study", {}).get("defenses") or []
    seen = sorted({x for v in defenses.values() for x in v})
    if planned and seen and sorted(planned) != seen:
        missing, extra = sorted(set(planned) - set(seen)), sorted(set(seen) - set(planned))
        out.append("defenses: " + "; ".join(
            ([f"planned but absent after exclusions: {', '.join(missing)}"] if missing else [])
            + ([f"in the data but not planned: {', '.join(extra)}"] if extra else [])))
    pd_ = plan.get("stimulus_design", "")
    if pd_ and design and pd_ != design:
        out.append(f"stimulus design: planned {pd_}, the export says {design}")
    # unknown in the plan: it said "unless matched_norm"
    if pd_ and designs.norm_fixed(pd_) != designs.norm_fixed(design):
        out.append("covariates: the plan " + ("does not adjust" if designs.norm_fixed(pd_) else "adjusts")
                   + " for the L2 norm, the analysis " + ("does not" if designs.norm_fixed(design) else "does")
                   + f" (stimulus design {design or 'unknown'})")
    return out
