"""The completion page says what the study was about ([debrief] explanation_md): the default in the study's
language, the design's own text, or none; never before the debrief answers are stored, never blinding-breaking."""
from __future__ import annotations

import json
import re

import pytest
from study_fixtures import SECRET_NAMES, answer_body, create_study, form, post_answer, write_design, write_german_design

HEADING = {"en": "What this study was about", "de": "Worum es in dieser Studie ging"}
# A sentence of each language's default explanation.
DEFAULT_SENTENCE = {"en": "Others were changed at random or left unchanged, for comparison.",
                    "de": "Andere Bilder wurden zum Vergleich zufällig verändert oder blieben unverändert."}


@pytest.fixture(scope="module")
def db_url(tmp_path_factory):
    """Which text a page shows is no database matter: SQLite only, to keep the suite short."""
    yield f"sqlite:///{tmp_path_factory.mktemp('explanation') / 'test.db'}"


def to_debrief(client, arrival: str) -> tuple[str, str]:
    """Arrive with `arrival` (a /s/... link) and answer every trial; returns (token, debrief page HTML)."""
    r = client.get(arrival)
    token = re.search(r"/p/([^/]+)/", r.headers["Location"]).group(1)
    client.post(f"/p/{token}/consent", data=form(token, choice="agree"))
    client.post(f"/p/{token}/instructions", data=form(token))
    for t in client.get(f"/api/p/{token}/trials").get_json()["trials"]:
        assert post_answer(client, token, answer_body(t["index"], "1")).status_code == 201
    debrief = client.get(f"/p/{token}/debrief")
    assert debrief.status_code == 200
    return token, debrief.get_data(as_text=True)


def done_page(client, arrival: str) -> tuple[str, str]:
    """(debrief page, completion page) of one participant who finished."""
    token, debrief = to_debrief(client, arrival)
    assert client.post(f"/p/{token}/debrief", data=form(token, q0="fine")).status_code == 303
    done = client.get(f"/p/{token}/done")
    assert done.status_code == 200
    return debrief, done.get_data(as_text=True)


def with_explanation(toml_value: str) -> str:
    return f"\n[debrief]\nexplanation_md = {toml_value}\n"


# ---- the design key

def test_unset_is_the_default_in_the_study_language_and_empty_is_none(tmp_path):
    from advlegit.study_app.design import DEFAULT_EXPLANATION, load_design

    en = load_design(write_design(tmp_path / "en.toml"))
    assert en.debrief_explanation_md == DEFAULT_EXPLANATION and DEFAULT_SENTENCE["en"] in DEFAULT_EXPLANATION
    de = load_design(write_german_design(tmp_path / "de.toml"))
    assert DEFAULT_SENTENCE["de"] in de.debrief_explanation_md and "comparison" not in de.debrief_explanation_md
    custom = load_design(write_design(tmp_path / "c.toml", extra=with_explanation('"We studied *perception*."')))
    assert custom.debrief_explanation_md == "We studied *perception*."
    assert load_design(write_design(tmp_path / "e.toml", extra=with_explanation('""'))).debrief_explanation_md == ""


@pytest.mark.parametrize("value, problem", [("7", "expected str, got 7"), ("[\"a\"]", "expected str"),
                                            ("true", "expected str")])
def test_a_value_that_is_not_text_is_refused_by_name(tmp_path, value, problem):
    from advlegit.study_app.design import DesignError, load_design

    with pytest.raises(DesignError, match=rf"^debrief\.explanation_md: {re.escape(problem)}"):
        load_design(write_design(tmp_path / "bad.toml", extra=with_explanation(value)))


def test_a_design_stored_before_the_key_gets_the_default_in_its_language(tmp_path):
    from advlegit.study_app.design import Design, debrief_explanation, load_design

    for lang, path in (("en", write_design(tmp_path / "en.toml")), ("de", write_german_design(tmp_path / "de.toml"))):
        stored = load_design(path).to_dict()
        del stored["debrief_explanation_md"]
        assert DEFAULT_SENTENCE[lang] in debrief_explanation(stored)
        assert DEFAULT_SENTENCE[lang] in Design.from_dict(stored).debrief_explanation_md
    stored["debrief_explanation_md"] = ""
    assert debrief_explanation(stored) == "" and Design.from_dict(stored).debrief_explanation_md == ""


@pytest.mark.parametrize("lang", ["en", "de"])
def test_the_default_names_nothing_the_study_blinds(lang):
    """No defense, attack or model name; nothing that announces a control (test_app_blinding's words)."""
    from advlegit.study_app.design import default_explanation

    text = default_explanation(lang)
    forbidden = SECRET_NAMES + ["adversarial", "attack", "twin", "control", "flip", "noise", "defen", "model"]
    assert not [w for w in forbidden if w in text.lower()], text


# ---- the pages

@pytest.mark.parametrize("arrival", ["?PROLIFIC_PID=EXP1&STUDY_ID=S&SESSION_ID=X",
                                     "?assignmentId=A1&hitId=H1&workerId=W1&turkSubmitTo=https%3A%2F%2Fwww.mturk.com",
                                     ""], ids=["prolific", "mturk", "plain-link"])
def test_done_page_explains_below_the_code_and_debrief_page_does_not(app, client, study_id, arrival):
    debrief, done = done_page(client, f"/s/{study_id}{arrival}")
    assert HEADING["en"] not in debrief and DEFAULT_SENTENCE["en"] not in debrief
    assert HEADING["en"] in done and DEFAULT_SENTENCE["en"] in done
    assert "<p>If you have questions about the study" in done  # Markdown paragraphs, not one run of text
    assert done.index('id="completion-code"') < done.index(HEADING["en"])


def test_german_study_explains_in_german(app, client, stimulus_dir, tmp_path):
    from advlegit.study_app.db import db
    from advlegit.study_app.design import load_design
    from advlegit.study_app.manifest import load_stimulus_set
    from advlegit.study_app.studies import create_study as _create

    with app.app_context():
        study = _create(load_stimulus_set(stimulus_dir), load_design(write_german_design(tmp_path / "de.toml")))
        db.session.commit()
        study_id = study.id
    debrief, done = done_page(client, f"/s/{study_id}?PROLIFIC_PID=DE1&STUDY_ID=S&SESSION_ID=X")
    assert HEADING["de"] in done and DEFAULT_SENTENCE["de"] in done
    assert HEADING["en"] not in done and DEFAULT_SENTENCE["en"] not in done
    assert HEADING["de"] not in debrief and DEFAULT_SENTENCE["de"] not in debrief


def test_the_design_text_replaces_the_default_and_empty_shows_none(app, client, stimulus_dir, tmp_path):
    custom = create_study(app, stimulus_dir, tmp_path, extra=with_explanation('"We studied **perception**."'))
    debrief, done = done_page(client, f"/s/{custom}?PROLIFIC_PID=C1&STUDY_ID=S&SESSION_ID=X")
    assert "We studied <strong>perception</strong>." in done and HEADING["en"] in done
    assert DEFAULT_SENTENCE["en"] not in done and "perception" not in debrief
    empty = create_study(app, stimulus_dir, tmp_path, extra=with_explanation('""'))
    _, done = done_page(client, f"/s/{empty}?PROLIFIC_PID=E1&STUDY_ID=S&SESSION_ID=X")
    assert 'id="completion-code"' in done
    assert HEADING["en"] not in done and DEFAULT_SENTENCE["en"] not in done and "study-explanation" not in done


def test_a_running_study_stored_before_the_key_shows_the_default(app, client, stimulus_dir, tmp_path):
    from advlegit.study_app.db import db
    from advlegit.study_app.models import Study

    study_id = create_study(app, stimulus_dir, tmp_path, extra=with_explanation('"Custom text."'))
    with app.app_context():
        study = db.session.get(Study, study_id)
        design = dict(study.design)
        del design["debrief_explanation_md"]
        study.design_json = json.dumps(design)
        db.session.commit()
    _, done = done_page(client, f"/s/{study_id}?PROLIFIC_PID=OLD&STUDY_ID=S&SESSION_ID=X")
    assert DEFAULT_SENTENCE["en"] in done and "Custom text." not in done
