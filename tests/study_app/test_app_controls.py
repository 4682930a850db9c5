"""Issue 11 in the study app: format-2 stimulus sets with control stimuli, failed attacks kept by
fixed_budget, kinds as their own balanced cells, like-with-like compare pairs, and the export columns."""
from __future__ import annotations

import csv
import io
import json
from collections import Counter

import pytest
from sqlalchemy import select
from study_fixtures import DEFENSES, answer_body, create_study, post_answer, start_participant

KINDS = ("adversarial", "control_flip", "control_noise")
STIMULI_ALL = '\n[stimuli]\nkinds = ["adversarial", "control_flip", "control_noise"]\n'


def _manifest(sdir) -> dict:
    return json.loads((sdir / "manifest.json").read_text())


def _main_trials(app, study_id):
    """{participant id: [(left key, kind, defense, right key | None, right kind | None)]} of main trials."""
    from advlegit.study_app.db import db
    from advlegit.study_app.models import Image, Participant, Trial

    out: dict[str, list] = {}
    with app.app_context():
        ImageB = db.aliased(Image)
        rows = db.session.execute(
            select(Participant.id, Image.key, Image.stimulus_kind, Image.defense, ImageB.key, ImageB.stimulus_kind)
            .join(Trial, Trial.participant_id == Participant.id).join(Image, Image.id == Trial.image_id)
            .outerjoin(ImageB, ImageB.id == Trial.image_b_id)
            .where(Participant.study_id == study_id, Trial.kind == "main")).all()
    for pid, *rest in rows:
        out.setdefault(pid, []).append(tuple(rest))
    return out


def test_import_keeps_kinds_twins_and_failed_attacks(app, stimulus_dir_v2, tmp_path):
    from advlegit.study_app.db import db
    from advlegit.study_app.models import Image, Study

    sid = create_study(app, stimulus_dir_v2, tmp_path, "identify", trials=12)
    m = _manifest(stimulus_dir_v2)
    with app.app_context():
        images = {i.key: i for i in db.session.scalars(select(Image).where(Image.kind == "stimulus"))}
        design = db.session.get(Study, sid).design
    assert len(images) == len(m["stimuli"]) == 24 * 4 * 3
    for e in m["stimuli"]:
        assert images[e["id"]].stimulus_kind == e["kind"] and images[e["id"]].twin_key == e["twin"]
    # Unset in the design file: every kind in the set, and fixed_budget keeps failed attacks.
    assert design["stimuli"] == {"kinds": list(KINDS), "include_failed": True, "saliency": ""}  # no maps shown


def test_failed_attacks_are_eligible_under_fixed_budget_only(stimulus_dir_v2, stimulus_dir):
    from types import SimpleNamespace

    from advlegit.study_app.allocation import build_pool
    from advlegit.study_app.design import check_against_set, parse_design
    from advlegit.study_app.stimuli import stimulus_kind, twin_of

    failed = [e for e in _manifest(stimulus_dir_v2)["stimuli"] if e["kind"] == "adversarial" and not e["success"]]
    assert len(failed) == 1
    failed_id = failed[0]["id"]
    controls_of_failed = {failed_id + "-flip", failed_id + "-noise"}

    def pool(extra: str, sdir=stimulus_dir_v2, set_design="fixed_budget", trials=12):
        m = _manifest(sdir)
        d = parse_design(_toml(write_design_text("identify", trials) + extra))
        check_against_set(d, DEFENSES, m["stimuli"], m["sources"], set_design=set_design)
        imgs = [SimpleNamespace(kind="stimulus", key=s["id"], success=s["success"], defense=s["defense"],
                                source_key=s["source_id"], target_label=s["target_label"], group=s["group"],
                                true_label=s["true_label"], stimulus_kind=stimulus_kind(s), twin_key=twin_of(s))
                for s in m["stimuli"]]
        return d, {it.key for it in build_pool(d, imgs)[0]}

    d, keys = pool("")
    assert d.stimuli.include_failed and failed_id in keys and controls_of_failed <= keys
    d, keys = pool("\n[stimuli]\ninclude_failed = false\n")
    assert failed_id not in keys and not (controls_of_failed & keys)  # a control follows its twin
    assert len(keys) == 24 * 4 * 3 - 3
    # Other designs select successes by default; a format-1 set is "minimal" with adversarial images only.
    d, keys = pool("", set_design="minimal")
    assert not d.stimuli.include_failed and failed_id not in keys
    d, keys = pool('\n[stimuli]\nkinds = ["adversarial"]\n', sdir=stimulus_dir, set_design="minimal", trials=4)
    assert d.stimuli.kinds == ["adversarial"] and len(keys) == 24 * 4 - 1


def write_design_text(task: str, trials: int) -> str:
    from study_fixtures import DESIGN_TEMPLATE

    return DESIGN_TEMPLATE.format(task=task, trials=trials, practice=2, checks=2, target=500)


def _toml(text: str) -> dict:
    import tomllib

    return tomllib.loads(text)


@pytest.mark.parametrize("extra, message", [
    ('\n[stimuli]\nkinds = ["adversarial", "control_wiggle"]\n', "stimuli.kinds: must be distinct values"),
    ('\n[stimuli]\nkinds = []\n', "stimuli.kinds: must not be empty"),
    ('\n[stimuli]\nkinds = "adversarial"\n', "stimuli.kinds: expected list"),
    ('\n[stimuli]\ninclude_failed = "yes"\n', "stimuli.include_failed: expected bool"),
    ('\n[stimuli]\ncontrols = true\n', "stimuli.controls: unknown field"),
])
def test_bad_stimuli_table_is_refused_with_its_field(extra, message):
    from advlegit.study_app.design import DesignError, parse_design

    with pytest.raises(DesignError, match=message):
        parse_design(_toml(write_design_text("identify", 12) + extra))


def test_design_refusals_change_nothing(app, stimulus_dir, stimulus_dir_v2, tmp_path):
    from advlegit.study_app.db import db
    from advlegit.study_app.design import DesignError
    from advlegit.study_app.models import StimulusSet, Study

    # Controls asked of a format-1 set (it has none).
    with pytest.raises(DesignError, match=r"stimuli.kinds: \['control_flip'\] are not in this stimulus set"):
        create_study(app, stimulus_dir, tmp_path, "identify", trials=8,
                     extra='\n[stimuli]\nkinds = ["adversarial", "control_flip"]\n')
    # 8 trials cannot cover 4 defenses x 3 kinds equally.
    with pytest.raises(DesignError, match=r"not a multiple of the 12 cells \(4 defenses x 3 stimulus kinds\)"):
        create_study(app, stimulus_dir_v2, tmp_path, "identify", trials=8)
    with app.app_context():
        assert db.session.query(Study).count() == 0 and db.session.query(StimulusSet).count() == 0


def test_controls_are_own_cells_balanced_per_participant_and_across(app, client, stimulus_dir_v2, tmp_path):
    sid = create_study(app, stimulus_dir_v2, tmp_path, "identify", trials=12, extra=STIMULI_ALL)
    for n in range(6):
        start_participant(client, sid, f"CTL{n}")
    per_p = _main_trials(app, sid)
    assert len(per_p) == 6
    fills: Counter = Counter()
    for trials in per_p.values():
        cells = Counter((kind, defense) for _, kind, defense, _, _ in trials)
        # Every (defense, kind) cell exactly once: a control of D is not D's adversarial cell.
        assert cells == Counter({(k, d): 1 for k in KINDS for d in DEFENSES})
        fills.update(key for key, *_ in trials)
    # Least-filled first: 6 participants x 1 per cell, 24 items per cell, so nothing is used twice.
    assert max(fills.values()) == 1


def test_compare_pairs_like_with_like(app, client, stimulus_dir_v2, tmp_path):
    sid = create_study(app, stimulus_dir_v2, tmp_path, "compare", trials=18, practice=1, checks=1,
                       extra=STIMULI_ALL)
    token = start_participant(client, sid, "CMP1")
    (trials,) = _main_trials(app, sid).values()
    assert len(trials) == 18
    for left, kind, _, right, kind_b in trials:
        assert kind == kind_b, (left, right)  # never a control beside an adversarial image
        # Same group (source digit and target) on both sides.
        assert left.split("-t")[0] == right.split("-t")[0]
    assert Counter(t[1] for t in trials) == {k: 6 for k in KINDS}
    assert client.get(f"/api/p/{token}/trials").status_code == 200


def test_adversarial_only_design_serves_no_controls(app, client, stimulus_dir_v2, tmp_path):
    sid = create_study(app, stimulus_dir_v2, tmp_path, "identify", trials=4,
                       extra='\n[stimuli]\nkinds = ["adversarial"]\n')
    start_participant(client, sid, "ADV1")
    (trials,) = _main_trials(app, sid).values()
    assert {t[1] for t in trials} == {"adversarial"} and len(trials) == 4


def test_export_columns_kinds_twins_design_and_companion(app, client, stimulus_dir_v2, tmp_path):
    from click.testing import CliRunner

    from advlegit.contracts.export import export_columns
    from advlegit.study_app.cli import cli

    sid = create_study(app, stimulus_dir_v2, tmp_path, "identify", trials=12)
    token = start_participant(client, sid, "EXP1")
    for t in client.get(f"/api/p/{token}/trials").get_json()["trials"]:
        assert post_answer(client, token, answer_body(t["index"], "3")).status_code == 201
    env = {"DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"], "ADVLEGIT_INSTANCE": app.instance_path}
    out = tmp_path / "x.csv"
    res = CliRunner().invoke(cli, ["export", "--study", sid, "-o", str(out)], env=env)
    assert res.exit_code == 0, res.output
    text = out.read_text()
    header = text.splitlines()[0].split(",")
    models = [m["name"] for m in _manifest(stimulus_dir_v2)["models"]]
    assert header == [c.name for c in export_columns(models)]
    rows = list(csv.DictReader(io.StringIO(text)))
    entries = {e["id"]: e for e in _manifest(stimulus_dir_v2)["stimuli"]}
    main = [r for r in rows if r["trial_kind"] == "main"]
    assert Counter(r["stimulus_kind"] for r in main) == {k: 4 for k in KINDS}
    for r in main:
        e = entries[r["stimulus_id"]]
        assert r["stimulus_kind"] == e["kind"] and r["twin_stimulus_id"] == (e["twin"] or "")
        if e["twin"]:
            assert entries[e["twin"]]["kind"] == "adversarial" and entries[e["twin"]]["defense"] == r["defense"]
    assert all(r["stimulus_design"] == "fixed_budget" and r["simulated"] == "false" for r in rows)
    assert all(r["stimulus_kind"] == "clean" and r["twin_stimulus_id"] == "" for r in rows if r["trial_kind"] != "main")
    assert all(r["stimulus_kind_b"] == "" for r in rows)  # identify shows one image
    side = json.loads(out.with_suffix(".study.json").read_text())
    assert side["stimulus_design"] == "fixed_budget" and side["estimand"] == "test estimand of fixed_budget"
    assert side["design"]["stimuli"]["kinds"] == list(KINDS) and side["columns"] == header
    # JSON lines: typed values.
    res = CliRunner().invoke(cli, ["export", "--study", sid, "-o", str(tmp_path / "x.jsonl")], env=env)
    assert res.exit_code == 0, res.output
    first = json.loads((tmp_path / "x.jsonl").read_text().splitlines()[0])
    assert first["simulated"] is False and first["stimulus_design"] == "fixed_budget"


def test_compare_export_fills_the_b_columns(app, client, stimulus_dir_v2, tmp_path):
    from advlegit.study_app.db import db
    from advlegit.study_app.export import columns, iter_rows
    from advlegit.study_app.models import Study

    sid = create_study(app, stimulus_dir_v2, tmp_path, "compare", trials=18, practice=1, checks=1)
    token = start_participant(client, sid, "CB1")
    for t in client.get(f"/api/p/{token}/trials").get_json()["trials"]:
        assert post_answer(client, token, answer_body(t["index"], "left")).status_code == 201
    with app.app_context():
        rows = list(iter_rows(db.session.get(Study, sid)))
    with app.app_context():
        header = columns(db.session.get(Study, sid).stimulus_set.manifest)
    assert all(set(r) == set(header) for r in rows)  # every row fills exactly the contract's columns
    main = [r for r in rows if r["trial_kind"] == "main"]
    assert main and all(r["stimulus_kind"] == r["stimulus_kind_b"] for r in main)
    controls = [r for r in main if r["stimulus_kind"] != "adversarial"]
    assert controls and all(r["twin_stimulus_id"] and r["twin_stimulus_id_b"] for r in controls)
    assert all(r["stimulus_kind"] == r["stimulus_kind_b"] == "clean" for r in rows if r["trial_kind"] != "main")


def test_v1_export_says_adversarial_and_minimal(app, client, study_id):
    from advlegit.study_app.db import db
    from advlegit.study_app.export import companion, iter_rows
    from advlegit.study_app.models import Study

    token = start_participant(client, study_id, "V1")
    for t in client.get(f"/api/p/{token}/trials").get_json()["trials"][:4]:
        assert post_answer(client, token, answer_body(t["index"], "3")).status_code == 201
    with app.app_context():
        study = db.session.get(Study, study_id)
        rows = list(iter_rows(study))
        side = companion(study)
    assert {r["stimulus_design"] for r in rows} == {"minimal"}
    assert {r["stimulus_kind"] for r in rows if r["trial_kind"] == "main"} == {"adversarial"}
    assert all(r["twin_stimulus_id"] is None for r in rows)
    assert side["stimulus_design"] == "minimal" and "confounded" in side["estimand"]
