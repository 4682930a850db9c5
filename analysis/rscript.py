"""`analysis.R` beside every report: an R script that reads the exported CSV, applies the report's exclusion
rules in the same order, and refits the report's primary models (glm / lm: the same point estimates; the
report's cluster-robust SEs need the sandwich package) and its mixed models (lme4::glmer for identify,
ordinal::clmm for rate), so a reviewer can rerun the analysis in R.

The script is generated from what the report did (the configured exclusion list, each task's reference
defense, contrasts and covariates), not re-derived, so the two cannot disagree on a choice.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from advlegit.analysis.config import AnalysisConfig
from advlegit.contracts import exclusion_rules

ADVERSARIAL_RULE = ('kind <- trimws(x$stimulus_kind); kind[is.na(kind) | kind %in% c("", "nan", "None")] <- '
                    '"adversarial"')


def _r(value: Any) -> str:
    """An R literal: strings quoted (JSON escapes are R escapes), numbers as Python writes them."""
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    return repr(float(value))


def _vec(values: list[str]) -> str:
    return "c(" + ", ".join(_r(v) for v in values) + ")"


HEAD = r'''# analysis.R: written by `advlegit analyze` beside report.html. It reads the exported CSV, applies the
# report's exclusion rules in the same order, and refits the report's primary models (same point
# estimates; the report's cluster-robust standard errors need the sandwich package) and its mixed models
# with lme4 (identify: glmer, binomial) and ordinal (rate: clmm), so the report can be checked in R.
#
#   Rscript analysis.R [EXPORT.csv] [OUTDIR]
#
# EXPORT.csv: the CSV export (`advlegit export --study ID -o FILE.csv`); default: the file the report read.
# OUTDIR (optional): where to write exclusions.csv and fixed_effects.csv.
suppressPackageStartupMessages({
  library(lme4)
  library(ordinal)
})
args <- commandArgs(trailingOnly = TRUE)
export <- if (length(args) >= 1) args[[1]] else __EXPORT__
outdir <- if (length(args) >= 2) args[[2]] else ""
if (grepl("\\.(jsonl|ndjson|json)$", export, ignore.case = TRUE))
  stop("analysis.R reads the CSV export; write one with `advlegit export --study ID -o FILE.csv`")
d <- read.csv(export, colClasses = "character", na.strings = character(0), check.names = FALSE)
flag <- function(x) !is.na(x) & tolower(x) %in% c("true", "1", "yes", "t")
num <- function(x) suppressWarnings(as.numeric(ifelse(is.na(x) | x == "", NA, x)))
need <- function(rule, cols) {
  for (col in cols) if (!(col %in% names(d)) || all(is.na(d[[col]]) | d[[col]] == ""))
    stop(sprintf("exclusion rule %s needs the export column %s, which this export lacks or leaves empty", rule, col))
}
per_participant <- function(col) {  # a per-participant column, repeated on each of their rows
  tapply(num(d[[col]]), d$participant_id, function(v) v[!is.na(v)][1])
}
adversarial <- function(x) {
  if (!("stimulus_kind" %in% names(x))) return(x)
  __ADVERSARIAL__
  x[kind == "adversarial", , drop = FALSE]
}

# ---- exclusions, in the report's order --------------------------------------------------------------
main <- d[d$trial_kind == "main" & !flag(d$is_attention_check), , drop = FALSE]
keep <- main
n_people <- function(x) length(unique(x$participant_id))
exclusions <- data.frame(rule = "all main-trial responses in the export", criterion = "",
                         participants_removed = 0L, responses_removed = 0L,
                         participants_left = n_people(main), responses_left = nrow(main))
drop_rows <- function(rule, criterion, remove) {
  remove <- remove & !is.na(remove)
  before <- n_people(keep)
  keep <<- keep[!remove, , drop = FALSE]
  exclusions <<- rbind(exclusions, data.frame(
    rule = rule, criterion = criterion, participants_removed = before - n_people(keep),
    responses_removed = sum(remove), participants_left = n_people(keep), responses_left = nrow(keep)))
}
drop_rows("marked excluded in the app", "participant_review == excluded or state excluded",
          tolower(keep$participant_review) %in% "excluded" | keep$participant_state %in% "excluded")
drop_rows("incomplete participant", __COMPLETE_TEXT__, !(keep$participant_state %in% __COMPLETE__))
if ("response_timed_out" %in% names(keep) && any(flag(keep$response_timed_out))) {
  drop_rows("no answer within the response window", "response_timed_out", flag(keep$response_timed_out))
}
'''

RULES_R = {
    "attention_checks": '''checks <- d[flag(d$is_attention_check), , drop = FALSE]
pass_rate <- tapply(flag(checks$attention_passed), checks$participant_id, mean)
drop_rows({label}, {criterion}, keep$participant_id %in% names(pass_rate)[pass_rate < {min_pass_rate}])''',
    "rt_floor": '''rt <- num(keep$rt_ms)
drop_rows({label}, {criterion}, !is.na(rt) & rt < {ms})''',
    "instruction_time": '''need("instruction_time", "instructions_ms")
v <- per_participant("instructions_ms")
drop_rows({label}, {criterion}, keep$participant_id %in% names(v)[!is.na(v) & v < {min_s} * 1000])''',
    "total_time": '''need("total_time", "session_ms")
v <- per_participant("session_ms")
drop_rows({label}, {criterion}, keep$participant_id %in%
          names(v)[!is.na(v) & (v < {min_s} * 1000 | v > {max_s} * 1000)])''',
    "straight_lining": '''answered <- main[!is.na(main$response) & main$response != "", , drop = FALSE]
share <- tapply(answered$response, answered$participant_id, function(r) max(table(r)) / length(r))
drop_rows({label}, {criterion}, keep$participant_id %in% names(share)[share > {max_share}])''',
    "focus_loss": '''need("focus_loss", "focus_lost")
drop_rows({label}, {criterion}, flag(keep$focus_lost))''',
    "exposure_timing": '''need("exposure_timing", c("exposure_ms_requested", "exposure_ms_measured", "refresh_hz"))
req <- num(keep$exposure_ms_requested); got <- num(keep$exposure_ms_measured); hz <- num(keep$refresh_hz)
drop_rows({label}, {criterion}, !is.na(req) & req > 0 &
          (is.na(got) | is.na(hz) | abs(got - req) > {max_miss_frames} * 1000 / hz + 0.5))''',
}

MODELS_HEAD = r'''if (nrow(keep) == 0) stop("every main-trial response was excluded")
cat("Exclusions (each row counts what that rule removed from what the earlier rules left):\n")
print(exclusions, row.names = FALSE)

# ---- models ------------------------------------------------------------------------------------------
fixed_effects <- data.frame()
tidy <- function(s, task, model, contrast) {
  term <- sub("^defense", "defense:", rownames(s))
  term[term == "(Intercept)"] <- "Intercept"
  data.frame(task = task, model = model, contrast = contrast, term = term, estimate = s[, 1], se = s[, 2],
             row.names = NULL)
}
add <- function(s, task, model, contrast = "") {
  fixed_effects <<- rbind(fixed_effects, tidy(s, task, model, contrast))
  cat(sprintf("\n%s, %s%s:\n", task, model, if (contrast == "") "" else paste0(" (", contrast, ")")))
  print(s)
}
robust <- function(fit, x) {  # the report clusters by participant and (source, target) group
  if (!requireNamespace("sandwich", quietly = TRUE)) return(coef(summary(fit)))
  cl <- if (all(x$group != "") && length(unique(x$group)) > 1) ~ participant_id + group else ~ participant_id + stimulus_id
  s <- coef(summary(fit))
  s[, 2] <- sqrt(diag(sandwich::vcovCL(fit, cluster = cl, data = x)))
  s
}
'''


def _task_block(task: str, summary: dict, cfg: AnalysisConfig) -> str:
    ref = (summary.get("reference") or {}).get(task, "")
    rows = (summary.get("primary") or {}).get(task) or []
    out = []
    if task == "identify":
        out.append('x <- adversarial(keep[keep$task_type == "identify", , drop = FALSE])')
        for row in rows:
            a, b = row["contrast"].split(" vs ", 1)
            adj = "norm_l2" in str(row.get("adjusted_for", ""))
            out.append(f'''xx <- x; xx$y <- as.numeric(flag(xx[[{_r(row["outcome"])}]])); xx$defense <- relevel(factor(xx$defense), ref = {_r(b)})
{"xx$norm_l2 <- num(xx$norm_l2); xx <- xx[!is.na(xx$norm_l2), , drop = FALSE]" if adj else ""}
fit <- glm(y ~ defense{" + norm_l2" if adj else ""}, family = binomial, data = xx)
add(robust(fit, xx), "identify", "primary: logit {row["outcome"]}", {_r(row["contrast"])})''')
        if cfg.mixed_model:
            out.append(f'''x$y <- as.numeric(flag(x$target_hit)); x$defense <- relevel(factor(x$defense), ref = {_r(ref)})
use_group <- all(x$group != "") && length(unique(x$group)) > 1  # the report's rule for a (1 | group) term
form <- if (use_group) y ~ defense + (1 | participant_id) + (1 | stimulus_id) + (1 | group) else
  y ~ defense + (1 | participant_id) + (1 | stimulus_id)
m <- glmer(form, family = binomial, data = x, control = glmerControl(calc.derivs = FALSE))
add(coef(summary(m)), "identify", "mixed: glmer target_hit")''')
    elif task == "rate":
        out.append('x <- adversarial(keep[keep$task_type == "rate", , drop = FALSE]); x$rating <- num(x$rating)\n'
                   'x <- x[!is.na(x$rating), , drop = FALSE]')
        for row in rows:
            a, b = row["contrast"].split(" vs ", 1)
            adj = "norm_l2" in str(row.get("adjusted_for", ""))
            out.append(f'''xx <- x; xx$defense <- relevel(factor(xx$defense), ref = {_r(b)})
{"xx$norm_l2 <- num(xx$norm_l2); xx <- xx[!is.na(xx$norm_l2), , drop = FALSE]" if adj else ""}
fit <- lm(rating ~ defense{" + norm_l2" if adj else ""}, data = xx)
add(robust(fit, xx), "rate", "primary: least squares rating", {_r(row["contrast"])})''')
        if cfg.mixed_model:
            out.append(f'''x$y <- factor(x$rating, ordered = TRUE); x$defense <- relevel(factor(x$defense), ref = {_r(ref)})
m <- clmm(y ~ defense + (1 | participant_id) + (1 | stimulus_id), data = x)
s <- coef(summary(m)); add(s[grepl("^defense", rownames(s)), , drop = FALSE], "rate", "mixed: clmm rating")''')
    elif task == "compare":
        out.append('x <- keep[keep$task_type == "compare" & keep$chosen_side %in% c("left", "right"), , drop = FALSE]\n'
                   'x <- adversarial(x)')
        for row in rows:
            a, b = row["contrast"].split(" vs ", 1)
            adj = "norm_l2" in str(row.get("adjusted_for", ""))
            out.append(f'''xx <- x[(x$defense == {_r(a)} & x$defense_b == {_r(b)}) | (x$defense == {_r(b)} & x$defense_b == {_r(a)}), , drop = FALSE]
a_left <- as.numeric(xx$defense == {_r(a)}); xx$a_shown_left <- a_left - mean(a_left)
xx$y <- as.numeric(xx$chosen_defense == {_r(a)})
{"l2 <- num(xx$norm_l2); l2b <- num(xx$norm_l2_b); dl <- ifelse(a_left == 1, l2 - l2b, l2b - l2); xx$norm_l2_difference <- dl - mean(dl)" if adj else ""}
fit <- glm(y ~ a_shown_left{" + norm_l2_difference" if adj else ""}, family = binomial, data = xx)
add(robust(fit, xx), "compare", "primary: logit P(first chosen)", {_r(row["contrast"])})''')
    return "\n".join(line for line in "\n".join(out).splitlines() if line.strip()) + "\n"


def render(cfg: AnalysisConfig, summary: dict, export: str) -> str:
    """The script's text for this report."""
    complete = list(cfg.complete_states)
    text = (HEAD.replace("__EXPORT__", _r(export)).replace("__ADVERSARIAL__", ADVERSARIAL_RULE)
            .replace("__COMPLETE_TEXT__", _r("state not in " + "/".join(complete)))
            .replace("__COMPLETE__", _vec(complete)))
    for rule in cfg.exclusion_rules():
        spec = exclusion_rules.RULES[rule["rule"]]
        params = {k: _r(v) for k, v in rule.items() if k != "rule"}
        text += RULES_R[rule["rule"]].format(label=_r(spec.label), criterion=_r(exclusion_rules.criterion(rule)),
                                             **params) + "\n"
    text += MODELS_HEAD
    if summary.get("subsample"):
        text += f"# NOTE: the report fitted a subsample ({summary['subsample']}); this script fits everyone.\n"
    if not cfg.mixed_model:
        text += "# The report ran without mixed models (mixed_model = false); so does this script.\n"
    for task in summary.get("tasks", []):
        if (summary.get("primary") or {}).get(task):
            text += f"\n# ---- {task} ----\n" + _task_block(task, summary, cfg)
    text += '''
if (nchar(outdir) > 0) {
  dir.create(outdir, showWarnings = FALSE, recursive = TRUE)
  write.csv(exclusions, file.path(outdir, "exclusions.csv"), row.names = FALSE)
  write.csv(fixed_effects, file.path(outdir, "fixed_effects.csv"), row.names = FALSE)
}
'''
    return text


def write(path: Path, cfg: AnalysisConfig, summary: dict, export: str) -> Path:
    Path(path).write_text(render(cfg, summary, export), encoding="utf-8")
    return Path(path)
