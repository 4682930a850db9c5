"""Generalized linear mixed models with crossed random intercepts, and intervals that are right.

    fit_mixed(d, "target_hit", family="binomial", fixed="defense", reference="normal",
              random=["participant_id", "stimulus_id"], alpha=0.05) -> MixedResult

Two engines, one result type:

* ``"r"``: lme4::glmer (binomial; Laplace, nAGQ = 1) or ordinal::clmm (cumulative logit; Laplace)
  run through Rscript on the same numeric design matrix. The reference implementation.
* ``"python"``: the same Laplace approximation written here: penalized IRLS (Newton) for the joint
  mode of the fixed effects and the spherical random effects v (u = σ v, as in lme4), the
  Laplace deviance -2 log p(y, v̂) + log det(H_vv) minimized over the random-effect SDs with
  L-BFGS-B (σ ≥ 0), and the fixed-effect covariance from the inverse of the joint negative
  Hessian at the mode, i.e. the information of the fixed effects conditional on the estimated
  variances (lme4's ``vcov`` from ``RX``). Crossed factors are handled by eliminating the largest
  factor's diagonal block (a Schur complement), so the dense part is only the other factors plus
  the fixed effects. Used when R is not installed; its agreement with lme4 and its coverage are
  measured in benchmarks/bench_mixed.py (BENCHMARKS.md).

``engine="auto"`` is the Python engine: it agrees with lme4/clmm to within 1-2 % in SE and a few
thousandths of a logit in the estimates (tests/analysis/test_mixed.py checks this on every run where
R is installed), and it fits the whole 100k-response data set in a fraction of glmer's time
(docs/analysis.md, "Mixed model", has the measurements). ``engine="r"`` runs lme4/ordinal itself.
Everything interval-shaped derives from ``alpha``; intervals and p-values use a t reference with
containment degrees of freedom (``containment_df``; the same for both engines). The data are never
subsampled here.
"""
from __future__ import annotations

import logging
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy import linalg, optimize, stats
from scipy.special import expit, log_expit

log = logging.getLogger(__name__)

DEFAULT_RANDOM = ("participant_id", "stimulus_id")
MAX_SE = 10.0  # log-odds; a larger SE means the term is not identified (separation)
MAX_DENSE = 8000  # largest dense block (fixed + all but the largest random factor) for Python


@dataclass
class MixedResult:
    """Fixed effects (``table``), variance components (``random``), provenance (``engine``,
    ``notes``). ``table`` columns: term, estimate (log-odds), se, z, df (containment), p, ci_low, ci_high,
    odds_ratio, or_ci_low, or_ci_high."""
    table: pd.DataFrame
    random: pd.DataFrame
    engine: str
    family: str
    outcome: str
    alpha: float
    nobs: int
    notes: list[str] = field(default_factory=list)
    thresholds: pd.DataFrame | None = None
    converged: bool = True
    subsample: str | None = None  # set by a caller that fitted a subsample; None = all rows
    formula: str = ""

    @property
    def level(self) -> float:
        return 1 - self.alpha

    def summary(self) -> str:
        pct = f"{100 * self.level:g}%"
        lines = [f"Mixed model ({self.family}): {self.formula}",
                 f"engine: {self.engine}; observations: {self.nobs:,}; intervals: {pct} (alpha = {self.alpha:g}), "
                 "t reference with containment df"]
        if self.subsample:
            lines.insert(0, f"SUBSAMPLE: {self.subsample}")
        t = self.table
        lines.append(f"{'term':<28}{'estimate':>10}{'se':>9}{'z':>8}{'p':>9}   OR [{pct} CI]")
        for r in t.itertuples():
            p = "< 0.001" if r.p < 0.001 else f"{r.p:.3f}"
            lines.append(f"{r.term:<28}{r.estimate:>10.3f}{r.se:>9.3f}{r.z:>8.2f}{p:>9}   "
                         f"{r.odds_ratio:.2f} [{r.or_ci_low:.2f}, {r.or_ci_high:.2f}]")
        for r in self.random.itertuples():
            lines.append(f"random intercept {r.factor}: SD {r.sd:.3f} ({r.n_levels} levels)")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


# ---------------------------------------------------------------- design matrix


def _dummies(s: pd.Series, reference: str | None, name: str) -> pd.DataFrame:
    levels = sorted(map(str, s.astype(str).unique()))
    ref = str(reference) if reference is not None and str(reference) in levels else levels[0]
    cats = [ref] + [v for v in levels if v != ref]
    cat = pd.Categorical(s.astype(str), categories=cats)
    out = pd.get_dummies(cat, prefix=name, prefix_sep=":", dtype=float).iloc[:, 1:]
    out.index = s.index
    return out


def design(d: pd.DataFrame, fixed: str | list[str], reference: str | None, intercept: bool
           ) -> tuple[pd.DataFrame, list[str]]:
    """Numeric fixed-effects matrix with constant and collinear columns dropped (each with a note).

    A term is a column of ``d``: numeric columns enter as they are, others are treatment coded;
    the first term's reference level is ``reference`` (other factors: their first level)."""
    terms = [fixed] if isinstance(fixed, str) else list(fixed)
    notes: list[str] = []
    cols = []
    for i, t in enumerate(terms):
        if t not in d.columns:
            raise ValueError(f"fixed term {t!r} is not a column of the data")
        s = d[t]
        if pd.api.types.is_bool_dtype(s) or not pd.api.types.is_numeric_dtype(s):
            cols.append(_dummies(s, reference if i == 0 else None, t))
        else:
            cols.append(s.astype(float).rename(t).to_frame())
    X = pd.concat(cols, axis=1) if cols else pd.DataFrame(index=d.index)
    if intercept:
        X.insert(0, "Intercept", 1.0)
    # constant columns (other than the intercept): std() > 0 is not enough for a float column
    # of one repeated value, so compare the range with the scale
    keep = []
    for c in X.columns:
        v = X[c].to_numpy(float)
        if c != "Intercept" and (np.ptp(v) <= 1e-12 * max(1.0, np.abs(v).max())):
            notes.append(f"dropped fixed-effect column {c!r}: constant in the analysed rows")
        else:
            keep.append(c)
    X = X[keep]
    if X.shape[1]:
        Z = X.to_numpy(float)
        sd = Z.std(0)
        Zs = (Z - np.where(np.array(X.columns) == "Intercept", 0, Z.mean(0))) / np.where(sd > 0, sd, 1)
        _, R, piv = linalg.qr(Zs, mode="economic", pivoting=True)
        diag = np.abs(np.diag(R))
        rank = int((diag > diag[0] * 1e-8).sum()) if len(diag) else 0
        if rank < X.shape[1]:
            # keep columns in their original order, preferring earlier ones: greedy rank check
            chosen: list[int] = []
            for j in range(X.shape[1]):
                trial = chosen + [j]
                if np.linalg.matrix_rank(Zs[:, trial], tol=1e-8 * np.sqrt(len(Zs))) == len(trial):
                    chosen = trial
                else:
                    notes.append(f"dropped fixed-effect column {X.columns[j]!r}: collinear with the columns before it")
            X = X.iloc[:, chosen]
    return X, notes


# ---------------------------------------------------------------- Python Laplace engine


def _groupsum(codes: np.ndarray, q: int, W: np.ndarray) -> np.ndarray:
    """Column sums of W (n x p) within each level of codes: a (q x p) array."""
    if W.ndim == 1:
        return np.bincount(codes, W, q)
    return np.stack([np.bincount(codes, W[:, j], q) for j in range(W.shape[1])], axis=1) if W.shape[1] \
        else np.zeros((q, 0))


def _crosstab(c1: np.ndarray, q1: int, c2: np.ndarray, q2: int, w: np.ndarray) -> sp.csr_matrix:
    """Sum of w over the rows of each (level of c1, level of c2) pair, sparse (q1 x q2)."""
    return sp.csr_matrix((w, (c1, c2)), shape=(q1, q2))  # duplicates are summed


def _chol(S: np.ndarray):
    """Cholesky factor (cho_factor form) of a symmetric positive (semi)definite matrix, with a
    growing ridge when it is numerically singular; None when even that fails."""
    if not np.isfinite(S).all():
        return None
    scale = max(1.0, float(np.abs(np.diag(S)).max())) if len(S) else 1.0
    for ridge in (0.0, 1e-10, 1e-8, 1e-6):
        try:
            return linalg.cho_factor(S + ridge * scale * np.eye(len(S)) if ridge else S, lower=True,
                                     check_finite=False)
        except linalg.LinAlgError:
            continue
    return None


def _fixed_cov(S: np.ndarray, pf: int) -> np.ndarray:
    """The fixed-parameter block of S^-1 (NaN where S is singular)."""
    c = _chol(S)
    if c is None:
        return np.full((pf, pf), np.nan)
    return linalg.cho_solve(c, np.eye(len(S))[:, :pf], check_finite=False)[:pf]


class _Laplace:
    """Laplace-approximate GLMM, binomial (logit) or cumulative logit, crossed random intercepts."""

    def __init__(self, y: np.ndarray, X: np.ndarray, factors: list[np.ndarray], family: str,
                 n_cat: int = 2):
        self.y, self.X, self.family = y, X, family
        self.n, self.k = X.shape
        self.codes = factors
        self.q = [int(c.max()) + 1 for c in factors]
        self.m = len(factors)
        self.K = n_cat
        self.nt = n_cat - 1 if family == "ordinal" else 0  # thresholds
        # eliminate the largest factor (diagonal block); the rest is dense
        self.e = int(np.argmax(self.q)) if self.m else -1
        self.others = [f for f in range(self.m) if f != self.e]
        if family == "ordinal":
            yi = y.astype(int)
            self.hi = yi < n_cat - 1  # has an upper cut
            self.lo = yi > 0
            self.yi = yi
        self.p_fixed = self.nt + self.k
        self.dense_size = self.p_fixed + sum(self.q[f] for f in self.others)
        if self.dense_size > MAX_DENSE:
            raise ValueError(f"Python engine: dense block of {self.dense_size} exceeds {MAX_DENSE}; "
                             "install R with lme4/ordinal (engine='r')")
        self.w = None  # warm start (theta, b, v)

    # per-observation log-likelihood pieces given eta (and thresholds)
    def _obs(self, th: np.ndarray, eta: np.ndarray):
        if self.family == "binomial":
            y = self.y
            ll = (y * log_expit(eta) + (1 - y) * log_expit(-eta)).sum()
            p = expit(eta)
            return ll, y - p, -p * (1 - p), None
        big = 1e6
        cut = np.r_[-big, th, big]
        a = cut[self.yi + 1] - eta
        c = cut[self.yi] - eta
        Fa, Sa, Fc, Sc = expit(a), expit(-a), expit(c), expit(-c)
        fa, fc = Fa * Sa, Fc * Sc
        dfa, dfc = fa * (Sa - Fa), fc * (Sc - Fc)
        # p = F(a) - F(c), from the tail that keeps its digits
        p = np.where(c > 0, Sc - Sa, Fa - Fc)
        p = np.maximum(p, 1e-300)
        la, lc = fa / p, -fc / p
        Haa = dfa / p - la ** 2
        Hcc = -dfc / p - lc ** 2
        Hac = -la * lc
        ll = np.log(p).sum()
        g_eta = -(la + lc)
        h_eta = Haa + 2 * Hac + Hcc
        return ll, g_eta, h_eta, (la, lc, Haa, Hcc, Hac)

    def _unpack(self, w):
        th = w[:self.nt]
        b = w[self.nt:self.p_fixed]
        vs, o = [], self.p_fixed
        for q in self.q:
            vs.append(w[o:o + q])
            o += q
        return th, b, vs

    def _eta(self, b, vs, sig):
        eta = self.X @ b
        for f in range(self.m):
            eta = eta + sig[f] * vs[f][self.codes[f]]
        return eta

    def _objective(self, w, sig):
        th, b, vs = self._unpack(w)
        if self.nt and np.any(np.diff(th) <= 0):
            return -np.inf, None
        eta = self._eta(b, vs, sig)
        ll, g, h, extra = self._obs(th, eta)
        Q = ll - 0.5 * sum(float(v @ v) for v in vs)
        return Q, (th, b, vs, g, h, extra)

    def _system(self, sig, parts):
        """Gradient of Q and the pieces of N = -Hessian: diagonal D of the eliminated factor,
        B (its coupling to the dense rest), R (the dense rest)."""
        th, b, vs, g, h, extra = parts
        X, nt, _k = self.X, self.nt, self.k
        negh = -h
        # fixed gradient / hessian
        gb = X.T @ g
        Xw = X * negh[:, None]
        Rff_b = X.T @ Xw
        if nt:
            la, lc, Haa, Hcc, Hac = extra
            yi, _K = self.yi, self.K
            gth = np.bincount(yi[self.hi], la[self.hi], nt) + np.bincount(yi[self.lo] - 1, lc[self.lo], nt)
            Hth = np.zeros((nt, nt))
            Hth[np.diag_indices(nt)] = -(np.bincount(yi[self.hi], Haa[self.hi], nt)
                                         + np.bincount(yi[self.lo] - 1, Hcc[self.lo], nt))
            both = self.hi & self.lo
            off = -np.bincount(yi[both], Hac[both], nt)  # N[theta_j, theta_{j-1}], obs in category j
            for j in range(1, nt):
                Hth[j, j - 1] = Hth[j - 1, j] = off[j]
            # cross theta-eta (of Q): T[i, y] = -(Haa+Hac), T[i, y-1] = -(Hac+Hcc); N = -that
            rows = np.r_[np.nonzero(self.hi)[0], np.nonzero(self.lo)[0]]
            colsT = np.r_[yi[self.hi], yi[self.lo] - 1]
            vals = np.r_[(Haa + Hac)[self.hi], (Hac + Hcc)[self.lo]]  # = -(d2Q/dth deta)
            T = (rows, colsT, vals)
            Nthb = _groupsum(colsT, nt, X[rows] * vals[:, None])  # N_theta,b = T.X (nt x k)
            gfix = np.r_[gth, gb]
            Rff = np.zeros((self.p_fixed, self.p_fixed))
            Rff[:nt, :nt] = Hth
            Rff[:nt, nt:] = Nthb
            Rff[nt:, :nt] = Nthb.T
            Rff[nt:, nt:] = Rff_b
        else:
            T = None
            gfix = gb
            Rff = Rff_b
        # random parts
        gv, Dv, Fv = [], [], []  # gradient, diagonal of N_vv, N_fixed,v (p_fixed x q)
        for f in range(self.m):
            cf, q = self.codes[f], self.q[f]
            s = sig[f]
            gv.append(s * np.bincount(cf, g, q) - vs[f])
            Dv.append(s * s * np.bincount(cf, negh, q) + 1.0)
            Fb = s * _groupsum(cf, q, Xw).T  # k x q
            if nt:
                rows, colsT, vals = T
                Fth = s * np.bincount(colsT * q + cf[rows], vals, nt * q).reshape(nt, q)  # nt x q
                Fv.append(np.vstack([Fth, Fb]))
            else:
                Fv.append(Fb)
        return gfix, Rff, gv, Dv, Fv, negh

    def _schur(self, sig, gfix, Rff, gv, Dv, Fv, negh):
        """Dense Schur complement S of the eliminated factor, the right-hand side, and helpers."""
        e, others = self.e, self.others
        sizes = [self.p_fixed] + [self.q[f] for f in others]
        offs = np.r_[0, np.cumsum(sizes)]
        r = int(offs[-1])
        R = np.zeros((r, r))
        R[:self.p_fixed, :self.p_fixed] = Rff
        grest = np.zeros(r)
        grest[:self.p_fixed] = gfix
        # B: (q_e x r) coupling of the eliminated factor with the rest, sparse in the factor part
        Be_fixed = Fv[e].T if e >= 0 else None  # q_e x p_fixed
        Be_other = []
        for j, f in enumerate(others):
            o0, o1 = offs[j + 1], offs[j + 2]
            R[o0:o1, o0:o1][np.diag_indices(self.q[f])] = Dv[f]
            R[:self.p_fixed, o0:o1] = Fv[f]
            R[o0:o1, :self.p_fixed] = Fv[f].T
            grest[o0:o1] = gv[f]
            for j2, f2 in enumerate(others):
                if f2 <= f:
                    continue
                p0, p1 = offs[j2 + 1], offs[j2 + 2]
                C = (sig[f] * sig[f2]) * _crosstab(self.codes[f], self.q[f], self.codes[f2], self.q[f2],
                                                   negh).toarray()
                R[o0:o1, p0:p1] = C
                R[p0:p1, o0:o1] = C.T
            if e >= 0:
                Be_other.append((sig[e] * sig[f]) * _crosstab(self.codes[e], self.q[e], self.codes[f],
                                                              self.q[f], negh))
        if e < 0:
            return R, grest, None, None, None, offs
        De = Dv[e]
        Bdense = Be_fixed  # q_e x p_fixed
        Bsp = sp.hstack(Be_other).tocsr() if Be_other else None  # q_e x (r - p_fixed)
        Dinv = 1.0 / De
        S = R.copy()
        pf = self.p_fixed
        S[:pf, :pf] -= Bdense.T @ (Bdense * Dinv[:, None])
        if Bsp is not None:
            DB = Bsp.multiply(Dinv[:, None]).tocsr()
            cross = np.asarray(DB.T @ Bdense)  # (r-pf) x pf
            S[pf:, :pf] -= cross
            S[:pf, pf:] -= cross.T
            S[pf:, pf:] -= np.asarray((Bsp.T @ DB).todense())
        rhs = grest.copy()
        rhs[:pf] -= Bdense.T @ (Dinv * gv[e])
        if Bsp is not None:
            rhs[pf:] -= Bsp.T @ (Dinv * gv[e])
        return S, rhs, De, Bdense, Bsp, offs

    def _newton(self, sig, w0, tol=1e-9, maxit=100, fixed_free=True):
        w = w0.copy()
        Q, parts = self._objective(w, sig)
        for it in range(maxit):  # noqa: B007
            gfix, Rff, gv, Dv, Fv, negh = self._system(sig, parts)
            if not fixed_free:  # mode of v given the fixed parameters: freeze their rows
                gfix = np.zeros_like(gfix)
                Rff = np.eye(len(Rff))
                Fv = [np.zeros_like(F) for F in Fv]
            S, rhs, De, Bd, Bsp, offs = self._schur(sig, gfix, Rff, gv, Dv, Fv, negh)
            cS = _chol(S)
            if cS is None:
                break
            drest = linalg.cho_solve(cS, rhs, check_finite=False)
            # assemble the full step in w's order: theta, b, v_0..v_{m-1}
            step = np.zeros_like(w)
            pf = self.p_fixed
            step[:pf] = drest[:pf]
            voff = np.r_[pf, pf + np.cumsum(self.q)]
            for j, f in enumerate(self.others):
                step[voff[f]:voff[f + 1]] = drest[offs[j + 1]:offs[j + 2]]
            if self.e >= 0:
                e = self.e
                t = gv[e] - Bd @ drest[:pf]
                if Bsp is not None:
                    t = t - Bsp @ drest[pf:]
                step[voff[e]:voff[e + 1]] = t / De
            grad = np.r_[gfix, np.concatenate(gv)] if self.m else gfix
            dec = float(grad @ step)  # Newton decrement (squared)
            t_ = 1.0
            while True:
                wn = w + t_ * step
                Qn, pn = self._objective(wn, sig)
                if (np.isfinite(Qn) and Qn >= Q - 1e-12 * abs(Q)) or t_ < 1e-8:
                    break
                t_ /= 2
            if not (np.isfinite(Qn) and Qn >= Q - 1e-12 * abs(Q)):  # no progress
                break
            w, Q, parts = wn, Qn, pn
            if dec < tol or np.abs(w[:self.p_fixed]).max() > 50:  # converged, or diverging (separation)
                break
        # final system at the mode
        gfix, Rff, gv, Dv, Fv, negh = self._system(sig, parts)
        S, rhs, De, Bd, Bsp, offs = self._schur(sig, gfix, Rff, gv, Dv, Fv, negh)
        return w, Q, S, De, offs, it + 1

    def deviance(self, sig, w0=None, fixed_free=True, store=True):
        if w0 is None:
            w0 = self.w if self.w is not None else self._start()
        w, Q, S, De, offs, _ = self._newton(np.asarray(sig, float), w0, fixed_free=fixed_free)
        if not (np.isfinite(Q) and np.isfinite(S).all()):
            return 1e12, (w, S)
        if store:
            self.w = w
        pf = self.p_fixed
        logdet = float(np.log(De).sum()) if self.e >= 0 else 0.0
        if len(S) > pf:
            Soo = S[pf:, pf:]
            c = _chol(Soo)
            if c is None:
                return 1e12, (w, S)
            logdet += 2 * float(np.log(np.diag(c[0])).sum())
        return -2 * Q + logdet, (w, S)

    def _start(self):
        w = np.zeros(self.p_fixed + sum(self.q))
        if self.nt:
            # thresholds at the marginal cumulative logits
            cum = np.cumsum(np.bincount(self.yi, minlength=self.K))[:-1] / self.n
            cum = np.clip(cum, 1e-4, 1 - 1e-4)
            th = np.log(cum / (1 - cum))
            th = np.maximum.accumulate(th + np.arange(self.nt) * 1e-3)
            w[:self.nt] = th
        elif self.family == "binomial" and self.k:
            ybar = np.clip(self.y.mean(), 1e-3, 1 - 1e-3)
            if np.allclose(self.X[:, 0], 1.0):
                w[0] = np.log(ybar / (1 - ybar))
        return w

    def _laplace_step(self, sig, w, S):
        """One Newton step from the joint mode towards the maximum of the Laplace likelihood in the
        fixed parameters (lme4's nAGQ = 1 stage): at the joint mode the gradient of the deviance
        in the fixed parameters is that of log det H_vv only (finite differences, v re-solved)."""
        pf = self.p_fixed
        V = _fixed_cov(S, pf)
        if not np.isfinite(V).all():
            return w, S
        h = 1e-4 * np.sqrt(np.clip(np.diag(V), 1e-12, None)) / max(np.sqrt(np.diag(V)).mean(), 1e-12)
        h = np.maximum(h, 1e-5)
        f0 = self._logdet_at(sig, w)
        grad = np.zeros(pf)
        for j in range(pf):
            wj = w.copy()
            wj[j] += h[j]
            grad[j] = (self._logdet_at(sig, wj) - f0) / h[j]
        step = -0.5 * (V @ grad)
        w1 = w.copy()
        w1[:pf] += step
        if self.nt and np.any(np.diff(w1[:self.nt]) <= 0):
            return w, S
        _, (w1, S1) = self.deviance(sig, w0=w1, fixed_free=False, store=False)
        return w1, S1

    def _logdet_at(self, sig, w):
        """Laplace deviance with the fixed parameters held at w's and v at its conditional mode."""
        return self.deviance(sig, w0=w, fixed_free=False, store=False)[0]

    def fit(self):
        notes = []
        if self.m == 0:
            dev, (w, S) = self.deviance(np.zeros(0))
            sig = np.zeros(0)
            ok = True
        else:
            x0 = np.full(self.m, 0.5)
            def f(s):
                return self.deviance(s)[0]
            res = optimize.minimize(f, x0, method="L-BFGS-B", bounds=[(0.0, 10.0)] * self.m,
                                    options={"maxiter": 200, "ftol": 1e-10, "gtol": 1e-6, "eps": 1e-5})
            sig = res.x
            ok = bool(res.success)
            if not ok:
                notes.append(f"Python engine: variance optimizer did not report convergence ({res.message})")
            dev, (w, S) = self.deviance(sig)
            w, S = self._laplace_step(sig, w, S)
        pf = self.p_fixed
        V = _fixed_cov(S, pf)
        return w[:pf], V, sig, dev, ok, notes


# ---------------------------------------------------------------- R engine

_R_COMMON = r"""
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1], stringsAsFactors = FALSE)
meta <- readLines(args[2])
xs <- strsplit(meta[1], ",")[[1]]
rs <- strsplit(meta[2], ",")[[1]]
for (r in rs) d[[r]] <- factor(d[[r]])
msgs <- character(0)
keep <- function(w) { msgs <<- c(msgs, conditionMessage(w)); invokeRestart("muffleWarning") }
"""

_R_GLMER = _R_COMMON + r"""
suppressPackageStartupMessages(library(lme4))
f <- as.formula(paste("y ~ 0 +", paste(xs, collapse = " + "), "+",
                      paste0("(1 | ", rs, ")", collapse = " + ")))
m <- withCallingHandlers(glmer(f, family = binomial, data = d,
        control = glmerControl(calc.derivs = FALSE)), warning = keep)
s <- coef(summary(m))
write.csv(data.frame(term = rownames(s), estimate = s[, 1], se = s[, 2]), args[3], row.names = FALSE)
vc <- as.data.frame(VarCorr(m))
write.csv(data.frame(factor = vc$grp, sd = vc$sdcor), args[4], row.names = FALSE)
msgs <- c(msgs, m@optinfo$conv$lme4$messages)
if (isSingular(m)) msgs <- c(msgs, "singular fit (a variance component is estimated as 0)")
writeLines(c(paste("lme4", as.character(packageVersion("lme4")), "glmer Laplace (nAGQ=1), vcov from RX"),
             unique(msgs)), args[5])
"""

_R_CLMM = _R_COMMON + r"""
suppressPackageStartupMessages(library(ordinal))
d$y <- factor(d$y, ordered = TRUE)
rhs <- paste(c(xs, paste0("(1 | ", rs, ")")), collapse = " + ")
f <- as.formula(paste("y ~", rhs))
m <- withCallingHandlers(clmm(f, data = d, link = "logit", threshold = "flexible"), warning = keep)
s <- coef(summary(m))
write.csv(data.frame(term = rownames(s), estimate = s[, 1], se = s[, 2]), args[3], row.names = FALSE)
vc <- VarCorr(m)
write.csv(data.frame(factor = names(vc), sd = sapply(vc, function(v) sqrt(v[1, 1]))), args[4], row.names = FALSE)
if (!is.null(m$optRes$convergence) && m$optRes$convergence != 0) msgs <- c(msgs, "clmm optimizer did not converge")
writeLines(c(paste("ordinal", as.character(packageVersion("ordinal")), "clmm Laplace"), unique(msgs)), args[5])
"""


def r_available() -> tuple[bool, str]:
    from advlegit.analysis.rcheck import r_available as _ra
    return _ra()


_R_OK: tuple[bool, str] | None = None


def _r_ok() -> bool:
    global _R_OK
    if _R_OK is None:
        _R_OK = r_available()
    return _R_OK[0]


def _fit_r(y, X: pd.DataFrame, factors: dict[str, np.ndarray], family: str, timeout: int):
    names = [f"x{i}" for i in range(X.shape[1])]
    rnames = [f"r{i}" for i in range(len(factors))]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        frame = pd.DataFrame(X.to_numpy(float), columns=names)
        frame.insert(0, "y", y)
        for rn, c in zip(rnames, factors.values(), strict=True):
            frame[rn] = np.char.add("L", c.astype(str))
        frame.to_csv(tmp / "d.csv", index=False, float_format="%.17g")
        (tmp / "meta.txt").write_text(",".join(names) + "\n" + ",".join(rnames) + "\n")
        script = tmp / "fit.R"
        script.write_text(_R_GLMER if family == "binomial" else _R_CLMM)
        out = [tmp / "coef.csv", tmp / "vc.csv", tmp / "info.txt"]
        res = subprocess.run(["Rscript", str(script), str(tmp / "d.csv"), str(tmp / "meta.txt"),
                              *map(str, out)], capture_output=True, text=True, timeout=timeout)
        if res.returncode != 0:
            raise RuntimeError("R failed: " + res.stderr.strip()[-800:])
        coef = pd.read_csv(out[0])
        vc = pd.read_csv(out[1])
        info = out[2].read_text().splitlines()
    back = dict(zip(names, X.columns, strict=True))
    coef["term"] = coef["term"].map(lambda t: back.get(t, t))
    vc["factor"] = vc["factor"].map(dict(zip(rnames, factors.keys(), strict=True)))
    return coef, vc, info[0], [line for line in info[1:] if line.strip()]


# ---------------------------------------------------------------- public API


def fit_mixed(d: pd.DataFrame, outcome: str, *, family: str = "binomial",
              fixed: str | list[str] = "defense", reference: str | None = None,
              random: list[str] | tuple[str, ...] = DEFAULT_RANDOM, alpha: float = 0.05,
              engine: str = "auto", timeout: int = 1800) -> MixedResult:
    """Fit ``outcome ~ fixed + (1|random[0]) + (1|random[1]) + ...`` on every row of ``d``.

    family: "binomial" (outcome 0/1 or bool; logit link) or "ordinal" (cumulative logit with
    flexible thresholds; outcome integer categories, e.g. ratings 1..7). Estimates are on the
    log-odds scale; for "ordinal" a positive estimate means higher categories."""
    if family not in ("binomial", "ordinal"):
        raise ValueError("family must be 'binomial' or 'ordinal'")
    if not 0 < alpha < 1:
        raise ValueError("alpha must be in (0, 1)")
    if engine not in ("auto", "r", "python"):
        raise ValueError("engine must be 'auto', 'r' or 'python'")
    terms = [fixed] if isinstance(fixed, str) else list(fixed)
    random = list(random)
    notes: list[str] = []
    cols = [outcome, *terms, *random]
    missing = [c for c in cols if c not in d.columns]
    if missing:
        raise ValueError(f"columns not in the data: {missing}")
    ok = d[cols].notna().all(axis=1)
    if (~ok).any():
        notes.append(f"{int((~ok).sum()):,} rows with a missing value in {cols} left out")
    d = d.loc[ok]
    if len(d) == 0:
        raise ValueError("no rows to fit")
    # outcome
    if family == "binomial":
        y = d[outcome].astype(float).to_numpy()
        if not np.isin(y, (0.0, 1.0)).all():
            raise ValueError(f"{outcome} must be 0/1 for family='binomial'")
        n_cat = 2
        cats = None
    else:
        cats = np.sort(d[outcome].unique())
        y = np.searchsorted(cats, d[outcome].to_numpy()).astype(float)
        n_cat = len(cats)
        if n_cat < 2:
            raise ValueError(f"{outcome} has fewer than two categories")
        if n_cat == 2:
            notes.append(f"{outcome} has two categories only: the cumulative logit is a logit")
    X, dn = design(d, terms, reference, intercept=(family == "binomial"))
    notes += dn
    factors: dict[str, np.ndarray] = {}
    for r in random:
        c = pd.factorize(d[r])[0]
        nl = int(c.max()) + 1
        if nl < 2:
            notes.append(f"random intercept {r!r} dropped: one level only")
            continue
        if nl == len(d):
            notes.append(f"random intercept {r!r} dropped: one row per level (not identifiable for a binary outcome)")
            continue
        factors[r] = c
    formula = (f"{outcome} ~ {' + '.join(terms)}" + "".join(f" + (1|{r})" for r in factors)
               + ("" if family == "binomial" else "  [cumulative logit]"))
    use_r = engine == "r"
    if use_r and not _r_ok():
        raise RuntimeError(f"engine='r' but R is not usable: {_R_OK[1] if _R_OK else ''}")
    thresholds = None
    converged = True
    if use_r:
        coef, vc, eng, msgs = _fit_r(y.astype(int), X, factors, family, timeout)
        notes += [f"R: {m}" for m in msgs]
        converged = not any("converge" in m.lower() and "singular" not in m.lower() for m in msgs)
        if family == "ordinal":
            thr_mask = ~coef["term"].isin(X.columns)
            thresholds = coef.loc[thr_mask].reset_index(drop=True)
            if len(thresholds) == n_cat - 1:  # R saw category codes 0..K-1: name them by the data's labels
                thresholds["term"] = [f"{cats[j]}|{cats[j + 1]}" for j in range(n_cat - 1)]
            coef = coef.loc[~thr_mask]
        coef = coef.set_index("term").reindex(X.columns).reset_index()
        est, se = coef["estimate"].to_numpy(float), coef["se"].to_numpy(float)
        sds = vc.set_index("factor")["sd"].reindex(list(factors)).to_numpy(float)
        engine_name = f"R {eng}"
    else:
        model = _Laplace(y, X.to_numpy(float), list(factors.values()), family, n_cat)
        w, V, sig, dev, converged, pn = model.fit()
        notes += pn
        nt = model.nt
        est = w[nt:]
        se = np.sqrt(np.clip(np.diag(V)[nt:], 0, None))
        if nt:
            lab = [f"{cats[j]}|{cats[j + 1]}" for j in range(nt)]
            thresholds = pd.DataFrame({"term": lab, "estimate": w[:nt],
                                       "se": np.sqrt(np.clip(np.diag(V)[:nt], 0, None))})
        sds = sig
        engine_name = ("Python Laplace GLMM (analysis.mixed, penalized IRLS + profiled variances, "
                       "vcov conditional on the variances)")
        for f_, s_ in zip(factors, sig, strict=True):
            if s_ < 1e-4:
                notes.append(f"random intercept {f_!r}: variance estimated as 0 (singular fit)")
    # absurd standard errors: not identified (separation); never printed as numbers
    bad = ~np.isfinite(se) | (se > MAX_SE) | ~np.isfinite(est)
    for t in np.asarray(X.columns)[bad]:
        notes.append(f"term {t!r} is not identified (separation or near-empty cell: SE > {MAX_SE:g} "
                     "log-odds); estimate and interval not reported")
    est = np.where(bad, np.nan, est)
    se = np.where(bad, np.nan, se)
    table = tidy(list(X.columns), est, se, alpha, df=containment_df(X, factors, len(d), family))
    rnd = pd.DataFrame({"factor": list(factors), "n_levels": [int(c.max()) + 1 for c in factors.values()],
                        "sd": sds, "variance": np.asarray(sds) ** 2})
    return MixedResult(table=table, random=rnd, engine=engine_name, family=family, outcome=outcome,
                       alpha=alpha, nobs=len(d), notes=notes, thresholds=thresholds,
                       converged=bool(converged), formula=formula)


def containment_df(X: pd.DataFrame, factors: dict[str, np.ndarray], nobs: int, family: str) -> np.ndarray:
    """Denominator degrees of freedom per fixed-effect column by the containment rule (as SAS PROC
    GLIMMIX's default DDFM=CONTAIN): a column that is constant within every level of a random factor
    varies only between that factor's levels, so its information comes from those levels, not from the
    rows. For a defense whose images each belong to one defense that is the image factor: df = number of
    images - rank of the between-image columns (with the intercept, or the thresholds that stand for it
    in the ordinal model). The smallest such df over the factors containing the column; a column no
    factor contains gets the residual df, rows - rank(X) - sum(levels - 1) (at least 1)."""
    A = X.to_numpy(float)
    if family == "ordinal":  # the thresholds act as the intercept
        A = np.column_stack([np.ones(len(A)), A])
    k = A.shape[1]
    resid = max(1.0, float(nobs - np.linalg.matrix_rank(A) - sum(int(c.max()) for c in factors.values())))
    df = np.full(X.shape[1], resid)
    off = k - X.shape[1]
    for codes in factors.values():
        q = int(codes.max()) + 1
        lo, hi = np.full((q, k), np.inf), np.full((q, k), -np.inf)
        np.minimum.at(lo, codes, A)
        np.maximum.at(hi, codes, A)
        between = np.all(hi - lo < 1e-12, axis=0)  # constant within every level
        if not between[off:].any():
            continue
        agg = lo[:, between]  # the level-wise values of the between columns
        dfF = max(1.0, float(q - np.linalg.matrix_rank(agg)))
        df = np.where(between[off:], np.minimum(df, dfF), df)
    return df


def tidy(terms: list[str], est: np.ndarray, se: np.ndarray, alpha: float,
         df: np.ndarray | None = None) -> pd.DataFrame:
    """Wald table at level 1 - alpha: t reference with ``df`` (containment df) where given, else z."""
    if df is None:
        crit, sf = stats.norm.ppf(1 - alpha / 2), stats.norm.sf
        df = np.full(len(terms), np.nan)  # z reference: no df
    else:
        df = np.asarray(df, float)
        crit, sf = stats.t.ppf(1 - alpha / 2, df), (lambda x: stats.t.sf(x, df))
    with np.errstate(divide="ignore", invalid="ignore"):
        zs = est / se
    lo, hi = est - crit * se, est + crit * se
    return pd.DataFrame({"term": terms, "estimate": est, "se": se, "z": zs, "df": df,
                         "p": 2 * sf(np.abs(zs)), "ci_low": lo, "ci_high": hi,
                         "odds_ratio": np.exp(est), "or_ci_low": np.exp(lo), "or_ci_high": np.exp(hi)})
