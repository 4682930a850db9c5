"""`advlegit analyze --database URL --study ID` on a real study-app database (SQLite).

Participants answer through the study app's own HTTP routes (Flask test client); the analysis then
reads the same rows through `advlegit export` in a child process."""
import sys
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

pytest.importorskip("flask")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "study_app"))

from advlegit import main  # noqa: E402


def test_analyze_reads_the_study_database(tmp_path, tmp_path_factory):
    from study_fixtures import (
        answer_body,
        create_study,
        csrf_of,
        make_app,
        post_answer,
        shared_stimulus_set,
        start_participant,
    )

    from advlegit.study_app.db import db

    url = f"sqlite:///{tmp_path / 'study.db'}"
    app = make_app(url, tmp_path / "instance")
    with app.app_context():
        db.create_all()
    study = create_study(app, shared_stimulus_set(tmp_path_factory), tmp_path, "identify")
    client = app.test_client()
    for i in range(6):
        token = start_participant(client, study, f"PID{i}")
        trials = client.get(f"/api/p/{token}/trials").get_json()["trials"]
        for t in trials:
            answer = str((i + t["index"]) % 10)
            assert post_answer(client, token, answer_body(t["index"], answer)).status_code == 201
        client.post(f"/p/{token}/debrief", data={"q0": "x", "csrf": csrf_of(token)})
    with app.app_context():
        db.engine.dispose()
    out = tmp_path / "report"
    res = CliRunner().invoke(main, ["analyze", "--database", url, "--study", study, "-o", str(out),
                                    "--attention-threshold", "0", "--no-mixed-model", "--r-crosscheck", "off",
                                    "--n-boot", "100"])
    assert res.exit_code == 0, res.output
    excl = pd.read_csv(out / "tables/exclusions.csv")
    assert excl["participants_left"].iloc[0] == 6
    assert (out / "tables/identify_primary.csv").is_file()
    # the study's pre-registered [analysis] section came along (export's companion .study.json)
    assert "| rt_floor_ms | 200.0 | study |" in (out / "report.md").read_text()
    res = CliRunner().invoke(main, ["analyze", "--database", url, "--study", "nope", "-o", str(tmp_path / "r2")])
    assert res.exit_code != 0 and "could not export study 'nope'" in res.output
    assert not (tmp_path / "r2").exists()
