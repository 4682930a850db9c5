"""Accounts and roles (issue 17, item 1): site admins see everything; a researcher sees only the studies
they are a member of, and their role bounds what they may do. Every change is in the audit log.
Runs on SQLite and PostgreSQL (the app fixture)."""
from __future__ import annotations

import re

from click.testing import CliRunner
from study_fixtures import create_study
from test_app_admin import PASSWORD, admin_login, complete, csrf, login


def _account(app, username, researcher=True):
    from advlegit.study_app.cli import cli

    args = ["create-admin", "--username", username] + (["--researcher"] if researcher else [])
    res = CliRunner().invoke(cli, args, env={"DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
                                             "ADVLEGIT_INSTANCE": app.instance_path,
                                             "ADVLEGIT_ADMIN_PASSWORD": PASSWORD})
    assert res.exit_code == 0, res.output


def _client(app, username):
    c = app.test_client()
    assert admin_login(c, username, PASSWORD).status_code == 303
    return c


def _member(client, study_id, username, role):
    return client.post(f"/admin/studies/{study_id}/members",
                       data={"csrf": csrf(client, f"/admin/studies/{study_id}"), "username": username, "role": role})


def _participant_id(client, study_id):
    page = client.get(f"/admin/studies/{study_id}").get_data(as_text=True)
    return re.search(r'id="p-([^"]+)"', page).group(1)


def test_roles_bound_what_each_researcher_sees_and_does(app, client, study_id, stimulus_dir, tmp_path):
    other = create_study(app, stimulus_dir, tmp_path, task="rate")
    complete(client, study_id, "PAYME")
    login(app, client)  # alice: a site admin (create-admin without --researcher)
    pid = _participant_id(client, study_id)
    for name in ("bob", "carol", "vic"):
        _account(app, name)
    assert _member(client, study_id, "bob", "owner").status_code == 303
    assert _member(client, study_id, "nobody", "viewer").status_code == 400  # unknown account: refused

    bob = _client(app, "bob")
    assert _member(bob, study_id, "carol", "collaborator").status_code == 303
    assert _member(bob, study_id, "vic", "viewer").status_code == 303
    assert _member(bob, study_id, "bob", "none").status_code == 400  # the only owner cannot leave
    assert _member(bob, study_id, "vic", "boss").status_code == 400

    carol, vic = _client(app, "carol"), _client(app, "vic")
    # Nobody but site admins sees a study they were not added to: not listed, and 404 (not 403) on every page.
    for c in (bob, carol, vic):
        listing = c.get("/admin/").get_data(as_text=True)
        assert study_id in listing and other not in listing
        assert c.get(f"/admin/studies/{other}").status_code == 404
        assert c.get(f"/admin/studies/{other}/export.csv").status_code == 404
    assert other in client.get("/admin/").get_data(as_text=True)

    # A viewer reads the study and exports without ids, and can do nothing else.
    page = vic.get(f"/admin/studies/{study_id}").get_data(as_text=True)
    assert 'id="my-role">viewer' in page and "PAYME".lower() not in page and "Close study" not in page
    assert vic.get(f"/admin/studies/{study_id}/export.csv").status_code == 200
    assert vic.get(f"/admin/studies/{study_id}/export.csv?platform_ids=1").status_code == 403
    assert vic.get(f"/admin/participants/{pid}").status_code == 403
    token = csrf(vic, f"/admin/studies/{study_id}")
    r = vic.post(f"/admin/participants/{pid}/review", data={"csrf": token, "review": "approved"})
    assert r.status_code == 403  # a viewer cannot approve
    assert vic.post(f"/admin/studies/{study_id}/status", data={"csrf": token, "status": "closed"}).status_code == 403
    assert vic.get(f"/admin/studies/{study_id}/audit.csv").status_code == 403

    # A collaborator reviews and exports ids, but cannot erase, manage members or read the audit log.
    token = csrf(carol, f"/admin/studies/{study_id}")
    assert (
        carol.post(f"/admin/participants/{pid}/review", data={"csrf": token, "review": "approved"}).status_code == 303
    )
    assert carol.get(f"/admin/studies/{study_id}/export.csv?platform_ids=1").status_code == 200
    assert carol.post(f"/admin/participants/{pid}/erase", data={"csrf": token}).status_code == 403
    assert _member(carol, study_id, "vic", "owner").status_code == 403
    assert carol.get(f"/admin/studies/{study_id}/audit.csv").status_code == 403
    assert carol.get("/admin/accounts").status_code == 403

    # The owner reads the audit log: every member change and the review, with who did it.
    log = bob.get(f"/admin/studies/{study_id}/audit.csv").get_data(as_text=True)
    assert "alice,member,bob added as owner" in log
    assert "bob,member,carol added as collaborator" in log and "bob,member,vic added as viewer" in log
    assert "carol,review_mark" in log and "carol,export,csv with platform ids" in log

    # Site admins manage accounts from the admin pages too; the new account can log in.
    assert client.get("/admin/accounts").status_code == 200
    r = client.post("/admin/accounts", data={"csrf": csrf(client, "/admin/accounts"), "username": "dora",
                                             "password": PASSWORD})
    assert r.status_code == 303
    dora = _client(app, "dora")
    assert study_id not in dora.get("/admin/").get_data(as_text=True)
    r = client.post("/admin/accounts", data={"csrf": csrf(client, "/admin/accounts"), "username": "eve",
                                             "password": "short"})
    assert r.status_code == 400


def test_cli_owner_and_members(app, client, stimulus_dir, tmp_path):
    from study_fixtures import write_design

    from advlegit.study_app.cli import cli

    _account(app, "olga")
    env = {"DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"], "ADVLEGIT_INSTANCE": app.instance_path}
    design = write_design(tmp_path / "d.toml", "identify")
    res = CliRunner().invoke(cli, ["study", "create", "--stimuli", str(stimulus_dir), "--design", str(design),
                                   "--owner", "nobody"], env=env)
    assert res.exit_code == 1 and "no account 'nobody'" in res.output
    res = CliRunner().invoke(cli, ["study", "list"], env=env)
    assert res.exit_code == 0 and "no studies yet" in res.output  # the refused create left no study behind
    res = CliRunner().invoke(cli, ["study", "create", "--stimuli", str(stimulus_dir), "--design", str(design),
                                   "--owner", "olga"], env=env)
    assert res.exit_code == 0, res.output
    sid = res.output.strip().splitlines()[-1]
    olga = _client(app, "olga")
    assert 'id="my-role">owner' in olga.get(f"/admin/studies/{sid}").get_data(as_text=True)
    _account(app, "pia")
    res = CliRunner().invoke(cli, ["study", "member", "--study", sid, "--user", "pia", "--role", "viewer"], env=env)
    assert res.exit_code == 0 and "pia added as viewer" in res.output
    assert _client(app, "pia").get(f"/admin/studies/{sid}").status_code == 200
    res = CliRunner().invoke(cli, ["study", "member", "--study", "nope", "--user", "pia", "--role", "viewer"], env=env)
    assert res.exit_code == 1 and "no study" in res.output
