"""The presentation protocol ([presentation]): design parsing, what an answer must report under it (bad
values: 400, nothing stored), the export's columns, and the display check before a study starts."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select
from study_fixtures import answer_body, create_study, csrf_of, page_csrf, post_answer

TIMED = """
[presentation]
fixation_ms = 300
exposure_ms = 200
mask = "noise"
mask_ms = 200
response_window_ms = 1900
confidence = true
fullscreen = true
"""


def measured(**over) -> dict:
    """What js/task.js sends under TIMED, on a 60 Hz display."""
    return {"refresh_hz": 60.0, "exposure_ms_requested": 200, "exposure_ms_measured": 200.1,
            "mask_ms_measured": 199.9, "dropped_frames": 0, "confidence": 3, "focus_lost": False,
            "fullscreen_exits": 0, **over}


def design_with(section: str):
    import tomllib

    from advlegit.study_app.design import parse_design
    base = {"study": {"name": "S", "task": "identify", "trials": 8, "target_sample_size": 5},
            "consent": {"text": "c"}, "instructions": {"text": "i"}}
    return parse_design({**base, **tomllib.loads(section)})


# ---- design parsing (no database)

def test_presentation_parses_and_defaults_to_todays_behaviour():
    p = design_with(TIMED).presentation
    assert (p.fixation_ms, p.exposure_ms, p.mask, p.mask_ms, p.response_window_ms) == (300, 200, "noise", 200, 1900)
    assert p.confidence and p.fullscreen and p.timed
    plain = design_with("").presentation
    assert (plain.exposure_ms, plain.mask, plain.response_window_ms, plain.confidence) == (0, "none", 0, False)


def test_a_stored_design_from_before_presentation_reads_as_untimed():
    from advlegit.study_app.design import Design

    d = design_with(TIMED).to_dict()
    assert Design.from_dict(d).presentation.mask_ms == 200  # round trip
    del d["presentation"]
    assert Design.from_dict(d).presentation.exposure_ms == 0


BAD_SECTIONS = [
    ("exposure_ms = -1", "presentation.exposure_ms"),
    ("exposure_ms = 2.5", "presentation.exposure_ms"),
    ("exposure_ms = true", "presentation.exposure_ms"),
    ("fixation_ms = 100000", "presentation.fixation_ms"),
    ('mask = "pink"', "presentation.mask"),
    ('mask = "noise"\nmask_ms = 200', "presentation.mask"),  # a mask after an untimed image
    ('exposure_ms = 200\nmask = "noise"', "presentation.mask_ms"),  # a mask without a duration
    ("exposure_ms = 200\nmask_ms = 100", "presentation.mask_ms"),  # a duration without a mask
    ('exposure_ms = 200\nmask = "blank"\nmask_ms = 200\nresponse_window_ms = 300',
     "presentation.response_window_ms"),
    ("min_refresh_hz = -60", "presentation.min_refresh_hz"),
    ('confidence = "yes"', "presentation.confidence"),
    ("fullscreen = 1", "presentation.fullscreen"),
    ("min_viewport_width = -1", "presentation.min_viewport_width"),
    ("min_viewport_height = 1.5", "presentation.min_viewport_height"),
    ("exposure = 200", "presentation.exposure"),  # unknown key
]


@pytest.mark.parametrize("section,field", BAD_SECTIONS)
def test_bad_presentation_values_are_refused_by_name(section, field):
    from advlegit.study_app.design import DesignError

    with pytest.raises(DesignError) as err:
        design_with("[presentation]\n" + section)
    assert str(err.value).startswith(field), str(err.value)


def test_design_errors_name_the_full_path_and_suggest_the_key_meant():
    from advlegit.study_app.design import DesignError

    with pytest.raises(DesignError, match=r"^presentation\.exposure: unknown field \(did you mean 'exposure_ms'\?"):
        design_with("[presentation]\nexposure = 200")
    with pytest.raises(DesignError, match=r"^presentation\.exposure_ms: must lie in \[0, 60000\], got -5$"):
        design_with("[presentation]\nexposure_ms = -5")
    with pytest.raises(DesignError, match=r"^debrief\.questions\[1\]: must not be empty$"):
        design_with('[debrief]\nquestions = ["ok?", " "]')


# ---- answers under a timed protocol (SQLite and PostgreSQL)

def n_responses(app) -> int:
    from advlegit.study_app.db import db
    from advlegit.study_app.models import Response

    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Response))


def start(client, study_id, pid="PID1", **display) -> str:
    r = client.get(f"/s/{study_id}?PROLIFIC_PID={pid}&STUDY_ID=S1&SESSION_ID=X{pid}")
    token = re.search(r"/p/([^/]+)/", r.headers["Location"]).group(1)
    assert client.post(f"/p/{token}/consent", data={"choice": "agree", "csrf": csrf_of(token)}).status_code == 303
    r = client.post(f"/p/{token}/instructions", data={"csrf": csrf_of(token), **display})
    assert r.status_code == 303, r.data
    return token


@pytest.fixture()
def timed_study(app, stimulus_dir, tmp_path):
    return create_study(app, stimulus_dir, tmp_path, extra=TIMED)


def export_rows(app, study_id):
    from advlegit.study_app.db import db
    from advlegit.study_app.export import iter_rows
    from advlegit.study_app.models import Study

    with app.app_context():
        return list(iter_rows(db.session.get(Study, study_id)))


def test_a_timed_answer_is_stored_and_exported_with_its_measurements(app, client, timed_study):
    token = start(client, timed_study)
    trials = client.get(f"/api/p/{token}/trials").get_json()
    assert trials["presentation"]["exposure_ms"] == 200 and trials["presentation"]["mask"] == "noise"
    assert post_answer(client, token, {**answer_body(0, "3"), **measured()}).status_code == 201
    late = {**answer_body(1, "4"), "rt_ms": 2500.0, **measured(exposure_ms_measured=233.4, dropped_frames=2,
                                                                  focus_lost=True, fullscreen_exits=1)}
    assert post_answer(client, token, late).status_code == 201
    timeout = {**answer_body(2, "timeout"), "rt_ms": 1900.0, **measured()}
    del timeout["confidence"]  # no confidence is asked after a time-out
    assert post_answer(client, token, timeout).status_code == 201
    rows = export_rows(app, timed_study)
    first, second, third = rows
    assert (first["refresh_hz"], first["exposure_ms_requested"], first["exposure_ms_measured"]) == (60.0, 200, 200.1)
    assert (first["mask_ms_measured"], first["dropped_frames"], first["confidence"]) == (199.9, 0, 3)
    assert first["focus_lost"] is False and first["fullscreen_exits"] == 0
    assert first["exposure_missed"] is False and first["response_timed_out"] is False
    assert first["response_label"] == 3  # the task's outcomes are filled
    # 33.4 ms off is two frames at 60 Hz: flagged. The answer after the window counts as timed out and its
    # outcomes are left empty (missing data), though the raw response stays.
    assert second["exposure_missed"] is True and second["dropped_frames"] == 2 and second["focus_lost"] is True
    assert second["response_timed_out"] is True and second["response"] == "4" and second["response_label"] is None
    assert second["fullscreen_exits"] == 1
    assert third["response"] == "timeout" and third["response_timed_out"] is True and third["confidence"] is None
    # The researcher's page for this participant counts the same flags.
    from test_app_admin import login

    login(app, client)
    page = client.get(f"/admin/participants/{first['participant_id']}").get_data(as_text=True)
    assert re.search(r'id="exposure-missed">1 / 3 \(2 dropped frames\)', page), page
    assert 'id="focus-lost">1<' in page and 'id="timed-out">2<' in page and 'id="fullscreen-exits">1<' in page
    assert 'id="display">60.0 Hz<' in page


BAD_MEASUREMENTS = [
    ("no refresh rate", {"refresh_hz": None}),
    ("refresh rate zero", {"refresh_hz": 0}),
    ("refresh rate as text", {"refresh_hz": "60"}),
    ("no measured exposure", {"exposure_ms_measured": None}),
    ("negative exposure", {"exposure_ms_measured": -1}),
    ("another exposure requested", {"exposure_ms_requested": 100}),
    ("no exposure requested", {"exposure_ms_requested": None}),
    ("dropped frames missing", {"dropped_frames": None}),
    ("dropped frames fractional", {"dropped_frames": 1.5}),
    ("dropped frames negative", {"dropped_frames": -1}),
    ("mask as text", {"mask_ms_measured": "200"}),
    ("confidence missing", {"confidence": None}),
    ("confidence 0", {"confidence": 0}),
    ("confidence 5", {"confidence": 5}),
    ("confidence as text", {"confidence": "3"}),
    ("confidence as bool", {"confidence": True}),
    ("focus as int", {"focus_lost": 1}),
    ("exits negative", {"fullscreen_exits": -1}),
    ("exits as bool", {"fullscreen_exits": False}),
]


def test_bad_measurements_get_400_and_store_nothing(app, client, timed_study):
    token = start(client, timed_study)
    for name, change in BAD_MEASUREMENTS:
        r = post_answer(client, token, {**answer_body(0, "3"), **measured(**change)})
        assert r.status_code == 400, name
        assert r.get_json()["error"] and r.get_json()["message"], name
        assert n_responses(app) == 0, name
    assert post_answer(client, token, {**answer_body(0, "3"), **measured()}).status_code == 201


def test_an_untimed_study_takes_no_timing_and_no_timeout(app, client, study_id):
    token = start(client, study_id)
    for extra in ({"exposure_ms_measured": 200.0}, {"dropped_frames": 0}, {"confidence": 3},
                  {"fullscreen_exits": 0}, {"mask_ms_measured": 200.0}, {"exposure_ms_requested": 0}):
        assert post_answer(client, token, {**answer_body(0, "3"), **extra}).status_code == 400, extra
    r = post_answer(client, token, answer_body(0, "timeout"))
    assert r.status_code == 400 and r.get_json()["error"] == "invalid_response"
    assert n_responses(app) == 0
    ok = {**answer_body(0, "3"), "refresh_hz": 59.94, "focus_lost": True}
    assert post_answer(client, token, ok).status_code == 201
    row = export_rows(app, study_id)[0]
    assert row["refresh_hz"] == 59.94 and row["focus_lost"] is True
    assert row["exposure_ms_requested"] is None and row["exposure_missed"] is None
    assert row["response_timed_out"] is None and row["confidence"] is None and row["fullscreen_exits"] is None


def test_the_bots_measurements_are_accepted(app, client, timed_study):
    import random

    from advlegit.study_app.bots import presentation_fields
    from advlegit.study_app.presentation import Presentation
    from advlegit.study_app.responses import parse

    pres = client.get(f"/api/p/{start(client, timed_study)}/trials").get_json()["presentation"]
    rng = random.Random(1)
    for _ in range(50):
        fields = presentation_fields(pres, "3", 60.0, rng)
        parse({**answer_body(0, "3"), **fields}, "identify", Presentation(**pres))


# ---- the display check before the first trial

VIEWPORT = """
[presentation]
exposure_ms = 200
min_refresh_hz = 50
min_viewport_width = 800
min_viewport_height = 600
"""


def n_trials(app) -> int:
    from advlegit.study_app.db import db
    from advlegit.study_app.models import Trial

    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Trial))


def test_a_display_below_the_minimum_is_told_why_and_not_started(app, client, stimulus_dir, tmp_path):
    study = create_study(app, stimulus_dir, tmp_path, extra=VIEWPORT)
    r = client.get(f"/s/{study}?PROLIFIC_PID=P9&STUDY_ID=S1&SESSION_ID=X9")
    token = re.search(r"/p/([^/]+)/", r.headers["Location"]).group(1)
    client.post(f"/p/{token}/consent", data={"choice": "agree", "csrf": csrf_of(token)})
    page = client.get(f"/p/{token}/instructions").get_data(as_text=True)
    assert 'data-min-width="800"' in page and "js/display.js" in page
    csrf = page_csrf(client, f"/p/{token}/instructions")
    cases = [({}, "JavaScript"),
             ({"refresh_hz": "60", "viewport_width": "640", "viewport_height": "900"}, "at least 800 × 600"),
             ({"refresh_hz": "30.1", "viewport_width": "1024", "viewport_height": "768"}, "measured 30"),
             ({"refresh_hz": "nan", "viewport_width": "1024", "viewport_height": "768"}, "JavaScript")]
    for display, says in cases:
        r = client.post(f"/p/{token}/instructions", data={"csrf": csrf, **display})
        assert r.status_code == 422 and says in r.get_data(as_text=True), display
        assert n_trials(app) == 0
        assert client.get(f"/api/p/{token}/state").get_json()["state"] == "instructed"
    # After resizing, the same button starts the study.
    r = client.post(f"/p/{token}/instructions", data={"csrf": csrf, "refresh_hz": "59.9", "viewport_width": "1024",
                                                      "viewport_height": "768"})
    assert r.status_code == 303 and r.headers["Location"].endswith("/task") and n_trials(app) > 0
