from study_fixtures import answer_body, form, post_answer, prolific_link, start_participant


def test_one_participant_completes(client, study_id):
    token = start_participant(client, study_id)
    d = client.get(f"/api/p/{token}/trials").get_json()
    assert d["n_trials"] == 12 and d["next_index"] == 0
    for t in d["trials"]:
        r = post_answer(client, token, answer_body(t["index"], "3"))
        assert r.status_code == 201, r.get_json()
    assert client.get(f"/api/p/{token}/state").get_json()["state"] == "data_complete"
    r = client.post(f"/p/{token}/debrief", data=form(token, **{"q0": "fine"}))
    assert r.status_code == 303
    assert prolific_link(client, token) == "https://app.prolific.co/submissions/complete?cc=TESTCODE1"
