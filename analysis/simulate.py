"""Simulated studies in export format, from known effects and variance components.

Used by the validation tests (the truth is known) and as the engine of `advlegit power`.
Each matched set ("group": a source digit and a target class) has one adversarial image per
defense; a participant sees distinct groups, defenses balanced within participant.

identify: target_hit ~ Bernoulli(expit(intercept + effect[defense] + attack/budget terms
          + u_participant + v_image)), u ~ N(0, participant_sd²), v ~ N(0, image_sd²).
rate:     latent = effect[defense] + u + v + Logistic(0,1), cut at fixed thresholds into 1..7.
controls: a share of main trials shows a control twin instead (identify and rate), its log-odds or
          latent shifted by control_effect.
compare:  P(left chosen) = expit(strength[left] - strength[right] + side_bias + w_participant).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import expit, logit

from advlegit.analysis.schema import BOOL_COLUMNS, EXPORT_COLUMNS, FLOAT_COLUMNS, INT_COLUMNS, STR_COLUMNS

RATE_CUTS = np.array([-2.0, -1.2, -0.4, 0.4, 1.2, 2.0])


@dataclass
class SimDesign:
    task: str = "identify"
    defenses: tuple[str, ...] = ("normal", "gradreg_y")
    effects: dict[str, float] = field(default_factory=dict)  # defense -> log-OR / latent shift / strength
    baseline_rate: float = 0.25  # identify: P(target_hit) of a typical image of the reference defense
    participant_sd: float = 0.8
    image_sd: float = 0.5
    n_participants: int = 40
    trials_per_participant: int = 24
    n_groups: int | None = None  # matched sets; default 2 × trials per participant
    attacks: tuple[str, ...] = ("tgsm",)
    attack_effects: dict[str, float] = field(default_factory=dict)
    budgets: tuple[float, ...] = (0.3,)
    budget_slope: float = 0.0  # identify: log-odds per unit budget (L∞ ε)
    side_bias: float = 0.0  # compare: log-odds of choosing the left image
    p_original_if_miss: float = 0.7  # identify: a miss names the original digit this often
    n_practice: int = 0
    n_attention: int = 0
    inattentive_rate: float = 0.0  # share of participants answering at random, fast
    incomplete_rate: float = 0.0  # share who returned the study part-way
    review_excluded_rate: float = 0.0  # share the researcher marked excluded
    models: tuple[str, ...] = ("normal", "rater")  # model_<name>_label columns
    study_id: str = "sim"
    stimulus_design: str = ""  # written to the stimulus_design column ("" = an old export without it)
    # identify, rate: control stimuli shown besides the adversarial ones (control_flip, control_noise); each is a
    # twin of an adversarial image with the log-odds of naming the target (identify) or the rating's latent
    # value (rate) shifted by control_effect
    controls: tuple[str, ...] = ()
    control_share: float = 0.25  # share of main trials that show a control (per control kind)
    control_effect: float = -1.5
    simulated_share: float = 0.0  # share of participants flagged `simulated` (as `advlegit bots` would)

    def effect(self, d: str) -> float:
        return float(self.effects.get(d, 0.0))


def _labels(n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    true = np.arange(n_groups) % 10
    target = (true + 1 + (np.arange(n_groups) // 10) % 9) % 10
    return true, target


def _allocate(design: SimDesign, rng: np.random.Generator):
    """(participant, group, defense index) for every main trial."""
    T, K = design.trials_per_participant, len(design.defenses)
    G = design.n_groups or max(2 * T, K)
    if G < T:
        raise ValueError("n_groups must be at least trials_per_participant")
    groups = np.argsort(rng.random((design.n_participants, G)), axis=1)[:, :T]
    # balanced defenses within participant: repeat 0..K-1 then shuffle per participant
    base = np.resize(np.arange(K), T)
    defs = np.take_along_axis(np.tile(base, (design.n_participants, 1)),
                              np.argsort(rng.random((design.n_participants, T)), axis=1), axis=1)
    part = np.repeat(np.arange(design.n_participants), T)
    return part, groups.ravel(), defs.ravel(), G


def simulate(design: SimDesign, seed: int | np.random.Generator = 0, core: bool = False) -> pd.DataFrame:
    """One simulated export (all columns of docs/export.md), as a typed frame.

    core=True returns only the main-trial columns the statistics use (fast: power, validation)."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    from advlegit.analysis.tasks import TASKS

    if design.task not in TASKS or not TASKS[design.task].simulated:
        raise ValueError(f"unknown task {design.task!r} (the simulator makes "
                         f"{', '.join(t for t, p in TASKS.items() if p.simulated)})")
    pairs = TASKS[design.task].primary_outcome == "chosen_defense"  # compare, explain_pair: two images
    if pairs and len(design.defenses) < 2:
        raise ValueError(f"{design.task} needs two defenses")
    P, K = design.n_participants, len(design.defenses)
    part, grp, dix, G = _allocate(design, rng)
    n = len(part)
    defs = np.array(design.defenses, dtype=object)
    true_g, target_g = _labels(G)
    attack_g = np.array(design.attacks, dtype=object)[np.arange(G) % len(design.attacks)]
    budget_g = np.array(design.budgets, dtype=float)[(np.arange(G) // len(design.attacks)) % len(design.budgets)]
    u = rng.normal(0, design.participant_sd, P)
    v = rng.normal(0, design.image_sd, (G, K))  # one image per (group, defense)
    eff = np.array([design.effect(d) for d in design.defenses])
    att_eff = np.array([design.attack_effects.get(a, 0.0) for a in attack_g])
    inattentive = rng.random(P) < design.inattentive_rate

    cols: dict[str, object] = {}
    cols["defense"] = defs[dix]
    cols["stimulus_id"] = np.char.add(np.char.add(np.char.add("s", np.char.zfill(grp.astype(str), 4)), "-"),
                                      defs[dix].astype(str))
    cols["group"] = np.char.add("g", np.char.zfill(grp.astype(str), 4))
    budget = budget_g[grp]
    true, target = true_g[grp], target_g[grp]
    eta_img = v[grp, dix]
    cols["stimulus_id_b"] = np.full(n, "", dtype=object)
    cols["defense_b"] = np.full(n, "", dtype=object)
    response = np.empty(n, dtype=object)
    resp_label = np.full(n, np.nan)
    rating = np.full(n, np.nan)
    latent = np.full(n, np.nan)
    chosen_side = np.full(n, "", dtype=object)
    chosen_def = np.full(n, "", dtype=object)
    target_hit = np.full(n, None, dtype=object)
    original_hit = np.full(n, None, dtype=object)
    rand = inattentive[part]

    if design.task == "identify":
        eta = (logit(design.baseline_rate) + eff[dix] + att_eff[grp]
               + design.budget_slope * budget + u[part] + eta_img)
        hit = rng.random(n) < expit(eta)
        orig = ~hit & (rng.random(n) < design.p_original_if_miss)
        other = (true + 1 + rng.integers(1, 9, n)) % 10  # neither... may equal target: fix below
        other = np.where(other == target, (other + 1) % 10, other)
        other = np.where(other == true, (other + 1) % 10, other)
        label = np.where(hit, target, np.where(orig, true, other)).astype(float)
        rnd_label = rng.integers(0, 10, n).astype(float)
        label = np.where(rand, rnd_label, label)
        none = rng.random(n) < 0.03
        label[none] = np.nan
        resp_label = label
        response = np.where(none, "none", np.char.mod("%d", np.nan_to_num(label).astype(int))).astype(object)
        target_hit = np.where(none, False, label == target)
        original_hit = np.where(none, False, label == true)
    elif TASKS[design.task].primary_outcome == "rating":  # rate, explain: a 1-7 rating per image
        latent = eff[dix] + u[part] + eta_img + rng.logistic(0, 1, n)
        r = 1 + np.searchsorted(RATE_CUTS, latent)
        r = np.where(rand, rng.integers(1, 8, n), r)
        rating = r.astype(float)
        response = np.char.mod("%d", r).astype(object)
    else:  # compare, explain_pair: the right image is the same group under another defense
        other = (dix + rng.integers(1, K, n)) % K
        swap = rng.random(n) < 0.5  # which of the pair is shown left
        left, right = np.where(swap, other, dix), np.where(swap, dix, other)
        w = rng.normal(0, design.participant_sd, P)  # per-person side preference
        p_left = expit(eff[left] - eff[right] + design.side_bias + w[part] * 0.3)
        chose_left = np.where(rand, rng.random(n) < 0.5, rng.random(n) < p_left)
        cols["defense"], cols["defense_b"] = defs[left], defs[right]
        sid = np.char.add(np.char.add("s", np.char.zfill(grp.astype(str), 4)), "-")
        cols["stimulus_id"] = np.char.add(sid, defs[left].astype(str))
        cols["stimulus_id_b"] = np.char.add(sid, defs[right].astype(str))
        chosen_side = np.where(chose_left, "left", "right").astype(object)
        chosen_def = np.where(chose_left, defs[left], defs[right])
        response = chosen_side.copy()
        dix = left

    main = pd.DataFrame({
        "participant_num": part, "trial_kind": "main", "stimulus_id": cols["stimulus_id"],
        "stimulus_id_b": cols["stimulus_id_b"], "group": cols["group"],
        "source_index": grp, "true_label": true, "target_label": target,
        "defense": cols["defense"], "defense_b": cols["defense_b"], "attack": attack_g[grp],
        "budget": budget, "response": response, "response_label": resp_label, "rating": rating,
        "chosen_side": chosen_side, "chosen_defense": chosen_def,
        "target_hit": target_hit, "original_hit": original_hit,
        "is_attention_check": False, "attention_passed": None,
    })
    if core:
        main["participant_id"] = np.char.add("p", pd.Series(part).astype(str).to_numpy().astype(str))
        main["task_type"] = design.task
        return main.drop(columns=["participant_num"])
    # perturbation norms: grow with the budget, differ a little by defense
    main["norm_linf"] = budget
    main["norm_l2"] = budget * (6.0 + 0.5 * dix) * np.exp(rng.normal(0, 0.15, n))
    main["norm_l0"] = np.round(150 + 40 * dix + rng.normal(0, 20, n))
    if pairs:
        main["norm_l2_b"] = budget * 6.5 * np.exp(rng.normal(0, 0.15, n))
    # models' predictions: the attacked source model says the target, the rater mostly the truth
    for m in design.models:
        if m == "rater":
            lab = np.where(rng.random(n) < 0.85, true, target)
        else:
            lab = np.where(rng.random(n) < 0.9, target, true)
        main[f"model_{m}_label"] = lab
        main[f"model_{m}_confidence"] = np.round(rng.uniform(0.5, 1.0, n), 3)
    main["stimulus_kind"] = "adversarial" if design.controls else ""
    if design.controls and design.task == "identify":
        main = _add_controls(main, design, eta, part, rng)
    elif design.controls and design.task == "rate":
        main = _add_rating_controls(main, design, latent, rand, rng)
    frames = [main]
    if design.n_practice or design.n_attention:
        frames.append(_extra_trials(design, inattentive, rng))
    df = pd.concat(frames, ignore_index=True)
    return _finish(df, design, inattentive, rng)


def _add_controls(main: pd.DataFrame, design: SimDesign, eta: np.ndarray, part: np.ndarray,
                  rng) -> pd.DataFrame:
    """Turn a share of main trials into control trials: the twin's image with its adversarial structure
    removed (same norms), named as the target with log-odds eta + control_effect."""
    out, kinds = _control_trials(main, design, rng)
    ctrl = kinds != "adversarial"
    hit = rng.random(len(out)) < expit(eta + design.control_effect)
    true, target = out["true_label"].to_numpy(), out["target_label"].to_numpy()
    label = np.where(hit, target, true).astype(float)
    out.loc[ctrl, "response_label"] = label[ctrl]
    out.loc[ctrl, "response"] = np.char.mod("%d", label[ctrl].astype(int))
    out.loc[ctrl, "target_hit"] = hit[ctrl]
    out.loc[ctrl, "original_hit"] = ~hit[ctrl]
    return out


def _control_trials(main: pd.DataFrame, design: SimDesign, rng) -> tuple[pd.DataFrame, np.ndarray]:
    """Mark a share of main trials (control_share per kind) as control twins: new stimulus ids, linked back."""
    out = main.copy()
    kinds = np.full(len(out), "adversarial", dtype=object)
    u = rng.random(len(out))
    for i, k in enumerate(design.controls):
        kinds[(u >= i * design.control_share) & (u < (i + 1) * design.control_share)] = k
    ctrl = kinds != "adversarial"
    out["twin_stimulus_id"] = np.where(ctrl, out["stimulus_id"], "")
    out["stimulus_id"] = np.where(ctrl, out["stimulus_id"].astype(str) + "-" + kinds.astype(str), out["stimulus_id"])
    out["stimulus_kind"] = kinds
    return out, kinds


def _add_rating_controls(main: pd.DataFrame, design: SimDesign, latent: np.ndarray, rand: np.ndarray,
                         rng) -> pd.DataFrame:
    """rate: a control twin's rating cuts the twin's latent value shifted by control_effect (inattentive
    participants keep their random rating)."""
    out, kinds = _control_trials(main, design, rng)
    ctrl = (kinds != "adversarial") & ~rand
    r = 1 + np.searchsorted(RATE_CUTS, latent + design.control_effect)
    out.loc[ctrl, "rating"] = r[ctrl].astype(float)
    out.loc[ctrl, "response"] = np.char.mod("%d", r[ctrl])
    return out


def _extra_trials(design: SimDesign, inattentive: np.ndarray, rng) -> pd.DataFrame:
    P = design.n_participants
    reps = design.n_practice + design.n_attention
    part = np.repeat(np.arange(P), reps)
    kind = np.tile(["practice"] * design.n_practice + ["attention_check"] * design.n_attention, P)
    digit = rng.integers(0, 10, len(part))
    is_att = kind == "attention_check"
    passed = np.where(inattentive[part], rng.random(len(part)) < 0.3, rng.random(len(part)) < 0.98)
    answer = np.where(passed, digit, (digit + 1) % 10)
    return pd.DataFrame({
        "participant_num": part, "trial_kind": kind,
        "stimulus_id": np.char.add("clean-", digit.astype(str)), "stimulus_id_b": "", "group": "",
        "source_index": digit, "true_label": digit, "target_label": np.nan, "defense": "",
        "defense_b": "", "attack": "", "budget": np.nan,
        "response": answer.astype(str).astype(object), "response_label": answer.astype(float),
        "rating": np.nan, "chosen_side": "", "chosen_defense": "", "target_hit": None,
        "original_hit": None, "is_attention_check": is_att,
        "attention_passed": np.where(is_att, passed, None).astype(object),
    })


def _finish(df: pd.DataFrame, design: SimDesign, inattentive, rng) -> pd.DataFrame:
    P = design.n_participants
    df = df.sample(frac=1.0, random_state=int(rng.integers(2**31))).reset_index(drop=True)
    df = df.sort_values("participant_num", kind="stable").reset_index(drop=True)
    df["trial_index"] = df.groupby("participant_num").cumcount()
    state = np.where(rng.random(P) < 0.3, "data_complete", "code_issued").astype(object)
    review = np.full(P, "", dtype=object)
    incomplete = rng.random(P) < design.incomplete_rate
    state[incomplete] = "returned"
    review[rng.random(P) < design.review_excluded_rate] = "excluded"
    pn = df["participant_num"].to_numpy()
    n_trials = df.groupby("participant_num")["trial_index"].transform("size").to_numpy()
    cut = incomplete[pn] & (df["trial_index"].to_numpy() >= n_trials // 2)
    df = df[~cut].reset_index(drop=True)
    pn = df["participant_num"].to_numpy()
    n = len(df)
    df["participant_id"] = np.char.add("p", np.char.zfill(pn.astype(str), 5))
    df["participant_state"] = state[pn]
    df["participant_review"] = review[pn]
    df["study_id"] = design.study_id
    df["task_type"] = design.task
    df["response_uuid"] = [f"{design.study_id}-{i:08d}" for i in range(n)]
    df["source_id"] = np.char.add("src", df["source_index"].astype(int).astype(str).to_numpy())
    df["attack_params"] = np.where(df["attack"] == "", "", json.dumps({"steps": 10}))
    df["attack_success"] = df["defense"] != ""
    rt = np.exp(rng.normal(np.log(1500), 0.4, n))
    fast = inattentive[pn]
    rt = np.where(fast, np.exp(rng.normal(np.log(350), 0.3, n)), rt)
    df["rt_ms"] = np.round(rt, 1)
    t0 = pd.Timestamp("2026-01-01T00:00:00Z") + pd.to_timedelta(pn * 3600 + df["trial_index"] * 5, unit="s")
    df["shown_at"] = t0.dt.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    df["answered_at"] = (t0 + pd.to_timedelta(df["rt_ms"], unit="ms")).dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    df["received_at"] = df["answered_at"]
    df["screen_width"], df["screen_height"] = 1920.0, 1080.0
    df["viewport_width"], df["viewport_height"], df["device_pixel_ratio"] = 1600.0, 900.0, 1.0
    df["stimulus_design"] = design.stimulus_design
    bots = rng.random(P) < design.simulated_share if design.simulated_share > 0 else np.zeros(P, bool)
    df["simulated"] = bots[pn]
    # participant times (drawn last, so the draws above are those of every earlier version): inattentive
    # people skim the instructions; the session runs from the first trial shown to the last answer
    instr = np.where(inattentive, np.exp(rng.normal(np.log(8000), 0.4, P)), np.exp(rng.normal(np.log(45000), 0.5, P)))
    df["instructions_ms"] = np.round(instr[pn], 1)
    elapsed = df["trial_index"].to_numpy() * 5000.0 + df["rt_ms"].to_numpy()
    df["session_ms"] = pd.Series(elapsed).groupby(pn).transform("max").round(1).to_numpy()
    df["manifest_sha256"] = "0" * 64
    df["stimulus_set"] = "simulated"
    for c in EXPORT_COLUMNS:
        if c not in df.columns:  # columns this simulator does not model: empty, of the schema's type
            if c == "simulated":
                df[c] = False  # no participant here is an `advlegit bots` participant
            elif c in FLOAT_COLUMNS or c in INT_COLUMNS or c.startswith("norm_"):
                df[c] = np.nan
            elif c in BOOL_COLUMNS:
                df[c] = None
            else:
                df[c] = ""
    model_cols = [c for c in df.columns if c.startswith("model_")]
    df = df[list(EXPORT_COLUMNS) + model_cols]
    return _types(df)


def _types(df: pd.DataFrame) -> pd.DataFrame:
    for c in df.columns:
        if c in BOOL_COLUMNS:
            df[c] = df[c].astype("boolean")
    for c in df.columns:
        if c in INT_COLUMNS:
            df[c] = pd.to_numeric(df[c]).astype("Int64")
    for c in df.columns:
        if c.startswith("model_") and c.endswith("_label"):
            df[c] = df[c].astype("Int64")
    for c in df.columns:
        if c in STR_COLUMNS or c in ("defense", "defense_b", "stimulus_id", "stimulus_id_b", "group", "response",
                                     "chosen_side", "chosen_defense", "attack"):
            df[c] = df[c].fillna("").astype(str)
    return df


def write_export(df: pd.DataFrame, path: str | Path) -> Path:
    """Write a frame as the study app would: CSV (true/false, empty cells) or JSON lines."""
    path = Path(path)
    out = df.copy()
    for c in out.columns:
        if str(out[c].dtype) == "boolean":
            out[c] = out[c].map({True: "true", False: "false"}).astype(object).fillna("")
    if path.suffix == ".jsonl":
        out.to_json(path, orient="records", lines=True)
    else:
        out.to_csv(path, index=False, na_rep="")
    return path


def marginal_rates(design: SimDesign, n_draws: int = 400_000, seed: int = 12345) -> dict[str, float]:
    """Population-averaged P(target_hit) per defense (identify), by Monte Carlo over the
    random effects: the quantity a marginal (cluster-robust) logit estimates."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, np.hypot(design.participant_sd, design.image_sd), n_draws)
    base = logit(design.baseline_rate)
    return {d: float(expit(base + design.effect(d) + z).mean()) for d in design.defenses}


def marginal_log_or(design: SimDesign, treatment: str, control: str) -> float:
    r = marginal_rates(design)
    return float(logit(r[treatment]) - logit(r[control]))
