"""compare task: which of two images looks more like the target? P(choose A) per pair,
Bradley-Terry strengths (with a left/right term), side bias; participant-cluster bootstrap."""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
from scipy import stats

from advlegit.analysis.stats import holm


def compare_frame(df: pd.DataFrame) -> pd.DataFrame:
    d = df[(df["task_type"] == "compare") & df["chosen_side"].isin(["left", "right"])].copy()
    d["chose_left"] = (d["chosen_side"] == "left").astype(float)
    return d


def _boot_weights(n_units: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Multinomial resampling of participants as count weights (n_boot × n_units)."""
    return rng.multinomial(n_units, np.full(n_units, 1 / n_units), size=n_boot).astype(float)


def pair_table(d: pd.DataFrame, n_boot: int, alpha: float, rng: np.random.Generator) -> pd.DataFrame:
    pids = pd.Index(sorted(d["participant_id"].unique()))
    W = _boot_weights(len(pids), n_boot, rng)
    rows = []
    defenses = sorted(set(d["defense"]) | set(d["defense_b"]))
    for a, b in itertools.combinations(defenses, 2):
        m = ((d["defense"] == a) & (d["defense_b"] == b)) | ((d["defense"] == b) & (d["defense_b"] == a))
        sub = d[m]
        if len(sub) == 0:
            continue
        wins = (sub["chosen_defense"] == a).groupby(sub["participant_id"]).agg(["sum", "size"])
        wins = wins.reindex(pids, fill_value=0)
        k, n = int(wins["sum"].sum()), int(wins["size"].sum())
        boot = (W @ wins["sum"].to_numpy()) / np.maximum(W @ wins["size"].to_numpy(), 1)
        lo, hi = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
        bt = stats.binomtest(k, n, 0.5)
        p_hat = k / n
        rows.append({"defense_a": a, "defense_b": b, "p_choose_a": p_hat, "boot_ci_low": lo,
                     "boot_ci_high": hi, "n_trials": n, "n_participants": int((wins["size"] > 0).sum()),
                     "cohens_h": 2 * np.arcsin(np.sqrt(p_hat)) - 2 * np.arcsin(np.sqrt(0.5)),
                     "p_binomial": bt.pvalue})
    out = pd.DataFrame(rows)
    if len(out):
        out["p_binomial_holm"] = holm(out["p_binomial"])
    return out


def side_bias(d: pd.DataFrame, n_boot: int, alpha: float, rng: np.random.Generator) -> pd.DataFrame:
    g = d.groupby("participant_id")["chose_left"].agg(["sum", "size"])
    W = _boot_weights(len(g), n_boot, rng)
    boot = (W @ g["sum"].to_numpy()) / (W @ g["size"].to_numpy())
    k, n = int(g["sum"].sum()), int(g["size"].sum())
    res = stats.binomtest(k, n, 0.5)
    lo, hi = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
    return pd.DataFrame([{"p_choose_left": k / n, "boot_ci_low": lo, "boot_ci_high": hi,
                          "n_trials": n, "p_binomial": res.pvalue}])


def _fit_bt(left: np.ndarray, right: np.ndarray, y: np.ndarray, w: np.ndarray, k: int,
            ridge: float = 1e-6) -> np.ndarray:
    """Weighted logit P(left) = expit(side + s_left - s_right), s_0 = 0; Newton-Raphson."""
    n = len(left)
    X = np.zeros((n, k))
    X[np.arange(n), left] += 1
    X[np.arange(n), right] -= 1
    X[:, 0] = 1.0  # column 0 (the reference) is replaced by the side term
    beta = np.zeros(k)
    for _ in range(50):
        p = 1 / (1 + np.exp(-(X @ beta)))
        g = X.T @ (w * (y - p)) - ridge * beta
        H = (X * (w * p * (1 - p))[:, None]).T @ X + ridge * np.eye(k)
        step = np.linalg.solve(H, g)
        beta += step
        if np.max(np.abs(step)) < 1e-9:
            break
    return beta


def bradley_terry(d: pd.DataFrame, reference: str, n_boot: int, alpha: float,
                  rng: np.random.Generator) -> tuple[pd.DataFrame, float]:
    """Strengths relative to the reference defense, with a left-side term; CIs by resampling
    participants (cells aggregated per participant so each refit is tiny)."""
    defenses = [reference] + sorted((set(d["defense"]) | set(d["defense_b"])) - {reference})
    idx = {name: i for i, name in enumerate(defenses)}
    cell = d.assign(l=d["defense"].map(idx), r=d["defense_b"].map(idx))
    agg = cell.groupby(["participant_id", "l", "r"])["chose_left"].agg(["sum", "size"]).reset_index()
    # each (left, right) cell as two weighted rows: chose left (y=1) and chose right (y=0)
    cells = agg[["l", "r"]].drop_duplicates().reset_index(drop=True)
    cid = agg.merge(cells.reset_index(), on=["l", "r"])["index"].to_numpy()
    pids = pd.factorize(agg["participant_id"])[0]
    P, C, k = pids.max() + 1, len(cells), len(defenses)
    ones = np.zeros((P, C))
    tot = np.zeros((P, C))
    np.add.at(ones, (pids, cid), agg["sum"].to_numpy())
    np.add.at(tot, (pids, cid), agg["size"].to_numpy())
    L, R = cells["l"].to_numpy(), cells["r"].to_numpy()
    yy, LL, RR = np.r_[np.ones(C), np.zeros(C)], np.r_[L, L], np.r_[R, R]

    def fit(wp: np.ndarray) -> np.ndarray:
        o, t = wp @ ones, wp @ tot
        return _fit_bt(LL, RR, yy, np.r_[o, t - o], k)

    est = fit(np.ones(P))
    W = _boot_weights(P, n_boot, rng)
    boots = np.array([fit(w) for w in W])
    lo, hi = np.quantile(boots, [alpha / 2, 1 - alpha / 2], axis=0)
    strengths = np.r_[0.0, est[1:]]
    out = pd.DataFrame({"defense": defenses, "strength": strengths,
                        "ci_low": np.r_[0.0, lo[1:]], "ci_high": np.r_[0.0, hi[1:]]})
    side = pd.DataFrame([{"term": "left-side (log-odds)", "estimate": est[0], "ci_low": lo[0], "ci_high": hi[0]}])
    return out, side
