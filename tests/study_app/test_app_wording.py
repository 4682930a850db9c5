"""Issue 14, item 19: articles as spoken ("an 8"), one time estimate from the design, a favicon."""
from __future__ import annotations

import pytest
from study_fixtures import write_design


@pytest.mark.parametrize("word, expected", [("8", "an"), ("11", "an"), ("18", "an"), ("80", "an"), ("1", "a"),
                                            ("7", "a"), ("0", "a"), ("ankle boot", "an"), ("T-shirt/top", "a"),
                                            ("unicorn", "a"), ("hour", "an"), ("", "a")])
def test_article_as_spoken(word, expected):
    from advlegit.study_app.tasks import article

    assert article(word) == expected


def test_rate_prompt_and_feedback_say_an_8():
    from types import SimpleNamespace

    from advlegit.study_app.tasks import TASKS

    classes = [str(d) for d in range(10)]
    trial = SimpleNamespace(kind="practice", prompt_label=8, expected="low")
    assert TASKS["rate"].prompt(trial, classes) == "How much does this look like an 8?"
    assert TASKS["rate"].feedback(trial, classes).startswith("This is not an 8:")
    assert TASKS["compare"].prompt(trial, classes) == "Which looks more like an 8?"
    assert TASKS["identify"].feedback(SimpleNamespace(kind="practice", expected="8", prompt_label=None),
                                      classes) == "This one is an 8."


def test_one_time_estimate_everywhere(app, client, stimulus_dir, tmp_path):
    from advlegit.study_app.db import db
    from advlegit.study_app.design import estimated_minutes
    from advlegit.study_app.models import Study

    path = write_design(tmp_path / "d.toml", "rate")
    path.write_text(
        path.read_text().replace('[consent]\ntext = """', '[consent]\ntext = """It takes about {minutes} minutes. ', 1)
    )
    study_id = create_study_from(app, path, stimulus_dir)
    with app.app_context():
        design = db.session.get(Study, study_id).design
    minutes = estimated_minutes(design)
    n = design["practice"] + design["trials"] + design["attention_checks"]
    assert minutes == 3 + -(-n * 5 // 60)
    r = client.get(f"/s/{study_id}?PROLIFIC_PID=TIME")
    consent = client.get(r.headers["Location"]).get_data(as_text=True)
    assert f"It takes about {minutes} minutes." in consent and "{minutes}" not in consent
    preview = client.get(f"/s/{study_id}?assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE&hitId=H").get_data(as_text=True)
    assert f"It takes about {minutes} minutes." in preview


def create_study_from(app, path, stimulus_dir):
    from advlegit.study_app.db import db
    from advlegit.study_app.design import load_design
    from advlegit.study_app.manifest import load_stimulus_set
    from advlegit.study_app.studies import create_study as _create

    with app.app_context():
        study = _create(load_stimulus_set(stimulus_dir), load_design(path))
        db.session.commit()
        return study.id


def test_pages_link_a_favicon_that_is_served(app, client, study_id):
    import re

    page = client.get(f"/s/{study_id}?PROLIFIC_PID=ICON", follow_redirects=True).get_data(as_text=True)
    href = re.search(r'<link rel="icon" type="image/svg\+xml" href="([^"]+)"', page).group(1)
    r = client.get(href)
    assert r.status_code == 200 and r.data.startswith(b"<svg")
