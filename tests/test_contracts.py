"""Contract 1 across packages: a stimulus set written by `generation` is read by `study_app`
(which never imports generation), and tampering is refused on both sides."""
from __future__ import annotations

import pytest

from advlegit.generation.config import from_dict
from advlegit.generation.pipeline import generate
from advlegit.study_app.manifest import StimulusSetError, load_stimulus_set

TINY = {
    "name": "contract",
    "data": {"n_train": 200, "n_rater": 100, "n_test": 100},
    "model": {"width": 0.25},
    "training": {"steps": 2, "batch_size": 16},
    "defenses": [{"name": "normal"}, {"name": "gradreg_y", "kind": "gradreg"}],
    "evaluation": {"epsilons": [0.0, 0.3], "n_images": 8, "pgd_steps": 1},
    "stimuli": {"per_class": 1, "attack": "tgsm", "design": "fixed_budget", "require_correct": False,
                "controls": ["flip", "noise"]},
}


@pytest.fixture(scope="module")
def stimulus_set(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ADVLEGIT_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        return generate(from_dict(TINY), tmp_path_factory.mktemp("sets") / "contract")


def test_study_app_reads_what_generation_writes(stimulus_set):
    loaded = load_stimulus_set(stimulus_set)
    assert loaded.defended == ["normal", "gradreg_y"]
    assert loaded.raters == ["rater"]
    assert len(loaded.manifest["stimuli"]) == 3 * 20 and len(loaded.manifest["sources"]) == 10
    assert set(loaded.images) >= {s["id"] for s in loaded.manifest["stimuli"]}


def test_study_app_refuses_a_tampered_set(stimulus_set, tmp_path):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(stimulus_set, bad)
    png = next((bad / "images").glob("stim-*.png"))
    data = bytearray(png.read_bytes())
    data[-20] ^= 0xFF
    png.write_bytes(bytes(data))
    with pytest.raises(StimulusSetError):
        load_stimulus_set(bad)


# ---------------------------------------------------------------- contract 2: the export

def _documented_export_columns() -> set[str]:
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "docs" / "export.md").read_text()
    cols: set[str] = set()
    for line in text.splitlines():
        if line.startswith("| `"):
            cols |= set(re.findall(r"`([a-z_<>0-9]+)`", line.split("|")[1]))
    return cols


def test_app_export_header_and_analysis_schema_agree():
    """What study_app writes is what analysis reads, column by column and type by type."""
    from advlegit.analysis import schema
    from advlegit.contracts import export as contract
    from advlegit.study_app.export import columns

    manifest = {"models": [{"name": "normal"}, {"name": "rater"}]}
    header = columns(manifest)
    models = [c for c in header if c.startswith("model_")]
    assert [c for c in header if not c.startswith("model_")] == list(schema.EXPORT_COLUMNS)
    assert models == ["model_normal_label", "model_normal_confidence", "model_rater_label",
                      "model_rater_confidence", "model_normal_label_b", "model_normal_confidence_b",
                      "model_rater_label_b", "model_rater_confidence_b"]
    by_type = {"str": schema.STR_COLUMNS, "int": schema.INT_COLUMNS, "float": schema.FLOAT_COLUMNS,
               "bool": schema.BOOL_COLUMNS}
    for c in schema.EXPORT_COLUMNS:
        assert [t for t, cols in by_type.items() if c in cols] == [contract.dtype_of(c)], c
    for c in models:
        assert contract.dtype_of(c) == ("int" if "_label" in c else "float")
    assert len(header) == len(set(header))
    # The drift issue 11 found: prompt_label was exported but unknown to the analysis.
    assert "prompt_label" in schema.EXPORT_COLUMNS and "prompt_label" in schema.INT_COLUMNS
    for new in ("simulated", "stimulus_kind", "stimulus_kind_b", "twin_stimulus_id", "twin_stimulus_id_b",
                "stimulus_design"):
        assert new in header and new in schema.EXPORT_COLUMNS
    with_ids = columns(manifest, include_platform_ids=True)
    assert with_ids[len(header):] == ["platform", "platform_pid", "platform_session"]


def test_export_vocabularies_are_shared():
    """The vocabularies each side checks against are the contract's (the app's participant states: below)."""
    from advlegit.analysis import load, schema
    from advlegit.contracts import export as contract
    from advlegit.contracts import stimulus_set
    from advlegit.study_app import models

    assert load.TASK_TYPES == schema.TASK_TYPES == contract.TASK_TYPES
    assert load.TRIAL_KINDS == schema.TRIAL_KINDS == contract.TRIAL_KINDS
    assert models.REVIEWS == contract.REVIEW_MARKS
    assert set(contract.IMAGE_KINDS) == set(stimulus_set.KINDS) and contract.STIMULUS_DESIGNS == stimulus_set.DESIGNS


def test_every_export_column_is_documented():
    from pathlib import Path

    from advlegit.contracts import export as contract

    documented = _documented_export_columns()
    for c in contract.COLUMN_NAMES:
        assert c in documented, f"docs/export.md does not document {c}"
    text = (Path(__file__).resolve().parent.parent / "docs" / "export.md").read_text()
    for c in contract.names(contract.PLATFORM):  # opt-in columns: described in the text, not the table
        assert f"`{c}`" in text and c not in documented, c


def test_contracts_import_no_flask_or_torch():
    import subprocess
    import sys

    code = (
        "import sys, advlegit.contracts.export, advlegit.contracts.stimulus_set, "
        "advlegit.contracts.analysis_options, advlegit.contracts.exclusion_rules; "
        "bad = {'flask', 'torch', 'sqlalchemy', 'advlegit.study_app', 'advlegit.analysis', 'advlegit.generation'}"
        " & set(sys.modules); "
        "sys.exit(f'imports {bad}' if bad else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr or out.stdout


# --- one verifier (contracts.stimulus_set) for both packages; format versions; controls -------------

import json  # noqa: E402
import shutil  # noqa: E402

from advlegit.contracts.stimulus_set import ESTIMANDS, VerificationError, stimulus_fields, verify  # noqa: E402


def _edited(stimulus_set, tmp_path, edit):
    bad = tmp_path / "edited"
    shutil.copytree(stimulus_set, bad)
    m = json.loads((bad / "manifest.json").read_text())
    edit(m)
    (bad / "manifest.json").write_text(json.dumps(m))
    return bad


def _as_v1(m):
    """What generation wrote before format 2: no kinds, twins, designs, controls."""
    m["format_version"] = 1
    m.pop("stimulus_design")
    for e in m["sources"]:
        del e["kind"], e["twin"]
    controls = [e for e in m["stimuli"] if e["kind"] != "adversarial"]
    for e in controls:
        del m["files"][e["image"]]
    m["stimuli"] = [e for e in m["stimuli"] if e["kind"] == "adversarial"]
    for e in m["stimuli"]:
        del e["kind"], e["twin"], e["design"]
    return controls


def test_format_2_manifest_fields(stimulus_set):
    m = verify(stimulus_set)
    assert m["format_version"] == 2 and m["stimulus_design"]["estimand"] == ESTIMANDS["fixed_budget"]
    ids = {e["id"]: e for e in m["stimuli"]}
    for e in m["stimuli"]:
        f = stimulus_fields(e, m)
        assert f["design"] == "fixed_budget" and f["budget"] == 0.3 and f["norm_l2"] > 0
        if e["kind"] == "adversarial":
            assert e["twin"] is None
        else:
            twin = ids[e["twin"]]
            assert e["id"] == twin["id"] + "-" + e["kind"].removeprefix("control_")
            assert abs(e["norms"]["l2"] - twin["norms"]["l2"]) <= 1e-6
            assert set(e["predictions"]) == set(twin["predictions"])


def test_v1_manifest_still_verifies_on_both_sides(stimulus_set, tmp_path):
    old = tmp_path / "v1"
    shutil.copytree(stimulus_set, old)
    m = json.loads((old / "manifest.json").read_text())
    for e in _as_v1(m):
        (old / e["image"]).unlink()
    (old / "manifest.json").write_text(json.dumps(m))
    read = verify(old)
    assert read["stimulus_design"]["design"] == "minimal" and read["stimulus_design"]["legacy"]
    assert {(e["kind"], e["twin"]) for e in read["stimuli"]} == {("adversarial", None)}
    assert stimulus_fields(m["stimuli"][0], m)["kind"] == "adversarial"
    assert len(load_stimulus_set(old).manifest["stimuli"]) == 20


@pytest.mark.parametrize("edit, message", [
    (lambda m: m.update(format_version=3), "format_version 3"),
    (lambda m: m["stimuli"][-1].update(twin="stim-nope"), "twin 'stim-nope'"),
    (lambda m: m["stimuli"][-1].update(kind="control_blur"), "kind 'control_blur'"),
    (lambda m: m["stimuli"][-1].update(defense=m["stimuli"][0]["defense"] if m["stimuli"][-1]["defense"] !=
                                       m["stimuli"][0]["defense"] else m["stimuli"][1]["defense"]),
     "differ from its twin"),
    (lambda m: m["files"].update({"../outside.png": "0" * 64}), "leaves the folder"),
    (lambda m: m["stimuli"][0].update(saliency={"gradient": {"image": "images/x.png", "sha256": "1" * 64}}),
     "saliency hash"),
    (lambda m: m["stimuli"][0]["predictions"].pop("rater"), "no predictions"),
])
def test_one_verifier_refuses_on_both_sides(stimulus_set, tmp_path, edit, message):
    bad = _edited(stimulus_set, tmp_path, edit)
    with pytest.raises(VerificationError) as err:
        verify(bad)
    assert any(message in p for p in err.value.problems), err.value.problems
    with pytest.raises(StimulusSetError, match=message.replace("(", r"\(").replace("'", ".")):
        load_stimulus_set(bad)


# --- issue 12: the vocabularies as enums; the task registries of both sides agree with the contract ---------

from advlegit.contracts.vocabularies import TaskType  # noqa: E402


def test_vocabularies_are_str_enums_whose_values_are_unchanged():
    """A member is its string: the database, the JSON API and the export hold the same values as before."""
    from advlegit.contracts import export as contract
    from advlegit.contracts.vocabularies import ParticipantState, ReviewMark, TaskType, TrialKind

    assert contract.TASK_TYPES[:3] == ("identify", "rate", "compare")  # new task types come after these
    assert contract.TRIAL_KINDS == ("practice", "main", "attention_check")
    assert contract.PARTICIPANT_STATES == ("entered", "consented", "instructed", "in_task", "data_complete",
                                           "code_issued", "returned", "timed_out", "excluded")
    assert contract.REVIEW_MARKS == ("", "approved", "rejected", "excluded")
    for enum, values in ((TaskType, contract.TASK_TYPES), (TrialKind, contract.TRIAL_KINDS),
                         (ParticipantState, contract.PARTICIPANT_STATES), (ReviewMark, contract.REVIEW_MARKS)):
        assert [m.value for m in enum] == list(values)
        for m in enum:
            assert m == m.value and str(m) == m.value and f"{m}" == m.value and json.dumps(m) == json.dumps(m.value)
            assert {m.value: 1}[m] == 1  # a plain-string key finds an enum key and back


def test_state_machine_covers_exactly_the_contract_states():
    from advlegit.contracts.vocabularies import ParticipantState
    from advlegit.study_app.states import ACTIVE, ALLOWED, FINISHED

    assert set(ALLOWED) == set(ParticipantState)
    assert set().union(*ALLOWED.values()) <= set(ParticipantState)
    assert set(ACTIVE) | set(FINISHED) <= set(ParticipantState)


def test_both_sides_know_every_task_type():
    """A TaskType without its study-app plugin, its analysis plugin, or the analysis' columns and
    outcome, fails here; and the two registries agree on each task's primary outcome."""
    from advlegit.analysis import config, schema
    from advlegit.analysis.tasks import TASKS as ANALYSIS_TASKS
    from advlegit.contracts.vocabularies import TaskType
    from advlegit.study_app.design import PRIMARY_OUTCOMES
    from advlegit.study_app.tasks import TASKS

    assert list(TASKS) == list(TaskType) == list(ANALYSIS_TASKS)
    assert all(TASKS[t].name == t == ANALYSIS_TASKS[t].name for t in TaskType)
    assert set(schema.REQUIRED_BY_TASK) == set(TaskType) == set(config.TASK_OUTCOMES)
    for t in TaskType:
        assert (PRIMARY_OUTCOMES[t] == TASKS[t].primary_outcome == config.TASK_OUTCOMES[t]
                == ANALYSIS_TASKS[t].primary_outcome)
        assert ANALYSIS_TASKS[t].primary_outcome in schema.REQUIRED_BY_TASK[t]


@pytest.mark.parametrize("task", [t.value for t in TaskType])
def test_task_outcome_columns_are_contract_columns_the_analysis_reads(task):
    """Each plugin fills contract columns only, including every outcome column the analysis requires
    for its task; and the values it writes have the contract's types."""
    from advlegit.analysis import schema
    from advlegit.contracts import export as contract
    from advlegit.study_app.tasks import OUTCOME_COLUMNS, TASKS

    plugin = TASKS[task]
    response_cols = set(contract.names(contract.RESPONSE))
    assert set(plugin.outcome_columns) <= response_cols
    assert plugin.primary_outcome in plugin.outcome_columns
    assert task in schema.REQUIRED_BY_TASK, f"analysis/schema.py: REQUIRED_BY_TASK has no {task!r}"
    needed = {c for c in schema.REQUIRED_BY_TASK[task] if c in OUTCOME_COLUMNS}
    assert needed <= set(plugin.outcome_columns), needed - set(plugin.outcome_columns)
    a = {"id": "stim-a", "true_label": 3, "target_label": 5, "defense": "normal"}
    b = {"id": "stim-b", "true_label": 3, "target_label": 5, "defense": "gradreg"}
    python_type = {"str": str, "int": int, "float": float, "bool": bool}
    filled = set()
    for response in sorted(plugin.responses):
        out = plugin.outcomes(response, a, b if plugin.n_images == 2 else {})
        assert set(out) == set(plugin.outcome_columns), response
        for col, value in out.items():
            if value is not None:
                filled.add(col)
                assert type(value) is python_type[contract.dtype_of(col)], (col, value)
    assert filled == set(plugin.outcome_columns)


@pytest.mark.parametrize("task", [t.value for t in TaskType])
def test_every_task_has_its_browser_renderer(task):
    from pathlib import Path

    from advlegit import study_app
    from advlegit.study_app.tasks import TASKS

    js = (Path(study_app.__file__).parent / "static" / TASKS[task].renderer).read_text()
    assert f"(window.advlegitTasks = window.advlegitTasks || {{}}).{task} = {{" in js
    assert "answers:" in js and "key:" in js


# --- issue 15: class names (CIFAR-10's "cat") travel in dataset.classes; absent means the digits ------------

@pytest.mark.parametrize("edit, message", [
    (lambda m: m["dataset"].update(classes=["cat", "cat"] + [str(i) for i in range(8)]), "names a class twice"),
    (lambda m: m["dataset"].update(classes="cat dog"), "non-empty list of non-empty class names"),
    (lambda m: m["dataset"].update(classes=["a", "b", "c"]), "is not a class of dataset.classes"),
])
def test_the_verifier_checks_class_names(stimulus_set, tmp_path, edit, message):
    bad = _edited(stimulus_set, tmp_path, edit)
    with pytest.raises(VerificationError) as err:
        verify(bad)
    assert any(message in p for p in err.value.problems), err.value.problems


def test_sets_without_class_names_are_digits(stimulus_set, tmp_path):
    from advlegit.contracts.stimulus_set import class_names

    old = _edited(stimulus_set, tmp_path, lambda m: m["dataset"].pop("classes"))
    assert class_names(verify(old)) == [str(d) for d in range(10)]
    named = _edited(stimulus_set, tmp_path / "named", lambda m: m["dataset"].update(classes=list("abcdefghij")))
    assert class_names(verify(named))[3] == "d"
