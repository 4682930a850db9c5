"""Simulation-based power of the primary contrast (identify task, target_hit)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import expit
from tqdm import tqdm

from advlegit.analysis import figures
from advlegit.analysis.config import AnalysisConfig
from advlegit.analysis.errors import AnalysisError
from advlegit.analysis.exclusions import apply_exclusions
from advlegit.analysis.identify import bayes_glmm, identify_frame, primary_test
from advlegit.analysis.pipeline import resolve_defenses
from advlegit.analysis.report import md_table
from advlegit.analysis.simulate import SimDesign, simulate
from advlegit.analysis.stats import wilson


@dataclass
class PowerDesign:
    sim: SimDesign
    treatment: str
    control: str
    source: str  # "given" or "pilot <file>"

    @classmethod
    def build(cls, defenses, effects, baseline_rate, participant_sd, image_sd, trials,
              cfg: AnalysisConfig, source: str = "given") -> PowerDesign:
        defenses = tuple(dict.fromkeys(defenses))
        unknown = set(effects) - set(defenses)
        if unknown:
            raise AnalysisError(f"--effect-logodds names defenses not in --defenses: {', '.join(sorted(unknown))}")
        if not 0 < baseline_rate < 1:
            raise AnalysisError("baseline rate must be between 0 and 1")
        if trials < len(defenses):
            raise AnalysisError("need at least one trial per defense per participant")
        _, (treat, ctrl) = resolve_defenses(cfg, list(defenses), "power")
        sim = SimDesign(defenses=defenses, effects=dict(effects), baseline_rate=baseline_rate,
                        participant_sd=participant_sd, image_sd=image_sd, trials_per_participant=trials,
                        models=())
        # the reference of the simulation is the control: its effect is the baseline
        return cls(sim, treat, ctrl, source)


def design_from_pilot(df: pd.DataFrame, cfg: AnalysisConfig, trials: int | None) -> PowerDesign:
    """Effects and variance components estimated from a pilot (crossed-random-effects fit)."""
    d = identify_frame(apply_exclusions(df, cfg).data)
    d = d[d["task_type"] == "identify"]
    if len(d) == 0:
        raise AnalysisError("the pilot has no identify responses to estimate effects from")
    defenses = sorted(d["defense"].unique())
    _, (treat, ctrl) = resolve_defenses(cfg, defenses, "pilot")
    fe, vc = bayes_glmm(d, "target_hit", ctrl)
    b = fe.set_index("term")["estimate" if "estimate" in fe else "post_mean_log_odds"]
    effects = {name: float(b[f"defense:{name}"]) for name in defenses if name != ctrl}
    sds = vc.set_index("component")["sd" if "sd" in vc else "sd_post_mean"]
    t = trials or int(d.groupby("participant_id").size().median())
    return PowerDesign.build(defenses, effects, float(expit(b["Intercept"])), float(sds["participant"]),
                             float(sds["image"]), t, cfg, source="pilot")


def simulated_p(design: PowerDesign, n_participants: int, rng: np.random.Generator) -> float:
    sim = dataclasses.replace(design.sim, n_participants=n_participants)
    d = identify_frame(simulate(sim, rng, core=True))
    return primary_test(d, design.treatment, design.control)["p"]


def power_curve(design: PowerDesign, sizes: list[int], n_sims: int, alpha: float, seed: int = 0,
                progress: bool = True) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    with tqdm(total=len(sizes) * n_sims, desc="simulating studies", disable=not progress) as bar:
        for n in sizes:
            ps = []
            for _ in range(n_sims):
                ps.append(simulated_p(design, n, rng))
                bar.update()
            ps = np.asarray(ps)
            ok = np.isfinite(ps)
            rej = int((ps[ok] < alpha).sum())
            lo, hi = wilson(rej / ok.sum(), ok.sum(), 0.05)
            rows.append({"n_participants": n, "power": rej / ok.sum(), "ci_low": float(lo),
                         "ci_high": float(hi), "n_sims": int(ok.sum()), "failed_fits": int((~ok).sum())})
    return pd.DataFrame(rows)


def write(table: pd.DataFrame, design: PowerDesign, target: float, root: Path) -> None:
    table.to_csv(root / "power.csv", index=False)
    figures.power_curve(table, target, root / "power.png")
    s = design.sim
    lines = ["# Power of the primary contrast\n",
             f"Primary test: two-way cluster-robust logit contrast **{design.treatment} vs {design.control}** "
             f"on target_hit. Design ({design.source}): defenses {', '.join(s.defenses)}; conditional "
             f"log-OR vs control {s.effects}; baseline rate {s.baseline_rate:.3f}; participant SD "
             f"{s.participant_sd:.3f}; image SD {s.image_sd:.3f}; {s.trials_per_participant} main trials "
             "per participant, defenses balanced within participant.\n", md_table(table),
             "\n![power curve](power.png)\n"]
    enough = table[table["power"] >= target]
    lines.append(f"Smallest simulated size reaching power {target:g}: "
                 + (f"{int(enough['n_participants'].min())} participants.\n" if len(enough) else "none.\n"))
    (root / "power.md").write_text("\n".join(lines), encoding="utf-8")
