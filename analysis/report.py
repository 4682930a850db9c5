"""Render an Analysis as report.md + report.html + tables/*.csv, written atomically."""
from __future__ import annotations

import contextlib
import datetime as dt
import html
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import markdown
import numpy as np
import pandas as pd

from advlegit.analysis import plain
from advlegit.analysis.config import AnalysisConfig, StudyInfo
from advlegit.analysis.results import Section
from advlegit.analysis.stats import fmt_num, fmt_p

CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1em;font-size:.85em;display:block;overflow-x:auto;max-width:100%}th,td{border:1px solid #ccc;padding:.2em .5em;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}img{max-width:100%;border:1px solid #eee}
.note{color:#555;font-size:.9em}code{background:#f5f5f5;overflow-wrap:anywhere}
.table-scroll{overflow-x:auto;max-width:100%;margin:.5em 0 1em}.table-scroll table{display:table;margin:0}
td,th{white-space:nowrap}"""


def _cell(col: str, v) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA:
        return ""
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (float, np.floating)):
        if col == "p" or col.startswith("p_") or col.endswith("_p"):
            return fmt_p(float(v))
        if not np.isfinite(v):
            return ""
        if float(v).is_integer() and abs(v) < 1e6 and col.startswith(("n_", "df", "budget")):
            return str(int(v))
        if abs(v) >= 1e4:
            return f"{v:,.0f}"
        if abs(v) < 5e-4:
            return "0.000"  # rounding noise such as 5.55e-17 is zero to a reader
        return f"{v:.3f}"
    return str(v).replace("|", "\\|")


def _p_eq(p: float) -> str:
    s = fmt_p(p)
    return f"p {s}" if s.startswith("<") else f"p = {s}"


def md_table(df: pd.DataFrame) -> str:
    if df.empty:
        return "_(no rows)_\n"
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(_cell(c, v) for c, v in zip(cols, row, strict=True)) + " |")
    return "\n".join(lines) + "\n"


def _primary_line(task: str, p: dict, cfg: AnalysisConfig) -> str:
    head = f"**Primary result** ({task}: {p['contrast']}, {p['outcome']})"
    if not p.get("converged", True) or not np.isfinite(p.get("p", np.nan)):
        return (f"{head}: could not be estimated (separation: a defense with no or only hits, or too few "
                "trials of this pair); no usable estimate.\n")
    lvl = p.get("ci_level") or cfg.level
    if "mean_diff" in p:
        eff = (f"mean difference {fmt_num(p['mean_diff'])} rating points "
               f"[{lvl} CI {fmt_num(p['ci_low'])}, {fmt_num(p['ci_high'])}]")
    else:
        eff = (f"odds ratio {fmt_num(p['odds_ratio'])} [{lvl} CI {fmt_num(p['or_ci_low'])}, "
               f"{fmt_num(p['or_ci_high'])}]")
    adj = p.get("adjusted_for")
    return (f"{head}: {eff}, {_p_eq(p['p'])}"
            + (f", Holm {_p_eq(p['p_holm'])}" if cfg.primary_family else "")
            + (f", adjusted for {adj}" if adj and adj != "nothing" else "")
            + f" ({'significant' if p['significant'] else 'not significant'} at α = {cfg.alpha:g}).\n")


def _simulated_sentence(sim: dict | None) -> str:
    if not sim or not sim.get("responses"):
        return ""
    return (f"**This report contains simulated data: {sim['responses']} of {sim['of']} responses, from "
            f"{sim['participants']} of {sim['all_participants']} participants, were made by simulated participants "
            "(`advlegit bots`), not by people**; its results say nothing about human perception.\n")


def _header_warnings(summary: dict, info: StudyInfo | None) -> list[str]:
    out = []
    if info is not None and info.companion is not None and not info.companion_found:
        out.append(f"**No study file:** this export was analysed without its companion `{info.companion.name}` "
                   "(written by `advlegit export`), so the study's pre-registered `[analysis]` options and its "
                   "stimulus design were not read from it"
                   + (f"; options came from `{info.config_file}` and the command line" if info.config_file else
                      "; options not given on the command line are the defaults (source `default` below)")
                   + ".\n")
    if summary.get("subsample"):
        out.append(f"**Subsample:** {summary['subsample']}; every other table uses all responses.\n")
    plan = summary.get("plan")
    if plan:
        if plan.get("sha256"):
            out.append(f"**Analysis plan:** SHA-256 `{plan['sha256']}` ({plan.get('source', '')}).\n")
        devs = plan.get("deviations")
        if devs is None:
            out.append("Deviations from the plan: not checked (the plan document was not given; pass "
                       "`--plan PLAN.md`).\n")
        elif devs:
            out.append("**Deviations from the pre-registered plan:**\n\n" + "\n".join(f"- {d}" for d in devs) + "\n")
        else:
            out.append("Deviations from the pre-registered plan: none.\n")
    return out


def render_markdown(sections: list[Section], cfg: AnalysisConfig, source: str, summary: dict,
                    info: StudyInfo | None = None) -> str:
    out = ["# advlegit analysis report\n"]
    sim = _simulated_sentence(summary.get("simulated"))
    if sim:
        out.append(sim)
    out += _header_warnings(summary, info)
    out.append(f"Source: `{source}` · generated {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M UTC}\n")
    out.append(plain.section(summary, cfg))
    prim = summary.get("primary") or {}
    if prim:
        out.append("## Primary results\n")
        out.append("Only the pre-registered family (`primary_contrast`) is listed here; every other test in this "
                   "report is exploratory. The primary tests use adversarial stimuli only.\n")
        for task, rows in prim.items():
            for p in rows:
                out.append(_primary_line(task, p, cfg))
    out.append(f"R cross-check: {summary.get('r', 'n/a')}.\n")
    out.append("## Options\n\nEach option's value and where it came from: `study` (the study design's "
               "`[analysis]` section, from the export's companion file or `--config`), `command line`, or "
               "`default`.\n")
    opts = pd.DataFrame(cfg.as_rows(), columns=["option", "value", "source"])
    out.append(md_table(opts))
    out.append(f"Every interval in this report is a {cfg.level} interval (α = {cfg.alpha:g}) unless its table says "
               "otherwise. Multiple comparisons: Holm step-down within each family, stated per table. Every "
               "p-value sits next to an effect size.\n")
    for sec in sections:
        out.append(f"## {sec.title}\n")
        if sec.intro:
            out.append(sec.intro + "\n")
        for t in sec.tables:
            out.append(f"### {t.title}\n")
            out.append(md_table(t.frame))
            out.append(f"<p class=\"note\">{html.escape(t.note)} (table: <code>tables/{t.name}.csv</code>)</p>\n"
                       if t.note else f"(table: `tables/{t.name}.csv`)\n")
        for fname, caption in sec.figures:
            out.append(f"![{caption}](figures/{fname})\n\n*{caption}*\n")
        for n in sec.notes:
            out.append(n + "\n")
    return "\n".join(out)


def render_html(md_text: str) -> str:
    body = markdown.markdown(md_text, extensions=["tables"])
    # wide tables scroll inside their own box instead of being clipped on the right
    body = body.replace("<table>", '<div class="table-scroll"><table>').replace("</table>", "</table></div>")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>advlegit report</title>"
            f"<style>{CSS}</style></head><body>{body}</body></html>")


@contextlib.contextmanager
def atomic_dir(target: Path) -> Iterator[Path]:
    """Yield a temporary sibling directory; on success it replaces `target`, on error it vanishes."""
    target = Path(target).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if target.exists():
        old = target.parent / f".{target.name}.old-{os.getpid()}"
        os.replace(target, old)
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_tables(sections: list[Section], tabdir: Path) -> None:
    tabdir.mkdir(exist_ok=True)
    for sec in sections:
        for t in sec.tables:
            t.frame.to_csv(tabdir / f"{t.name}.csv", index=False)


def write_report(sections: list[Section], cfg: AnalysisConfig, source: str, summary: dict, root: Path,
                 info: StudyInfo | None = None) -> None:
    write_tables(sections, root / "tables")
    md_text = render_markdown(sections, cfg, source, summary, info)
    (root / "report.md").write_text(md_text, encoding="utf-8")
    (root / "report.html").write_text(render_html(md_text), encoding="utf-8")
