"""Every task type in the registry (study_app/tasks) through the app: the task page loads its renderer,
every valid answer is stored and nothing else is, the export fills the task's outcome columns with the
contract's types and leaves the other tasks' empty, the attention rule agrees between export and
dashboard, and simulated participants answer it over real HTTP. A new task is covered by adding it."""
from __future__ import annotations

import pytest
from study_fixtures import answer_body, bot_token, create_study, post_answer, start_participant, valid_answers

from advlegit.contracts import export as contract
from advlegit.study_app.tasks import OUTCOME_COLUMNS, TASKS

ALL_TASKS = [str(t) for t in TASKS]
PY_TYPES = {"str": str, "int": int, "float": float, "bool": bool}


def _export(app, study_id):
    from advlegit.study_app.db import db
    from advlegit.study_app.export import iter_rows
    from advlegit.study_app.models import Study
    from advlegit.study_app.stats import study_stats

    with app.app_context():
        study = db.session.get(Study, study_id)
        return list(iter_rows(study)), study_stats(study)


def _check_outcomes(task, rows):
    plugin = TASKS[task]
    others = set(OUTCOME_COLUMNS) - set(plugin.outcome_columns)
    for r in rows:
        assert r["task_type"] == task and r["response"] in plugin.responses
        assert all(r[c] is None for c in others), {c: r[c] for c in others if r[c] is not None}
        for c in plugin.outcome_columns:
            assert r[c] is None or type(r[c]) is PY_TYPES[contract.dtype_of(c)], (c, r[c])
        assert (r["attention_passed"] is not None) == r["is_attention_check"]
    main = [r for r in rows if r["trial_kind"] == "main"]
    assert main and all(r[plugin.primary_outcome] is not None for r in main)


@pytest.mark.parametrize("task", ALL_TASKS)
def test_a_participant_answers_every_task_and_the_export_fills_its_columns(app, client, stimulus_dir, tmp_path,
                                                                          task):
    plugin = TASKS[task]
    study_id = create_study(app, stimulus_dir, tmp_path, task)
    token = start_participant(client, study_id)
    page = client.get(f"/p/{token}/task").get_data(as_text=True)
    assert f'src="/static/{plugin.renderer}?v=' in page
    assert page.index(plugin.renderer) < page.index("js/task.js")  # the renderer registers before the runner
    assert client.get(f"/static/{plugin.renderer}").status_code == 200
    d = client.get(f"/api/p/{token}/trials").get_json()
    assert d["task"] == task and d["keys"] == plugin.keys()
    assert all(t["prompt"] for t in d["trials"])
    assert all(t["feedback"] for t in d["trials"] if t["practice"])
    assert all(bool(t["image_b"]) == (plugin.n_images == 2) for t in d["trials"])

    # What another task accepts, or nothing like an answer, is refused and stores nothing.
    foreign = sorted(set().union(*(t.responses for t in TASKS.values())) - plugin.responses)
    for bad in foreign + ["", "bogus", " 1", "LEFT"]:
        r = post_answer(client, token, answer_body(0, bad))
        assert r.status_code == 400 and r.get_json()["error"] == "invalid_response", (bad, r.get_json())
    assert client.get(f"/api/p/{token}/state").get_json()["stored"] == 0

    answers = valid_answers(task)
    for n, t in enumerate(d["trials"]):  # cycling through the valid answers
        r = post_answer(client, token, answer_body(t["index"], answers[n % len(answers)]))
        assert r.status_code == 201, r.get_json()
    assert client.get(f"/api/p/{token}/state").get_json()["state"] == "data_complete"

    rows, stats = _export(app, study_id)
    assert len(rows) == d["n_trials"]
    _check_outcomes(task, rows)
    # The dashboard counts attention failures by the same rule the export writes.
    assert stats.attention_failures == sum(r["attention_passed"] is False for r in rows)


@pytest.mark.parametrize("task", ALL_TASKS)
def test_bots_answer_every_task_over_real_http(app, server_process, stimulus_dir, tmp_path, task):
    from advlegit.study_app.bots import AnswerModel, Oracle, run_bots

    study_id = create_study(app, stimulus_dir, tmp_path, task, practice=1, checks=1)
    oracle = Oracle.from_stimulus_dir(str(stimulus_dir))
    results = run_bots(server_process.url, study_id, 2, oracle, AnswerModel(kind="rater", noise=0.2),
                       simulated_token=bot_token(study_id), seed=5)
    rows, _ = _export(app, study_id)
    assert len(results) == 2 and len(rows) == sum(r.answered for r in results)
    assert all(r["simulated"] for r in rows)
    _check_outcomes(task, rows)


@pytest.mark.parametrize("task", ALL_TASKS)
def test_bot_answers_are_valid_and_follow_the_seed(stimulus_dir, task):
    """Without a server: the plugin's bot and careless answers are answers the task accepts."""
    import random

    from advlegit.study_app.bots import AnswerModel, Oracle

    oracle = Oracle.from_stimulus_dir(str(stimulus_dir))
    entries = [e for e in oracle.by_sha.values() if "defense" in e][:TASKS[task].n_images]
    for model in (AnswerModel(kind="rater", noise=0.0), AnswerModel(kind="rater", noise=1.0),
                  AnswerModel(kind="effect", effects={e["defense"]: 0.5 for e in entries}, noise=0.0)):
        runs = [[model.answer(task, entries, entries[0]["target_label"], oracle, random.Random(seed))
                 for seed in range(40)] for _ in range(2)]
        assert runs[0] == runs[1]  # deterministic under a seed
        assert set(runs[0]) <= TASKS[task].responses
