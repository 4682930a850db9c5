"""Faults under load: a gunicorn worker killed with SIGKILL, then PostgreSQL restarted, while simulated
participants answer over real HTTP. Afterwards every answer the server acknowledged is in the database
exactly once, nothing else is, and every participant finished (clients retry with the same UUID, as
task.js does).

Runs against a private PostgreSQL server (study_fixtures.PrivatePostgres) so that restarting it cannot
disturb anything else using the shared test server; benchmarks/bench_faults.py reports the same run
with numbers.
"""
from __future__ import annotations

import os
import signal
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, text
from study_fixtures import PrivatePostgres, ServerProcess, bot_token, write_design

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

N_BOTS = 40        # x 12 trials = 480 answers
KILL_AT = 80       # acknowledged answers before a worker is killed
RESTART_AT = 200   # ... and before PostgreSQL is restarted


def test_acknowledged_answers_survive_worker_kill_and_postgres_restart(postgres_url, stimulus_dir, tmp_path):
    from advlegit.study_app.bots import AnswerModel, Oracle, run_bot
    from advlegit.study_app.cli import cli

    with PrivatePostgres() as pg:
        env = {"DATABASE_URL": pg.url, "ADVLEGIT_INSTANCE": str(tmp_path / "inst")}
        runner = CliRunner()
        res = runner.invoke(cli, ["db", "upgrade"], env=env)
        assert res.exit_code == 0, res.output
        res = runner.invoke(cli, ["study", "create", "--stimuli", str(stimulus_dir), "--design",
                                  str(write_design(tmp_path / "design.toml", "identify"))], env=env)
        assert res.exit_code == 0, res.output
        study_id = res.output.strip().splitlines()[-1]
        oracle = Oracle.from_stimulus_dir(str(stimulus_dir))

        with ServerProcess(pg.url, tmp_path / "srv", workers=2) as srv:
            acked: list[tuple[str, str, int]] = []  # (uuid, token, trial index) per acknowledgement
            lock = threading.Lock()
            faults: dict[str, object] = {}
            workers_before = srv.worker_pids()
            pg_pid_before = pg.postmaster_pid()
            assert len(workers_before) == 2

            def on_ack(token, body):
                with lock:
                    acked.append((body["uuid"], token, body["trial_index"]))
                    n = len(acked)
                    kill = n >= KILL_AT and "killed" not in faults
                    restart = n >= RESTART_AT and "restarted" not in faults
                    if kill:
                        faults["killed"] = workers_before[0]
                    if restart:
                        faults["restarted"] = True
                if kill:
                    os.kill(workers_before[0], signal.SIGKILL)
                if restart:
                    pg.restart()  # blocks this one client for the restart; the others keep going

            def bot(i):
                return run_bot(srv.url, study_id, oracle, AnswerModel(kind="rater", noise=0.1), seed=1000 + i,
                               image_cache=images, retries=40, on_ack=on_ack, simulated_token=bot_token(study_id))

            images: dict[str, bytes] = {}
            with ThreadPoolExecutor(max_workers=N_BOTS) as pool:
                results = list(pool.map(bot, range(N_BOTS)))
            workers_after = srv.worker_pids()
        pg_pid_after = pg.postmaster_pid()

        engine = create_engine(pg.url)
        try:
            with engine.connect() as conn:
                rows = conn.execute(text("SELECT r.uuid, p.access_token, r.trial_index FROM responses r "
                                         "JOIN participants p ON p.id = r.participant_id")).all()
                states = Counter(s for (s,) in conn.execute(text("SELECT state FROM participants")))
        finally:
            engine.dispose()

    # The faults happened, during the load, and the server recovered from both.
    assert faults.get("killed") and faults.get("restarted"), "the faults did not happen during the load"
    assert faults["killed"] not in workers_after and len(workers_after) == 2  # gunicorn replaced the worker
    assert pg_pid_after != pg_pid_before
    # Every participant resumed and finished.
    assert len(results) == N_BOTS and all(r.answered == 12 for r in results)
    assert states == {"code_issued": N_BOTS}
    # Acknowledged == stored, exactly once each: zero lost, zero duplicated, nothing unacknowledged.
    acked_uuids = Counter(u for u, _, _ in acked)
    stored_uuids = Counter(u for u, _, _ in rows)
    assert max(stored_uuids.values()) == 1, "a response is stored twice"
    assert set(acked_uuids) == set(stored_uuids), (
        f"lost: {len(set(acked_uuids) - set(stored_uuids))}, "
        f"unacknowledged: {len(set(stored_uuids) - set(acked_uuids))}"
    )
    assert len(rows) == N_BOTS * 12
    assert len({(tok, idx) for _, tok, idx in rows}) == len(rows)  # one row per (participant, trial)
