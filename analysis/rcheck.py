"""Optional gold-standard cross-check in R: lme4::glmer and ordinal::clmm on the same frame."""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pandas as pd

_GLMER = r"""
suppressPackageStartupMessages(library(lme4))
d <- read.csv("{data}", stringsAsFactors = TRUE)
d$defense <- relevel(factor(d$defense), ref = "{ref}")
m <- glmer(y ~ defense + (1 | participant) + (1 | image), family = binomial, data = d,
           control = glmerControl(calc.derivs = FALSE))
s <- coef(summary(m))
write.csv(data.frame(term = rownames(s), estimate = s[, 1], se = s[, 2]), "{out}", row.names = FALSE)
"""

_CLMM = r"""
suppressPackageStartupMessages(library(ordinal))
d <- read.csv("{data}", stringsAsFactors = TRUE)
d$defense <- relevel(factor(d$defense), ref = "{ref}")
d$y <- factor(d$y, ordered = TRUE)
m <- clmm(y ~ defense + (1 | participant) + (1 | image), data = d)
s <- coef(summary(m))
s <- s[grepl("^defense", rownames(s)), , drop = FALSE]
write.csv(data.frame(term = rownames(s), estimate = s[, 1], se = s[, 2]), "{out}", row.names = FALSE)
"""


def r_available() -> tuple[bool, str]:
    """(usable, reason): Rscript on PATH with lme4 and ordinal installed."""
    exe = shutil.which("Rscript")
    if exe is None:
        return False, "Rscript not found on PATH"
    try:
        res = subprocess.run([exe, "-e", "library(lme4); library(ordinal)"], capture_output=True,
                             text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"Rscript failed to start: {exc}"
    if res.returncode != 0:
        return False, "R packages lme4/ordinal not installed: " + res.stderr.strip().splitlines()[-1]
    return True, exe


def _run(script: str, frame: pd.DataFrame, reference: str, timeout: int) -> pd.DataFrame:
    with tempfile.TemporaryDirectory() as tmp:
        data, out = Path(tmp) / "d.csv", Path(tmp) / "out.csv"
        frame.to_csv(data, index=False)
        code = script.format(data=data.as_posix(), out=out.as_posix(), ref=reference)
        res = subprocess.run(["Rscript", "-e", code], capture_output=True, text=True, timeout=timeout)
        if res.returncode != 0:
            raise RuntimeError(f"R failed: {res.stderr.strip()[-500:]}")
        table = pd.read_csv(out)
    # R names levels 'defense<name>'; match the Python 'defense:<name>' spelling
    table["term"] = table["term"].str.replace(r"^defense", "defense:", regex=True).replace(
        "(Intercept)", "Intercept")
    return table


def glmer(d: pd.DataFrame, outcome: str, reference: str, timeout: int = 600) -> pd.DataFrame:
    frame = pd.DataFrame({"y": d[outcome].astype(int).to_numpy(), "defense": d["defense"].to_numpy(),
                          "participant": d["participant_id"].to_numpy(), "image": d["stimulus_id"].to_numpy()})
    return _run(_GLMER, frame, reference, timeout)


def clmm(d: pd.DataFrame, reference: str, timeout: int = 600) -> pd.DataFrame:
    frame = pd.DataFrame({"y": d["rating"].astype(int).to_numpy(), "defense": d["defense"].to_numpy(),
                          "participant": d["participant_id"].to_numpy(), "image": d["stimulus_id"].to_numpy()})
    return _run(_CLMM, frame, reference, timeout)
