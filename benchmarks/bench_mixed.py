"""Benchmark: are the mixed model's intervals right? Simulated crossed designs with known effects.

For each outcome type (binomial = identify target_hit, ordinal = rate 1..7) it simulates N studies
with analysis.simulate (random intercepts for participant and image, true conditional effects
known), fits every study with the Python engine of analysis.mixed and with R (lme4::glmer,
ordinal::clmm: all binomial studies, the first --r-sims-ordinal ordinal ones, as clmm is slow), and
writes to BENCHMARKS.md:

* the SE ratio Python / lme4 per term (mean and range over studies); for glmer both the RX-based
  vcov that analysis.mixed's R engine reports and glmer's default Hessian-based vcov;
* coverage of the true effect by the (1 - alpha) interval, per term and engine;
* the rejection rate at alpha for terms whose true effect is 0.

    nice .venv/bin/python benchmarks/bench_mixed.py [--n-sims 1000] [--alpha 0.05] [--families binomial,ordinal]

Long runs in resumable pieces (one process per family and range of studies, --first/--n-sims; each
appends to RAW/<family>_py.csv and skips studies already there), then one call that only reads the
stored fits and writes, with the earlier run's R columns beside them and the z/t reference check:

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/bench_mixed.py --families ordinal \
        --r-sims-binomial 0 --r-sims-ordinal 0 --raw-dir RAW --no-write
    .venv/bin/python benchmarks/bench_mixed.py --r-sims-binomial 0 --r-sims-ordinal 0 --raw-dir RAW \
        --combine-with benchmarks/data/bench_mixed_2026-12-01.json --reference-check RAW --max-minutes 0
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from advlegit.analysis import mixed  # noqa: E402
from advlegit.analysis.simulate import SimDesign, simulate  # noqa: E402

DESIGNS = {
    "binomial": SimDesign(task="identify", defenses=("normal", "gradreg_y", "distilled", "adv_fgsm"),
                          effects={"gradreg_y": 0.5, "distilled": -0.3}, baseline_rate=0.25,
                          participant_sd=0.8, image_sd=0.5, n_participants=40, trials_per_participant=24),
    "ordinal": SimDesign(task="rate", defenses=("normal", "gradreg_y", "distilled"),
                         effects={"gradreg_y": 0.5}, participant_sd=0.8, image_sd=0.5,
                         n_participants=40, trials_per_participant=24),
}
OUTCOME = {"binomial": "target_hit", "ordinal": "rating"}

R_LOOP = r"""
args <- commandArgs(trailingOnly = TRUE)
fam <- args[1]; nmax <- as.integer(args[4])
d <- read.csv(args[2], stringsAsFactors = FALSE)
d$defense <- relevel(factor(d$defense), ref = "normal")
d$participant_id <- factor(d$participant_id); d$stimulus_id <- factor(d$stimulus_id)
sims <- head(sort(unique(d$sim)), nmax)
first <- TRUE
emit <- function(r) {
  r$term <- sub("^defense", "defense:", r$term); r$term[r$term == "(Intercept)"] <- "Intercept"
  write.table(r, args[3], sep = ",", row.names = FALSE, col.names = first, append = !first)
  first <<- FALSE
}
for (s in sims) {
  x <- d[d$sim == s, ]
  if (fam == "binomial") {
    suppressPackageStartupMessages(library(lme4))
    m <- suppressWarnings(suppressMessages(glmer(y ~ defense + (1 | participant_id) + (1 | stimulus_id),
                                                 family = binomial, data = x)))
    cf <- fixef(m)
    se_h <- sqrt(diag(as.matrix(vcov(m))))
    se_rx <- sqrt(diag(as.matrix(vcov(m, use.hessian = FALSE))))
    emit(data.frame(sim = s, term = names(cf), estimate = cf, se = se_rx, se_hessian = se_h))
  } else {
    suppressPackageStartupMessages(library(ordinal))
    x$y <- factor(x$y, ordered = TRUE)
    m <- suppressWarnings(clmm(y ~ defense + (1 | participant_id) + (1 | stimulus_id), data = x))
    s2 <- coef(summary(m)); s2 <- s2[grepl("^defense", rownames(s2)), , drop = FALSE]
    emit(data.frame(sim = s, term = rownames(s2), estimate = s2[, 1], se = s2[, 2], se_hessian = s2[, 2]))
  }
}
"""


def simulate_one(design: SimDesign, seed: int) -> pd.DataFrame:
    df = simulate(design, seed=seed)
    d = df[df["trial_kind"] == "main"]
    y = d["target_hit"].astype(float) if design.task == "identify" else d["rating"].astype(int)
    return pd.DataFrame({"y": y.to_numpy(), "defense": d["defense"].to_numpy(),
                         "participant_id": d["participant_id"].to_numpy(),
                         "stimulus_id": d["stimulus_id"].to_numpy()})


def fit_python(fam: str, study, sims, alpha: float, truth: dict, deadline: float,
               raw: Path | None) -> tuple[pd.DataFrame, float]:
    """Fit each study in ``sims`` with the Python engine. With ``raw`` (a CSV), each study's rows are
    appended as soon as it is fitted and studies already there are skipped: a stopped run resumes."""
    done = set()
    if raw is not None and raw.exists():
        done = set(pd.read_csv(raw)["sim"].unique())
    rows, t_py, n = [], 0.0, 0
    for s in sims:
        if s in done:
            continue
        if time.time() > deadline:
            print(f"{fam}: deadline reached before study {s}", flush=True)
            break
        t = time.perf_counter()
        res = mixed.fit_mixed(study(s), "y", family=fam, fixed="defense", reference="normal", alpha=alpha,
                              engine="python")
        dt = time.perf_counter() - t
        t_py, n = t_py + dt, n + 1
        sd = dict(zip(res.random["factor"], res.random["sd"], strict=True))
        new = [{"sim": s, "term": r.term, "estimate": r.estimate, "se": r.se, "p": r.p, "df": r.df,
                "sd_participant": sd.get("participant_id", np.nan), "sd_image": sd.get("stimulus_id", np.nan),
                "converged": res.converged, "seconds": dt}
               for r in res.table.itertuples() if r.term in truth]
        rows += new
        if raw is not None:
            pd.DataFrame(new).to_csv(raw, mode="a", header=not raw.exists(), index=False)
        if n % 50 == 0:
            print(f"{fam}: {n} Python fits this run, study {s} ({t_py / n:.2f} s each)", flush=True)
    if raw is not None and raw.exists():
        every = pd.read_csv(raw)
        return every, float(every.groupby("sim")["seconds"].first().mean())
    if raw is not None:
        return pd.DataFrame(columns=["sim", "term", "estimate", "se", "p"]), np.nan
    return pd.DataFrame(rows), t_py


def run_family(fam: str, n_sims: int, r_sims: int, alpha: float, seed0: int, workdir: Path,
               deadline: float = np.inf, raw: Path | None = None, first: int = 0) -> dict:
    """Studies first..n_sims-1 (study s is simulated with seed seed0 + s, so a range continues an
    earlier run of the same code)."""
    design = DESIGNS[fam]
    truth = {f"defense:{d}": design.effect(d) for d in design.defenses if d != "normal"}
    study = lambda s: simulate_one(design, seed0 + s).assign(sim=s)  # noqa: E731
    csv = workdir / f"{fam}.csv"
    # R runs over the same studies in the background (one process, all fits) while Python fits
    ok, why = mixed.r_available()
    proc, out, t0 = None, workdir / f"{fam}_r.csv", time.perf_counter()
    if ok and r_sims > 0:
        studies = [study(s) for s in range(first, min(n_sims, first + r_sims))]
        pd.concat(studies, ignore_index=True).to_csv(csv, index=False)
        script = workdir / f"loop_{fam}.R"
        script.write_text(R_LOOP)
        proc = subprocess.Popen(["nice", "Rscript", str(script), fam, str(csv), str(out), str(min(r_sims, n_sims))])
    py, t_py = fit_python(fam, study, range(first, n_sims), alpha, truth, deadline, raw)
    n_done = int(py["sim"].nunique())
    rr, t_r = None, np.nan
    if proc is not None:
        try:
            rc = proc.wait(timeout=max(1.0, deadline - time.time()) if np.isfinite(deadline) else None)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            rc = 0
            print(f"{fam}: R stopped at the deadline", flush=True)
        if rc != 0:
            raise RuntimeError("the R loop failed")
        rr = pd.read_csv(out) if out.exists() else pd.DataFrame(columns=["sim", "term", "estimate", "se", "se_hessian"])
        t_r = (time.perf_counter() - t0) / max(1, rr["sim"].nunique())
        rr = rr[rr["term"].isin(list(truth))]
        print(f"{fam}: R fits done ({t_r:.2f} s each, wall incl. startup, sharing the CPU with Python)", flush=True)
    z = stats.norm.ppf(1 - alpha / 2)
    per_term = []
    for term, true in truth.items():
        p = py[py["term"] == term]
        row = {"term": term, "true": true, "n_py": len(p),
               # calibration diagnostics: SEs too small (ratio < 1) or estimates biased
               "se_over_sd_py": float(p["se"].mean() / p["estimate"].std()) if len(p) > 1 else np.nan,
               "bias_py": float(p["estimate"].mean() - true) if len(p) else np.nan,
               "cover_py": float((np.abs(p["estimate"] - true) <= z * p["se"]).mean()),
               # from estimate / SE with z, as the coverage: stored p-values of later fits use the t reference
               "reject_py": float((np.abs(p["estimate"] / p["se"]) > z).mean())}
        if rr is not None:
            r = rr[rr["term"] == term]
            m = p.merge(r, on="sim", suffixes=("", "_r"))
            ratio = m["se"] / m["se_r"]
            ratio_h = m["se"] / m["se_hessian"]
            row.update(n_r=len(r), cover_r=float((np.abs(r["estimate"] - true) <= z * r["se"]).mean()),
                       cover_r_hess=float((np.abs(r["estimate"] - true) <= z * r["se_hessian"]).mean()),
                       reject_r=float((2 * stats.norm.sf(np.abs(r["estimate"] / r["se"])) < alpha).mean()),
                       se_ratio_mean=float(ratio.mean()), se_ratio_min=float(ratio.min()),
                       se_ratio_max=float(ratio.max()), se_ratio_hess_mean=float(ratio_h.mean()),
                       se_ratio_hess_median=float(ratio_h.median()),
                       est_diff_max=float((m["estimate"] - m["estimate_r"]).abs().max()))
        per_term.append(row)
    sds = {k: float(py.groupby("sim")[k].first().mean()) for k in ("sd_participant", "sd_image") if k in py}
    return {"family": fam, "n_sims": n_done, "alpha": alpha, "design": repr(design), "terms": per_term,
            "diagnostics": {"n": n_done, "studies": _ranges(sorted(int(x) for x in py["sim"].unique())), "sd_hat": sds,
                            "sd_true": {"sd_participant": design.participant_sd, "sd_image": design.image_sd},
                            "terms": {t["term"]: {k: t[k] for k in ("se_over_sd_py", "bias_py")} for t in per_term}},
            "python_s_per_fit": t_py if raw is not None else t_py / max(1, n_done), "r_s_per_fit": t_r,
            "r_sims": int(rr["sim"].nunique()) if rr is not None else 0,
            "r_reason": "" if ok else why}


R_KEYS = ("n_r", "cover_r", "cover_r_hess", "reject_r", "se_ratio_mean", "se_ratio_min", "se_ratio_max",
          "se_ratio_hess_mean", "se_ratio_hess_median", "est_diff_max")


def combine(old: dict, new: dict) -> dict:
    """This run's Python results with an earlier run's R columns (R is not rerun). The earlier run's
    Python counts are not added: its studies came from the code of that day, and refitting its seeds
    with today's code did not reproduce its counts exactly (2026-12-02)."""
    out = dict(new, r_sims=old.get("r_sims", 0), r_s_per_fit=old.get("r_s_per_fit", np.nan),
               parts=f"R columns and SE ratios: the run of {old.get('measured', '2026-12-01')} (R on its first "
                     f"{old.get('r_sims', 0)} studies, simulated by that day's code), not rerun")
    terms = []
    for t_new in new["terms"]:
        t_old = next((t for t in old["terms"] if t["term"] == t_new["term"]), {})
        terms.append(dict(t_new, **{k: t_old[k] for k in R_KEYS if k in t_old}))
    out["terms"] = terms
    return out


def study_df(fam: str, s: int, seed0: int) -> float:
    """The containment df analysis.mixed gives the defense terms of study s (for rows stored before
    the engine reported df): the study is simulated again from its seed."""
    d = simulate_one(DESIGNS[fam], seed0 + s)
    X, _ = mixed.design(d, ["defense"], "normal", intercept=(fam == "binomial"))
    f = {c: pd.factorize(d[c])[0] for c in ("participant_id", "stimulus_id")}
    df = mixed.containment_df(X, f, len(d), fam)
    return float(df[np.asarray(X.columns).astype(str) != "Intercept"].min())


def reference_check(fam: str, raws: list[Path], alpha: float, seed0: int) -> dict:
    """Coverage and rejection with the z and the t (containment df) reference, on the same studies:
    every study whose estimate and SE are stored in ``raws``."""
    py = pd.concat([pd.read_csv(r) for r in raws if r.exists()], ignore_index=True)
    py = py.drop_duplicates(["sim", "term"], keep="last")
    if "df" not in py:
        py["df"] = np.nan
    miss = sorted(py.loc[py["df"].isna(), "sim"].unique())
    dfs = {s: study_df(fam, int(s), seed0) for s in miss}
    py["df"] = py["df"].fillna(py["sim"].map(dfs))
    design = DESIGNS[fam]
    truth = {f"defense:{d}": design.effect(d) for d in design.defenses if d != "normal"}
    zq, rows = stats.norm.ppf(1 - alpha / 2), []
    for term, true in truth.items():
        p = py[py["term"] == term]
        tq = stats.t.ppf(1 - alpha / 2, p["df"])
        a = np.abs(p["estimate"] - true) / p["se"]
        b = np.abs(p["estimate"]) / p["se"]
        rows.append({"term": term, "true": true, "n": len(p), "df_median": float(p["df"].median()),
                     "cover_z": float((a <= zq).mean()), "cover_t": float((a <= tq).mean()),
                     "reject_z": float((b > zq).mean()), "reject_t": float((b > tq).mean())})
    sims = sorted(py["sim"].unique())
    return {"family": fam, "n": len(sims), "rows": rows,
            "ranges": _ranges(sims)}


def _ranges(sims: list[int]) -> str:
    out, start, prev = [], None, None
    for s in sims:
        if start is None:
            start = prev = s
        elif s == prev + 1:
            prev = s
        else:
            out.append(f"{start}–{prev}")
            start = prev = s
    if start is not None:
        out.append(f"{start}–{prev}")
    return ", ".join(out)


def render_reference(checks: list[dict], alpha: float) -> str:
    lvl = f"{100 * (1 - alpha):g}%"
    lines = ["### z or t reference (analysis.mixed now uses t with containment df)", "",
             f"The same studies' {lvl} intervals and tests at α = {alpha:g} with the z quantile (as above) and with "
             "the t quantile at the containment df that analysis.mixed reports (images − defenses for the defense "
             "terms). Only studies whose per-study estimates are stored: the earlier run kept counts only.", "",
             "| family | term | true | studies | df (median) | coverage z | coverage t | rejection z | rejection t |",
             "|---|---|---|---|---|---|---|---|---|"]
    for c in checks:
        for r in c["rows"]:
            lines.append(f"| {c['family']} | {r['term']} | {r['true']:g} | {r['n']} | {r['df_median']:g} | "
                         f"{r['cover_z']:.3f} | {r['cover_t']:.3f} | {r['reject_z']:.3f} | {r['reject_t']:.3f} |")
    lines += [""] + [f"{c['family']}: studies {c['ranges']}." for c in checks]
    return "\n".join(lines)


def render(results: list[dict], alpha: float) -> str:
    lvl = f"{100 * (1 - alpha):g}%"
    lines = ["## Mixed model calibration (benchmarks/bench_mixed.py)", "",
             f"Simulated crossed designs (40 participants × 24 trials, random intercepts participant SD 0.8 and "
             f"image SD 0.5, true conditional effects known). Python = `advlegit.analysis.mixed` engine='python' "
             f"(Laplace GLMM); R = lme4::glmer (binomial) / ordinal::clmm (ordinal). Coverage: share of "
             f"studies whose {lvl} interval holds the true effect (its Monte-Carlo SE is about "
             f"{np.sqrt(0.95 * 0.05 / max(r['n_sims'] for r in results)):.3f}). Rejection at α = {alpha:g} "
             f"is the false-positive rate where the true effect is 0, power otherwise.", ""]
    for res in results:
        lines += [f"### {res['family']} ({res['n_sims']} studies; R on {res['r_sims']} of them)", "",
                  f"Python {res['python_s_per_fit']:.2f} s per fit; R {res['r_s_per_fit']:.2f} s per fit (wall, "
                  "machine shared with other jobs)."
                  + (f" {res['parts']}." if res.get("parts") else "")
                  + (" Fewer than 1,000 studies: the run was stopped before the end." if res["n_sims"] < 1000 else "")
                  + (f" R not run: {res['r_reason']}" if res["r_reason"] else ""), "",
                  "| term | true | SE ratio Py/R mean [min, max] "
                  "| SE ratio Py/R (Hessian vcov; median, older runs mean) | max abs. est. diff | "
                  "coverage Py (z) | coverage R | coverage R (Hessian) | rejection Py (z) | rejection R |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for t in res["terms"]:
            g = lambda k, f="{:.3f}": f.format(t[k]) if k in t else "–"  # noqa: B023, E731
            hess = g("se_ratio_hess_median") if "se_ratio_hess_median" in t else g("se_ratio_hess_mean")
            lines.append(f"| {t['term']} | {t['true']:g} | {g('se_ratio_mean')} [{g('se_ratio_min')}, "
                         f"{g('se_ratio_max')}] | {hess} | {g('est_diff_max')} | "
                         f"{g('cover_py')} | {g('cover_r')} | {g('cover_r_hess')} | {g('reject_py')} "
                         f"| {g('reject_r')} |")
        dg = res.get("diagnostics")
        if dg and dg["n"] > 1:
            lines += ["", f"Diagnostics over these {dg['n']} studies ({dg['studies']}): "
                      + "; ".join(f"{t}: mean SE / SD of the estimates {v['se_over_sd_py']:.3f}, "
                                  f"bias {v['bias_py']:+.3f}"
                                  for t, v in dg["terms"].items())
                      + ". Mean estimated random-intercept SDs: "
                      + ", ".join(f"{k.removeprefix('sd_')} {dg['sd_hat'][k]:.3f} (true {dg['sd_true'][k]:g})"
                                  for k in dg["sd_hat"]) + "."]
        if any(t.get("se_ratio_hess_mean", 0) > 1.5 for t in res["terms"]):
            lines.append("")
            lines.append("The Hessian-vcov ratio is a mean over studies; it is dominated by the few studies where "
                         "glmer's finite-difference Hessian was degenerate (tiny SEs; glmer warns that it differs "
                         "from RX). Python's SEs are compared with the RX-based vcov, which analysis.mixed's R "
                         "engine reports.")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-sims", type=int, default=1000)
    ap.add_argument("--r-sims-binomial", type=int, default=1000)
    ap.add_argument("--r-sims-ordinal", type=int, default=100)
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("--families", default="binomial,ordinal")
    ap.add_argument("--seed", type=int, default=1000)
    ap.add_argument("--json", help="also write the raw summary here")
    ap.add_argument("--max-minutes", type=float, default=np.inf,
                    help="stop fitting after this long and report the studies done (the table says how many)")
    ap.add_argument("--raw-dir", help="append each Python fit to <dir>/<family>_py.csv and skip studies "
                    "already there (resumable; run the families as separate processes, then once more with "
                    "--families both to write)")
    ap.add_argument("--first", type=int, default=0, help="fit studies FIRST..N-1 only (continue an earlier run)")
    ap.add_argument("--combine-with", help="a --json file of an earlier run: its R columns are shown beside "
                    "this run's Python results")
    ap.add_argument("--reference-check", help="comma-separated raw dirs: add coverage with z and t reference "
                    "on every study stored there")
    ap.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    ap.add_argument("--render-from", help="comma-separated --json files of earlier runs: combine, write, exit")
    args = ap.parse_args()
    results = []
    if args.render_from:
        for f in args.render_from.split(","):
            results += json.loads(Path(f).read_text())
        args.families = ""
    old = {r["family"]: r for r in json.loads(Path(args.combine_with).read_text())} if args.combine_with else {}
    with tempfile.TemporaryDirectory() as tmp:
        for fam in filter(None, args.families.split(",")):
            first = args.first
            r_sims = args.r_sims_binomial if fam == "binomial" else args.r_sims_ordinal
            results.append(run_family(fam, args.n_sims, r_sims, args.alpha, args.seed, Path(tmp),
                                      deadline=time.time() + 60 * args.max_minutes,
                                      raw=Path(args.raw_dir) / f"{fam}_py.csv" if args.raw_dir else None,
                                      first=first))
            if args.json:
                Path(args.json).write_text(json.dumps(results, indent=1))
    results = [combine(old[r["family"]], r) if r["family"] in old else r for r in results]
    text = render(results, args.alpha)
    if args.reference_check:
        raws = [Path(x) for x in args.reference_check.split(",")]
        checks = [reference_check(fam, [r / f"{fam}_py.csv" for r in raws], args.alpha, args.seed)
                  for fam in ("binomial", "ordinal") if any((r / f"{fam}_py.csv").exists() for r in raws)]
        text += "\n" + render_reference(checks, args.alpha)
    print(text)
    if not args.no_write:
        from _report import write_section
        write_section("bench_mixed", text)


if __name__ == "__main__":
    main()
