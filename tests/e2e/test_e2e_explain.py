"""The explain tasks end to end, as a researcher runs them: `advlegit generate` with saliency export (a
tiny config) -> verify-stimuli -> study create (explain, and its two-alternative version explain_pair)
-> serve -> a person's explain page in headless Chromium -> bots -> export -> analyze; each report has
its task's section, per model, and nothing names a model to the participant."""
from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from study_fixtures import TEST_SECRET, ServerProcess

pytestmark = [pytest.mark.browser, pytest.mark.slow]
CONFIG = Path(__file__).with_name("explain-tiny.toml")
DEMO_CONFIG = Path(__file__).resolve().parents[2] / "examples" / "demo-quick.toml"
ADVLEGIT = [sys.executable, "-m", "advlegit"]
DEFENSES = ("normal", "gradreg_y")
DESIGN = """
[study]
name = "Explain e2e"
task = "{task}"
trials = 4
practice = 2
attention_checks = 2
target_sample_size = 20
seed = 3

[consent]
text = "You will judge pictures of handwritten digits. Taking part is voluntary."

[instructions]
text = "Say how well the highlighted pixels explain the digit."

[stimuli]
saliency = "gradient"

[analysis]
reference_defense = "normal"
"""


def advlegit(env, *args, timeout=600):
    proc = subprocess.run([*ADVLEGIT, *args], env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"advlegit {' '.join(args)}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def explain_set(tmp_path_factory, e2e_model_cache):
    root = tmp_path_factory.mktemp("explain-set")
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "ADVLEGIT_INSTANCE")}
    env["ADVLEGIT_CACHE_DIR"] = str(e2e_model_cache)
    advlegit(env, "generate", str(CONFIG), "-o", str(root / "set"), "--device", "cpu")
    return root / "set"


def test_explain_tiny_trains_only_models_the_demo_test_already_trained():
    """explain-tiny.toml reuses test_demo.py's checkpoints through the shared e2e model cache only while
    its models' cache keys are among examples/demo-quick.toml's: a drift would silently retrain them."""
    from advlegit.generation.config import load_config
    from advlegit.generation.train import model_specs

    def keys(path):
        return {s.key() for s in model_specs(load_config(path), "any")}
    assert keys(CONFIG.with_name("explain-tiny.toml")) <= keys(DEMO_CONFIG)


def test_explain_from_generate_to_report(explain_set, e2e_db_url, browser, tmp_path, shots):
    env = {**os.environ, "DATABASE_URL": e2e_db_url, "ADVLEGIT_INSTANCE": str(tmp_path / "inst"),
           "ADVLEGIT_SECRET_KEY": TEST_SECRET}
    advlegit(env, "verify-stimuli", str(explain_set))
    assert list((explain_set / "saliency" / "gradient").glob("*.png"))
    advlegit(env, "db", "upgrade")
    studies = {}
    for task in ("explain", "explain_pair"):
        (tmp_path / f"{task}.toml").write_text(DESIGN.replace("{task}", task))
        studies[task] = advlegit(env, "study", "create", "--stimuli", str(explain_set), "--design",
                                 str(tmp_path / f"{task}.toml")).strip().splitlines()[-1]
    study = studies["explain"]

    with ServerProcess(e2e_db_url, tmp_path / "inst", workers=1) as server:
        # A person's first trial: the digit and the map side by side, the 1-7 scale, no model named.
        context = browser.new_context(viewport={"width": 1024, "height": 800})
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{server.url}/s/{study}?PROLIFIC_PID=EXPLAIN1")
        page.get_by_role("button", name="I agree, continue").click()
        page.wait_for_url("**/instructions")
        page.get_by_role("button", name="Start").click()
        page.wait_for_url("**/task")
        page.locator("#task[data-shown='0']").wait_for(state="attached", timeout=15000)
        assert page.locator("#stage img").count() == 2
        assert page.locator("#answers button").count() == 7
        assert "highlighted pixels" in page.locator("#prompt").inner_text()
        html = page.content()
        assert not any(d in html for d in DEFENSES), "a model name reached the participant"
        page.screenshot(path=shots / "explain-trial-1024.png")
        assert errors == []
        context.close()

        for task, sid in studies.items():  # noqa: B007
            advlegit(env, "bots", "--url", server.url, "--study", sid, "-n", "6", "--stimuli", str(explain_set),
                     "--seed", "11", "--concurrency", "2")

    out = tmp_path / "explain.csv"
    advlegit(env, "export", "--study", study, "-o", str(out))
    with out.open() as f:
        rows = [r for r in csv.DictReader(f) if r["simulated"] == "true"]
    main = [r for r in rows if r["trial_kind"] == "main"]
    assert len({r["participant_id"] for r in rows}) == 6 and len(main) == 6 * 4
    # image b of a main trial is the map of image a, made by the model that image a was made against
    assert all(r["stimulus_id_b"] == r["stimulus_id"] + "@gradient" and r["defense_b"] == r["defense"] for r in main)
    assert {r["defense"] for r in main} == set(DEFENSES) and all(r["rating"] for r in main)

    advlegit(env, "analyze", str(out), "-o", str(tmp_path / "report"))
    report = (tmp_path / "report" / "report.html").read_text()
    assert "explain: whose saliency maps explain the digit better" in report
    with (tmp_path / "report" / "tables" / "explain_descriptives.csv").open() as f:
        assert {r["defense"] for r in csv.DictReader(f)} == set(DEFENSES)
    assert (tmp_path / "report" / "figures" / "explain_ratings.png").is_file()
    assert re.search(r"explain_ordinal|Ordinal \(proportional-odds\) mixed model", report)

    # explain_pair: both maps of a trial are of one source digit, one per model; the choice names a model
    out = tmp_path / "explain_pair.csv"
    advlegit(env, "export", "--study", studies["explain_pair"], "-o", str(out))
    with out.open() as f:
        main = [r for r in csv.DictReader(f) if r["trial_kind"] == "main"]
    assert len(main) == 6 * 4
    assert all(r["stimulus_id"].endswith("@gradient") and r["stimulus_id_b"].endswith("@gradient") for r in main)
    assert all({r["defense"], r["defense_b"]} == set(DEFENSES) and r["chosen_defense"] in DEFENSES for r in main)
    assert all(r["prompt_label"] == r["true_label"] for r in main)  # the question names the digit
    advlegit(env, "analyze", str(out), "-o", str(tmp_path / "report_pair"))
    report = (tmp_path / "report_pair" / "report.html").read_text()
    assert "explain_pair: whose saliency map shows the digit better" in report
    assert (tmp_path / "report_pair" / "tables" / "explain_pair_bradley_terry.csv").is_file()
