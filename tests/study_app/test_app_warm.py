"""A worker's caches (memo.py) and the warm-up `serve --production` runs before a worker takes requests
(warm.py): after it, neither a Start nor a trial list reads the set's images or manifest again."""
from __future__ import annotations

import threading
import time

import pytest
from study_fixtures import create_study, start_participant

from advlegit.study_app import allocation
from advlegit.study_app.api import views as api_views
from advlegit.study_app.memo import OncePerProcess
from advlegit.study_app.models import StimulusSet, Study
from advlegit.study_app.warm import warm_open_studies


def test_one_build_per_key_however_many_threads_ask_at_once():
    cache: OncePerProcess[object] = OncePerProcess(keep=4)
    built = []

    def build():
        time.sleep(0.05)  # long enough that every thread arrives while it runs
        built.append(object())
        return built[-1]

    got = []
    threads = [threading.Thread(target=lambda: got.append(cache.get("k", build))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(built) == 1 and len(got) == 8 and all(g is built[0] for g in got)


def test_a_failed_build_reaches_its_caller_and_the_next_caller_builds_again():
    cache: OncePerProcess[int] = OncePerProcess(keep=4)

    def broken():
        raise RuntimeError("database down")

    with pytest.raises(RuntimeError, match="database down"):
        cache.get("k", broken)
    assert "k" not in cache
    assert cache.get("k", lambda: 7) == 7


def test_the_least_recently_used_value_goes_first():
    cache: OncePerProcess[str] = OncePerProcess(keep=2)
    cache.get("a", lambda: "a")
    cache.get("b", lambda: "b")
    cache.get("a", lambda: "rebuilt")  # a used again: b is now the oldest
    cache.get("c", lambda: "c")
    assert "a" in cache and "c" in cache and "b" not in cache


def make_cold(monkeypatch):
    """Empty caches for this test: creating a study fills them, and so may other tests in this process."""
    monkeypatch.setattr(allocation, "_POOLS", OncePerProcess(keep=allocation.POOLS_KEPT))
    monkeypatch.setattr(api_views, "_CLASSES", OncePerProcess(keep=64))


@pytest.fixture()
def cold(study_id, monkeypatch):
    make_cold(monkeypatch)


def test_after_warming_a_start_and_a_trial_list_build_nothing(app, client, study_id, cold, monkeypatch):
    assert warm_open_studies(app) == [study_id]

    def never(*_a, **_k):
        raise AssertionError("built on a request after the warm-up")

    monkeypatch.setattr(allocation, "_build_pool", never)
    monkeypatch.setattr(StimulusSet, "manifest", property(never))
    token = start_participant(client, study_id)
    r = client.get(f"/api/p/{token}/trials")
    assert r.status_code == 200 and len(r.get_json()["trials"]) > 0


def test_closed_studies_are_not_warmed_and_a_broken_one_does_not_stop_the_rest(app, stimulus_dir, tmp_path,
                                                                                monkeypatch, caplog):
    from advlegit.study_app.db import db

    for sub in "abc":
        (tmp_path / sub).mkdir()
    ok = create_study(app, stimulus_dir, tmp_path / "a", "identify")
    broken = create_study(app, stimulus_dir, tmp_path / "b", "rate")
    closed = create_study(app, stimulus_dir, tmp_path / "c", "identify")
    with app.app_context():
        db.session.get(Study, closed).status = "closed"
        db.session.commit()
    make_cold(monkeypatch)  # creating a study builds its pool (its fill rows are seeded from it)
    build = allocation._build_pool

    def build_or_fail(study):
        if study.id == broken:
            raise RuntimeError("unreadable set")
        return build(study)

    monkeypatch.setattr(allocation, "_build_pool", build_or_fail)
    notified = []
    assert warm_open_studies(app, notify=lambda: notified.append(1)) == [ok]
    assert f"study {broken} left to build on its first request" in caplog.text
    assert len(notified) >= 2  # the master hears from the worker between studies


def test_warming_with_the_database_down_logs_and_returns(tmp_path, caplog):
    from study_fixtures import make_app

    app = make_app(f"sqlite:///{tmp_path / 'missing' / 'no.db'}", tmp_path / "inst")
    assert warm_open_studies(app) == []
    assert "could not list the open studies" in caplog.text
