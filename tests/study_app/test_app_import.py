"""`advlegit study create`: verified, idempotent import; bad designs and bad sets change nothing."""
from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select
from study_fixtures import write_design


def run_create(app, monkeypatch, stimuli, design):
    from advlegit.study_app.cli import cli

    monkeypatch.setenv("DATABASE_URL", app.config["SQLALCHEMY_DATABASE_URI"])
    monkeypatch.setenv("ADVLEGIT_INSTANCE", app.instance_path)
    return CliRunner().invoke(cli, ["study", "create", "--stimuli", str(stimuli), "--design", str(design)])


def counts(app):
    from advlegit.study_app.db import db
    from advlegit.study_app.models import Image, StimulusSet, Study, StudyImage

    with app.app_context():
        return tuple(
            db.session.scalar(select(func.count()).select_from(m)) for m in (StimulusSet, Image, Study, StudyImage)
        )


def test_create_prints_id_last_and_import_is_idempotent(app, monkeypatch, stimulus_dir, tmp_path):
    from advlegit.study_app.db import db
    from advlegit.study_app.models import Study

    design = write_design(tmp_path / "d.toml", "identify")
    first = run_create(app, monkeypatch, stimulus_dir, design)
    assert first.exit_code == 0, first.output
    sid = first.output.strip().splitlines()[-1]
    n_sets, n_images, n_studies, _ = counts(app)
    assert (n_sets, n_studies) == (1, 1)
    manifest = json.loads((stimulus_dir / "manifest.json").read_text())
    maps = sum(len(s.get("saliency") or {}) for s in manifest["stimuli"])  # served by the explain tasks
    assert maps and n_images == len(manifest["sources"]) + len(manifest["stimuli"]) + maps
    second = run_create(app, monkeypatch, stimulus_dir, design)
    assert second.exit_code == 0, second.output
    sid2 = second.output.strip().splitlines()[-1]
    assert sid2 != sid
    assert counts(app)[:3] == (1, n_images, 2)  # same stimulus set row, a second study
    with app.app_context():
        study = db.session.get(Study, sid)
        assert study.task_type == "identify" and study.status == "open"
        assert study.design["analysis"]["reference_defense"] == "undefended_ce"
        assert study.design["defenses"] == ["undefended_ce", "gradreg_dbp", "advtrain_fgsm", "distill_t50"]


def _copy(stimulus_dir, tmp_path):
    return shutil.copytree(stimulus_dir, tmp_path / "copy")


@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / "images" / sorted(p.name for p in (d / "images").glob("stim-*"))[3]).write_bytes(b"x"), "sha256"),
    (lambda d: (d / "metrics.json").write_text("{}"), "altered file"),
    (lambda d: (d / "figures" / "grid.png").unlink(), "missing file"),
    (lambda d: (d / "extra.txt").write_text("hi"), "unlisted file"),
    (lambda d: (d / "manifest.json").write_text("{not json"), "not valid JSON"),
])
def test_damaged_stimulus_set_is_refused_and_nothing_changes(app, monkeypatch, stimulus_dir, tmp_path, damage, message):
    broken = _copy(stimulus_dir, tmp_path)
    damage(broken)
    before = counts(app)
    res = run_create(app, monkeypatch, broken, write_design(tmp_path / "d.toml"))
    assert res.exit_code != 0
    assert message in res.output
    assert counts(app) == before


def test_image_hash_checked_even_if_files_table_agrees(app, monkeypatch, stimulus_dir, tmp_path):
    """A stimulus whose own sha256 disagrees with its bytes is refused even when `files` was updated too."""
    broken = _copy(stimulus_dir, tmp_path)
    m = json.loads((broken / "manifest.json").read_text())
    m["stimuli"][0]["sha256"] = "0" * 64
    (broken / "manifest.json").write_text(json.dumps(m))
    res = run_create(app, monkeypatch, broken, write_design(tmp_path / "d.toml"))
    assert res.exit_code != 0 and m["stimuli"][0]["id"] in res.output
    assert counts(app) == (0, 0, 0, 0)


BAD_DESIGNS = [
    ("task = \"identify\"", "task = \"label\"", "study.task"),
    ("trials = 8", "trials = 7", "study.trials"),
    ("trials = 8", "trials = \"eight\"", "study.trials"),
    ("trials = 8", "trials = 400", "study.trials"),
    ("practice = 2", "practice = -1", "study.practice"),
    ("target_sample_size = 500", "", "study.target_sample_size"),
    ("reference_defense = \"undefended_ce\"", "reference_defense = \"nope\"", "analysis.reference_defense"),
    ("rt_floor_ms = 200", "rt_floor_ms = 200\ncolour = \"red\"", "analysis.colour"),
    ("attention_threshold = 1.0", "attention_threshold = 1.5", "analysis.attention_threshold"),
    ("seed = 7", "seed = 7\ndefenses = [\"undefended_ce\", \"ghost\"]", "study.defenses"),
    ("[consent]", "[consentt]", "consentt"),
    ('code = "TESTCODE1"', 'code = "TESTCODE1"\n[debrief]\nexplanation_md = 7', "debrief.explanation_md: expected str"),
    ("name = \"Test identify\"", "name = \"Test identify", "not valid TOML"),
]


@pytest.mark.parametrize("old, new, field", BAD_DESIGNS)
def test_bad_design_names_the_field_and_changes_nothing(app, monkeypatch, stimulus_dir, tmp_path, old, new, field):
    path = write_design(tmp_path / "d.toml")
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    res = run_create(app, monkeypatch, stimulus_dir, path)
    assert res.exit_code != 0
    assert field in res.output, res.output
    assert counts(app) == (0, 0, 0, 0)


@pytest.mark.parametrize("example", ["identify", "rate", "compare", "explain", "explain_pair"])
def test_example_designs_are_valid(example):
    from pathlib import Path

    from advlegit.study_app.design import load_design

    d = load_design(Path(__file__).resolve().parents[2] / "examples" / f"design-{example}.toml")
    assert d.task == example and d.analysis.primary_contrast


def test_design_the_set_cannot_serve_is_refused(app, monkeypatch, stimulus_dir, tmp_path):
    """Too few successful attacks on one defense for `trials`: refused at creation, not at a participant's start."""
    sparse = _copy(stimulus_dir, tmp_path)
    m = json.loads((sparse / "manifest.json").read_text())
    kept = 0
    for s in m["stimuli"]:
        if s["defense"] == "gradreg_dbp":
            s["success"] = kept < 1
            kept += 1
    (sparse / "manifest.json").write_text(json.dumps(m))
    res = run_create(app, monkeypatch, sparse, write_design(tmp_path / "d.toml", "identify", trials=8))
    assert res.exit_code != 0 and "study.trials" in res.output and "gradreg_dbp" in res.output, res.output
    assert counts(app) == (0, 0, 0, 0)
    ok = run_create(app, monkeypatch, sparse, write_design(tmp_path / "d.toml", "identify", trials=4))
    assert ok.exit_code == 0, ok.output


@pytest.mark.parametrize("task", ["explain", "explain_pair"])
def test_explain_needs_maps_of_one_chosen_method(app, monkeypatch, stimulus_dir, tmp_path, task):
    """A set without saliency maps, or a method it lacks, is refused at creation with the key to fix and
    nothing stored; a set with several methods needs [stimuli] saliency to say which."""
    bare = _copy(stimulus_dir, tmp_path)
    m = json.loads((bare / "manifest.json").read_text())
    for s in m["stimuli"]:
        s.pop("saliency", None)
    for rel in [r for r in m["files"] if r.startswith("saliency/")]:
        del m["files"][rel]
    shutil.rmtree(bare / "saliency")
    (bare / "manifest.json").write_text(json.dumps(m))
    res = run_create(app, monkeypatch, bare, write_design(tmp_path / "d.toml", task))
    assert res.exit_code != 0 and "export_saliency" in res.output, res.output
    assert counts(app) == (0, 0, 0, 0)
    res = run_create(app, monkeypatch, stimulus_dir,
                     write_design(tmp_path / "d.toml", task, extra='[stimuli]\nsaliency = "smoothgrad"\n'))
    assert res.exit_code != 0 and "stimuli.saliency" in res.output and "gradient" in res.output, res.output
    assert counts(app) == (0, 0, 0, 0)
    ok = run_create(app, monkeypatch, stimulus_dir, write_design(tmp_path / "d.toml", task))
    assert ok.exit_code == 0, ok.output  # the set's only method, filled in
