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


class RJob:
    """An Rscript fit running in the background (R uses the second core while Python works)."""

    def __init__(self, script: str, frame: pd.DataFrame, reference: str, timeout: int):
        self._tmp = tempfile.TemporaryDirectory()
        data, self._out = Path(self._tmp.name) / "d.csv", Path(self._tmp.name) / "out.csv"
        frame.to_csv(data, index=False)
        code = script.format(data=data.as_posix(), out=self._out.as_posix(), ref=reference)
        self._timeout = timeout
        self._proc = subprocess.Popen(["Rscript", "-e", code], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE, text=True)

    def result(self) -> pd.DataFrame:
        try:
            _, err = self._proc.communicate(timeout=self._timeout)
            if self._proc.returncode != 0:
                raise RuntimeError(f"R failed: {err.strip()[-500:]}")
            table = pd.read_csv(self._out)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.communicate()
            raise RuntimeError(f"R did not finish within {self._timeout} s") from None
        finally:
            self._tmp.cleanup()
        # R names levels 'defense<name>'; match the Python 'defense:<name>' spelling
        table["term"] = table["term"].str.replace(r"^defense", "defense:", regex=True).replace(
            "(Intercept)", "Intercept")
        return table


def _frame(d: pd.DataFrame, y: pd.Series) -> pd.DataFrame:
    return pd.DataFrame({"y": y.astype(int).to_numpy(), "defense": d["defense"].to_numpy(),
                         "participant": d["participant_id"].to_numpy(), "image": d["stimulus_id"].to_numpy()})


def start_glmer(d: pd.DataFrame, outcome: str, reference: str, timeout: int = 600) -> RJob:
    return RJob(_GLMER, _frame(d, d[outcome]), reference, timeout)


def start_clmm(d: pd.DataFrame, reference: str, timeout: int = 600) -> RJob:
    return RJob(_CLMM, _frame(d, d["rating"]), reference, timeout)


def glmer(d: pd.DataFrame, outcome: str, reference: str, timeout: int = 600) -> pd.DataFrame:
    return start_glmer(d, outcome, reference, timeout).result()


def clmm(d: pd.DataFrame, reference: str, timeout: int = 600) -> pd.DataFrame:
    return start_clmm(d, reference, timeout).result()
