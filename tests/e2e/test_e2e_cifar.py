"""A CIFAR-10-format data set (the python pickle batches, written here: 600 synthetic colour images)
goes generate -> study create -> bots -> export -> analyze, the commands a researcher types; the stimulus
set holds colour PNGs and verifies, and participants are asked about "cat", not "3"."""
from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "generation"))
from dataset_files import CIFAR_NAMES, write_cifar10  # noqa: E402
from study_fixtures import ServerProcess, make_app, start_participant, write_design  # noqa: E402

pytestmark = [pytest.mark.slow]
CONFIG = Path(__file__).with_name("cifar-tiny.toml")


def _ok(result):
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


@pytest.fixture(scope="module")
def cifar_study(tmp_path_factory, e2e_db_url):
    import advlegit
    from advlegit.study_app.db import db

    root = tmp_path_factory.mktemp("cifar")
    write_cifar10(root / "cifar-10-batches-py", n_train=500, n_test=100)
    config = root / "cifar-tiny.toml"
    config.write_text(CONFIG.read_text().replace("@DATA@", str(root / "cifar-10-batches-py")))
    instance = root / "inst"
    env = {"DATABASE_URL": e2e_db_url, "ADVLEGIT_INSTANCE": str(instance), "ADVLEGIT_CACHE_DIR": str(root / "cache"),
           "ADVLEGIT_SECRET_KEY": "test-secret"}
    run = CliRunner().invoke
    stimuli = root / "stimuli"
    _ok(run(advlegit.main, ["generate", str(config), "-o", str(stimuli)], env=env))
    _ok(run(advlegit.main, ["verify-stimuli", str(stimuli)], env=env))
    app = make_app(e2e_db_url, instance)
    with app.app_context():  # the module's database may hold another test's tables: start empty
        db.drop_all()
        with db.engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
        db.engine.dispose()
    _ok(run(advlegit.main, ["db", "upgrade"], env=env))
    design = write_design(root / "identify.toml", "identify", trials=8)
    design.write_text(design.read_text().replace("undefended_ce", "normal"))  # this set's reference defense
    study = _ok(run(advlegit.main, ["study", "create", "--stimuli", str(stimuli), "--design", str(design)],
                    env=env)).strip().splitlines()[-1]
    with ServerProcess(e2e_db_url, instance, workers=1) as server:
        _ok(run(advlegit.main, ["bots", "--url", server.url, "--study", study, "-n", "4", "--stimuli", str(stimuli),
                                "--model", "rater", "--seed", "1"], env=env))
    export = root / "identify.csv"
    _ok(run(advlegit.main, ["export", "--study", study, "-o", str(export)], env=env))
    _ok(run(advlegit.main, ["analyze", str(export), "-o", str(root / "report")], env=env))
    return root, stimuli, study, app


def test_colour_stimuli_verify_and_every_stage_ran(cifar_study):
    root, stimuli, _, _ = cifar_study
    manifest = json.loads((stimuli / "manifest.json").read_text())
    assert manifest["dataset"]["classes"] == CIFAR_NAMES
    assert manifest["dataset"]["image_shape"] == [3, 32, 32]
    for entry in manifest["stimuli"][:4] + manifest["sources"][:4]:
        with Image.open(stimuli / entry["image"]) as im:
            assert (im.mode, im.size) == ("RGB", (32, 32))
    with (root / "identify.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len({r["participant_id"] for r in rows}) == 4
    assert (root / "report" / "report.html").is_file()


def test_participants_see_class_names_and_colour_images(cifar_study):
    _, _, study, app = cifar_study
    client = app.test_client()
    token = start_participant(client, study, pid="CIFAR1")
    trials = client.get(f"/api/p/{token}/trials").get_json()["trials"]
    assert all(t["prompt"] == "Which of these is it?" and t["classes"] == CIFAR_NAMES for t in trials)
    practice = [t for t in trials if t["practice"]]
    assert practice and all(any(f"is a {n}." in t["feedback"] or f"is an {n}." in t["feedback"] for n in CIFAR_NAMES)
                            for t in practice)
    image = client.get(trials[0]["image"])
    assert image.status_code == 200
    with Image.open(io.BytesIO(image.data)) as im:
        assert im.mode == "RGB"
