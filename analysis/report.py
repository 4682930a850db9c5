"""Render an Analysis as report.md + report.html + tables/*.csv, written atomically."""
from __future__ import annotations

import contextlib
import datetime as dt
import html
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import markdown
import numpy as np
import pandas as pd

from analysis.config import AnalysisConfig
from analysis.results import Section
from analysis.stats import fmt_p

CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1em;font-size:.85em;display:block;overflow-x:auto;max-width:100%}th,td{border:1px solid #ccc;padding:.2em .5em;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}img{max-width:100%;border:1px solid #eee}
.note{color:#555;font-size:.9em}code{background:#f5f5f5}"""


def _cell(col: str, v) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA:
        return ""
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (float, np.floating)):
        if col == "p" or col.startswith("p_") or col.endswith("_p"):
            return fmt_p(float(v))
        if float(v).is_integer() and abs(v) < 1e6 and col.startswith(("n_", "df", "budget")):
            return str(int(v))
        return f"{v:.3g}" if abs(v) >= 1e4 or (0 < abs(v) < 1e-3) else f"{v:.3f}"
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
        lines.append("| " + " | ".join(_cell(c, v) for c, v in zip(cols, row)) + " |")
    return "\n".join(lines) + "\n"


def render_markdown(sections: list[Section], cfg: AnalysisConfig, source: str, summary: dict) -> str:
    out = [f"# advlegit analysis report\n",
           f"Source: `{source}` · generated {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M UTC}\n"]
    if "primary" in summary:
        for p in summary["primary"]:
            if not p.get("converged", True):
                out.append(f"**Primary result** ({p['contrast']}, {p['outcome']}): the model did not converge "
                           "(separation: a defense with no or only target hits); no usable estimate.\n")
                continue
            out.append(f"**Primary result** ({p['contrast']}, {p['outcome']}): odds ratio {p['odds_ratio']:.2f} "
                       f"[95% CI {p['or_ci_low']:.2f}, {p['or_ci_high']:.2f}], {_p_eq(p['p'])}"
                       + (f", Holm {_p_eq(p['p_holm'])}" if cfg.primary_family else "")
                       + f" ({'significant' if p['significant'] else 'not significant'} at α = {cfg.alpha:g}).\n")
    out.append(f"R cross-check: {summary.get('r', 'n/a')}.\n")
    out.append("## Options\n\nPre-registered options from the study's `[analysis]` section or the command "
               "line; `default` marks values this report assumed.\n")
    opts = pd.DataFrame(cfg.as_rows(), columns=["option", "value", "source"])
    out.append(md_table(opts))
    out.append("Multiple comparisons: Holm step-down (`multipletests(method='holm')`) within each family, "
               "stated per table. Every p-value sits next to an effect size.\n")
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


def write_report(sections: list[Section], cfg: AnalysisConfig, source: str, summary: dict, root: Path) -> None:
    write_tables(sections, root / "tables")
    md_text = render_markdown(sections, cfg, source, summary)
    (root / "report.md").write_text(md_text, encoding="utf-8")
    (root / "report.html").write_text(render_html(md_text), encoding="utf-8")
