"""The study app's commands; advlegit/cli.py adds each of `cli.commands` at the top level."""
from __future__ import annotations

import getpass
import json
import logging
import os
from pathlib import Path

import click

from advlegit.contracts.cli_flags import effect_option, output_option

log = logging.getLogger(__name__)

cli = click.Group("study_app", help="Study app commands.")


def _settings():
    """The app's settings from the environment; a bad value ends the command with its message."""
    from .settings import AppSettings, ConfigError

    try:
        return AppSettings.from_env(os.environ)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


def _app(require_schema: bool = True, settings=None):
    from . import create_app
    from .settings import ConfigError

    try:
        app = create_app(settings or _settings())
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    if require_schema:
        with app.app_context():
            problem = schema_problem()
        if problem:
            raise click.ClickException(
                f"{problem} (database {_safe_url(app.config['SQLALCHEMY_DATABASE_URI'])}); "
                "run `advlegit db upgrade` first")
    return app


def schema_problem() -> str | None:
    """Why this database cannot serve the commands, or None. A database made by `db upgrade` must be
    at the newest migration; one without Alembic's table (made by create_all, as tests do) only needs
    the tables."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy import inspect

    from . import MIGRATIONS_DIR
    from .db import db

    with db.engine.connect() as conn:
        tables = set(inspect(conn).get_table_names())
        if "studies" not in tables:
            return "the database has no advlegit tables yet"
        if "alembic_version" not in tables:
            return None
        current = set(MigrationContext.configure(conn).get_current_heads())
    heads = set(ScriptDirectory(MIGRATIONS_DIR).get_heads())
    if current != heads:
        return (f"the database is at migration {', '.join(sorted(current)) or 'none'}, "
                f"this version of advlegit needs {', '.join(sorted(heads))}")
    return None


@cli.group("db")
def db_group() -> None:
    """Database schema (Alembic migrations in migrations/)."""


@db_group.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply migrations to $DATABASE_URL (default: SQLite in the instance folder)."""
    from flask_migrate import upgrade

    from . import MIGRATIONS_DIR

    app = _app(require_schema=False)
    with app.app_context():
        upgrade(directory=MIGRATIONS_DIR, revision=revision)
    click.echo(f"database at {_safe_url(app.config['SQLALCHEMY_DATABASE_URI'])} is at {revision}")


def _cli_actor() -> str:
    """Who ran a command, for the audit log: the login name on this machine."""
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no user name in a bare container
        return "cli"


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@cli.group("study")
def study_group() -> None:
    """Create and list studies."""


@study_group.command("create")
@click.option("--stimuli", "stimuli", required=True, type=click.Path(file_okay=False), help="stimulus set folder")
@click.option("--design", "design_path", required=True, type=click.Path(dir_okay=False), help="design TOML file")
@click.option("--owner", default=None, help="account that owns the study (site admins see every study anyway)")
def study_create(stimuli: str, design_path: str, owner: str | None) -> None:
    """Import a stimulus set (verified, idempotent) and create a study; prints the study id last."""
    from .db import db
    from .design import DesignError, load_design
    from .manifest import StimulusSetError, load_stimulus_set
    from .studies import create_study

    try:
        design = load_design(design_path)
        loaded = load_stimulus_set(stimuli)
    except (DesignError, StimulusSetError) as exc:
        raise click.ClickException(str(exc)) from exc
    app = _app()
    with app.app_context():
        try:
            study = create_study(loaded, design)
            from . import audit

            audit.record(_cli_actor(), "study_created", study.id,
                         f"{design.task} study from stimulus set {loaded.name} (command line)")
            if owner:
                from . import roles

                audit.record(_cli_actor(), "member", study.id, roles.set_member(study.id, owner, "owner"))
            db.session.commit()
        except DesignError as exc:
            db.session.rollback()
            raise click.ClickException(f"{design_path}: {exc}") from exc
        except ValueError as exc:  # roles.RoleError: an unknown --owner; nothing was created
            db.session.rollback()
            raise click.ClickException(str(exc)) from exc
        click.echo(f"stimulus set {loaded.name} (manifest sha256 {loaded.manifest_sha256})")
        click.echo(f"participant link: /s/{study.id}")
        click.echo(study.id)


@study_group.command("clone")
@click.argument("study_id")
@click.option("--stimuli", "stimuli", required=True, type=click.Path(file_okay=False), help="stimulus set folder")
@click.option("--design", "design_path", default=None, type=click.Path(dir_okay=False),
              help="the changed design (default: the study's own)")
def study_clone(study_id: str, stimuli: str, design_path: str | None) -> None:
    """A new version of a study: a started study's design and stimulus set are locked, so a change is a
    new study, linked to the old one and with the same members. Prints the new study id last."""
    from . import audit, roles
    from .db import db
    from .design import Design, DesignError, load_design
    from .manifest import StimulusSetError, load_stimulus_set
    from .models import Study, StudyMember
    from .studies import create_study

    try:
        design = load_design(design_path) if design_path else None
        loaded = load_stimulus_set(stimuli)
    except (DesignError, StimulusSetError) as exc:
        raise click.ClickException(str(exc)) from exc
    with _app().app_context():
        parent = db.session.get(Study, study_id)
        if parent is None:
            raise click.ClickException(f"no study {study_id!r}")
        try:
            study = create_study(loaded, design or Design.from_dict(parent.design), parent=parent)
        except DesignError as exc:
            db.session.rollback()
            raise click.ClickException(f"{design_path or 'the design'}: {exc}") from exc
        for m in roles.members(parent.id):
            db.session.add(StudyMember(study_id=study.id, user_id=m.user_id, role=m.role))
        audit.record(_cli_actor(), "study_created", study.id,
                     f"version {study.version} of study {parent.id} (command line)")
        db.session.commit()
        click.echo(f"study {study.id} is version {study.version} of {parent.id}; close the old one with the "
                   "admin page when the new one opens", err=True)
        click.echo(f"participant link: /s/{study.id}")
        click.echo(study.id)


@study_group.command("list")
def study_list() -> None:
    """One line per study: id, status, task type, name."""
    from sqlalchemy import select

    from .db import db
    from .models import Study

    with _app().app_context():
        studies = db.session.scalars(select(Study).order_by(Study.created_at)).all()
        for s in studies:
            click.echo(f"{s.id}\t{s.status}\t{s.task_type}\t{s.name}")
        if not studies:
            click.echo("no studies yet: `advlegit study create --stimuli DIR --design FILE` makes one", err=True)


@cli.command("create-admin")
@click.option("--username", default="admin", show_default=True)
@click.option("--researcher", is_flag=True,
              help="an account that sees only the studies it is a member of (default: a site admin, who sees all)")
def create_admin(username: str, researcher: bool) -> None:
    """Create or reset a researcher login. Password from $ADVLEGIT_ADMIN_PASSWORD or a prompt."""
    from . import audit
    from .accounts import AccountError, save_account
    from .db import db

    password = _settings().admin_password
    if not password:
        password = getpass.getpass("password: ")
        if password != getpass.getpass("again: "):
            raise click.ClickException("passwords differ")
    with _app().app_context():
        try:
            saved = save_account(username, password, site_admin=not researcher)
        except AccountError as exc:
            db.session.rollback()
            raise click.ClickException(str(exc)) from exc
        audit.record(_cli_actor(), "account", None, saved + " (command line)")
        db.session.commit()
    click.echo(f"{'researcher' if researcher else 'admin'} user {username} saved")


@study_group.command("member")
@click.option("--study", "study_id", required=True)
@click.option("--user", "username", required=True, help="account name (create-admin --researcher makes one)")
@click.option("--role", required=True, type=click.Choice(["owner", "collaborator", "viewer", "none"]),
              help="none removes the member")
def study_member(study_id: str, username: str, role: str) -> None:
    """Add, change or remove a researcher's role in a study."""
    from . import audit, roles
    from .db import db
    from .models import Study

    with _app().app_context():
        if db.session.get(Study, study_id) is None:
            raise click.ClickException(f"no study {study_id!r}")
        try:
            change = roles.set_member(study_id, username, role)
        except roles.RoleError as exc:
            db.session.rollback()
            raise click.ClickException(str(exc)) from exc
        audit.record(_cli_actor(), "member", study_id, change + " (command line)")
        db.session.commit()
    click.echo(change)


@cli.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--production", is_flag=True,
              help="gunicorn (gthread) instead of the dev server; needs ADVLEGIT_SECRET_KEY; https-only cookies")
@click.option("--workers", default=None, type=int,
              help="gunicorn worker processes [default: $WEB_CONCURRENCY or 4]")
@click.option("--threads", default=None, type=int, help="threads per worker [default: $ADVLEGIT_THREADS or 4]")
@click.option("--access-log/--no-access-log", default=True, show_default=True,
              help="gunicorn access log on stdout (participant tokens and platform ids redacted)")
def serve(host: str, port: int, production: bool, workers: int | None, threads: int | None,
          access_log: bool) -> None:
    """Serve participants and the admin pages (docs/deployment.md)."""
    import dataclasses

    settings = _settings()
    if not production:
        _app(settings=settings).run(host=host, port=port, threaded=True)
        return
    workers = workers or settings.web_concurrency
    threads = threads or settings.threads
    # Each worker's pools hold one connection per thread unless ADVLEGIT_DB_POOL_SIZE says otherwise.
    settings = dataclasses.replace(settings, production=True, db_pool_size=settings.db_pool_size or threads)
    # Refuses a missing or weak secret, or an old schema, before any worker starts.
    probe = _app(settings=settings)
    if probe.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        log.warning("serving a live study from SQLite: PostgreSQL (DATABASE_URL) is recommended")
    from gunicorn.app.base import BaseApplication

    from . import create_app, gunicorn_hooks

    class _Gunicorn(BaseApplication):
        def load_config(self):
            for k, v in {"bind": f"{host}:{port}", "workers": workers, "threads": threads,
                         "worker_class": "gthread", "accesslog": "-" if access_log else None,
                         # participant tokens and platform ids never reach the log (study_app/accesslog.py)
                         "logger_class": "advlegit.study_app.accesslog.RedactingLogger",
                         "timeout": 60, "graceful_timeout": 20, "keepalive": 5, "backlog": 2048,
                         "post_worker_init": gunicorn_hooks.post_worker_init}.items():
                self.cfg.set(k, v)

        def load(self):
            # Called in each worker after the fork (no preload): the worker builds its own app and
            # connection pools from the settings this process parsed, inherited through the fork, so
            # nothing is written into os.environ. (A USR2 re-exec runs this command again from the
            # original environment, which yields the same settings.)
            return create_app(settings)

    click.echo(f"gunicorn: {workers} workers x {threads} threads on http://{host}:{port}", err=True)
    _Gunicorn().run()


@study_group.command("bot-token")
@click.argument("study_id")
def study_bot_token(study_id: str) -> None:
    """Print the token `advlegit bots --simulated-token` needs to run bots against this server from
    another machine (bots beside the server derive it from the same secret)."""
    from .db import db
    from .models import Study
    from .security import simulated_token_for

    app = _app()
    with app.app_context():
        if db.session.get(Study, study_id) is None:
            raise click.ClickException(f"no study {study_id!r}")
        click.echo(simulated_token_for(app.config["SECRET_KEY"], study_id))


@cli.command("bots")
@click.option("--url", required=True, help="base URL of a running server, e.g. http://127.0.0.1:5000")
@click.option("--study", "study_id", required=True)
@click.option("-n", "--n-participants", "n", default=10, show_default=True, type=int,
              help="simulated participants to run")
@click.option("--stimuli", type=click.Path(file_okay=False), help="stimulus set folder (else read the DB)")
@click.option("--model", type=click.Choice(["rater", "effect"]), default="rater", show_default=True)
@click.option("--rater", default=None, help="rater model name (default: the first rater in the manifest)")
@click.option("--noise", default=0.1, show_default=True, type=float, help="chance of a random answer")
@effect_option("prob", "chance of naming the target (effect model; repeatable)", old="--effect")
@click.option("--concurrency", default=1, show_default=True, type=int)
@click.option("--platform", type=click.Choice(["prolific", "mturk", "anonymous"]), default="prolific")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--simulated-token", default=None,
              help="the study's token from `advlegit study bot-token` [default: $ADVLEGIT_SIMULATED_TOKEN, else "
                   "derived from this machine's ADVLEGIT_SECRET_KEY / instance secret, i.e. the server's when run "
                   "beside it]")
def bots(url, study_id, n, stimuli, model, rater, noise, effects, concurrency, platform, seed,
         simulated_token) -> None:
    """Run N simulated participants through the real HTTP flow; the server stores them as simulated."""
    from .bots import AnswerModel, BotError, Oracle, run_bots
    from .security import simulated_token_for

    if stimuli:
        oracle = Oracle.from_stimulus_dir(stimuli)
    else:
        with _app().app_context():
            oracle = Oracle.from_database(study_id)
    simulated_token = simulated_token or _settings().simulated_token
    if not simulated_token:
        simulated_token = simulated_token_for(_app().config["SECRET_KEY"], study_id)
    answer_model = AnswerModel(kind=model, rater=rater, noise=noise, effects=effects)
    done = [0]

    def tick():
        done[0] += 1
        if done[0] % 10 == 0 or done[0] == n:
            click.echo(f"{done[0]}/{n} bots finished", err=True)

    try:
        results = run_bots(url, study_id, n, oracle, answer_model, seed=seed, concurrency=concurrency,
                           platform=platform, progress=tick, simulated_token=simulated_token)
    except (BotError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{len(results)} bots completed, {sum(r.answered for r in results)} responses")


@cli.command("export")
@click.option("--study", "study_id", required=True)
@output_option("FILE.csv or FILE.jsonl", dir_okay=False, required=True)
@click.option("--include-platform-ids", is_flag=True, help="add Prolific/MTurk ids (identifying!)")
def export(study_id: str, output: str, include_platform_ids: bool) -> None:
    """Tidy export (docs/export.md) plus FILE.study.json with the design and its [analysis] section."""
    from .db import db
    from .export import companion, stream_csv, stream_debrief_csv, stream_jsonl
    from .models import Study

    out = Path(output)
    if out.suffix not in (".csv", ".jsonl"):
        raise click.BadParameter("output must end in .csv or .jsonl", param_hint="-o")
    with _app().app_context():
        study = db.session.get(Study, study_id)
        if study is None:
            raise click.ClickException(f"no study {study_id!r}")
        stream = stream_csv if out.suffix == ".csv" else stream_jsonl
        out.parent.mkdir(parents=True, exist_ok=True)  # `-o exports/x.csv` into a new folder just works
        tmp = out.with_name(out.name + ".partial")
        with tmp.open("w", encoding="utf-8", newline="") as f:
            for chunk in stream(study, include_platform_ids):
                f.write(chunk)
        tmp.replace(out)
        side = out.with_suffix(".study.json")
        side.write_text(json.dumps(companion(study), indent=2))
        debrief = out.with_suffix(".debrief.csv")
        debrief.write_text("".join(stream_debrief_csv(study)), encoding="utf-8")
        from . import audit

        audit.record(_cli_actor(), "export", study.id,
                     f"{out.suffix[1:]}{' with platform ids' if include_platform_ids else ''} (command line)")
        db.session.commit()
    click.echo(f"wrote {out}, {side} and {debrief}", err=True)
    click.echo(str(out))


@cli.command("erase")
@click.option("--study", "study_id", required=True)
@click.option("--platform-id", "platform_pid", default=None, help="the person's Prolific or MTurk id")
@click.option("--participant", "participant_id", default=None, help="or the pseudonymous participant id")
@click.option("--reason", default="on request", show_default=True,
              help="kept in the audit log (no names or platform ids)")
@click.option("--yes", is_flag=True, help="do not ask for confirmation")
def erase(study_id: str, platform_pid: str | None, participant_id: str | None, reason: str, yes: bool) -> None:
    """Delete every answer and record of one participant, on their request (docs/study-app.md)."""
    from sqlalchemy import select

    from .db import db
    from .erasure import ErasureError, find
    from .erasure import erase as erase_participant
    from .models import Participant

    if (platform_pid is None) == (participant_id is None):
        raise click.UsageError("give exactly one of --platform-id and --participant")
    with _app().app_context():
        try:
            if platform_pid is not None:
                p = find(study_id, platform_pid)
            else:
                p = db.session.scalar(select(Participant).where(
                    Participant.id == participant_id, Participant.study_id == study_id).with_for_update())
                if p is None:
                    raise ErasureError(f"no participant {participant_id!r} in study {study_id}")
        except ErasureError as exc:
            db.session.rollback()
            raise click.ClickException(str(exc)) from exc
        if not yes and not click.confirm(f"Erase participant {p.id} ({p.state}) and all their answers for good?"):
            db.session.rollback()
            raise click.ClickException("nothing erased")
        done = erase_participant(p, _cli_actor(), reason)
        db.session.commit()
    click.echo(f"erased participant {done.participant_id}: {done.responses} answers, {done.trials} trials")
