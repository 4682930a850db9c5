"""Issue 17 item 3: participant pages in the study's language. Every catalogue complete and compiled as
committed; a German study's pages, messages, trial prompts and browser strings hold no English."""
from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from study_fixtures import answer_body, form, page_csrf, post_answer, valid_answers, write_design, write_german_design

ROOT = Path(__file__).resolve().parents[2]
TRANSLATIONS = ROOT / "study_app" / "translations"
LANGUAGES = sorted(p.name for p in TRANSLATIONS.iterdir() if (p / "LC_MESSAGES" / "messages.po").exists())

# Wording of the English pages that must never show on a German study's pages. Whole phrases, so a
# German word that happens to contain one ("Starten") does not count.
ENGLISH = ["I agree", "I do not agree", "Information and consent", "Instructions", "practice trial",
           "Answer with the buttons", "Leave the study", "How sure are you", "guessing", "certain<",
           "Loading", "Saving", "Continue", "Thank you", "Almost done", "Finish", "completion code",
           "Which digit", "How much does", "Which looks", "Not a digit", "This one is", "This is a clear",
           "This is not", "Press ", "Well done", "Not quite", "All answers saved", "Trial ", "Were the images",
           "Any other comments", "You have left", "Leave, and", "not at all", "exactly like", "Practice",
           "full screen", "You can close", "This link", "lang=\"en\"", "Study not found", "Page not found",
           "Right", "Left", "Copied", "Checking your screen", "retrying", "What this study", "Some of the pictures"]


@pytest.fixture(scope="module")
def db_url(tmp_path_factory):
    """The language is no database matter: SQLite only, to keep the suite short."""
    yield f"sqlite:///{tmp_path_factory.mktemp('i18n') / 'test.db'}"


def english_in(text: str) -> list[str]:
    return [w for w in ENGLISH if w in text]


# ---- the catalogues

def test_there_is_a_second_language():
    from advlegit.study_app.i18n import available_languages

    assert "de" in LANGUAGES and available_languages()[0] == "en" and "de" in available_languages()


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_message_is_translated_and_not_fuzzy(lang):
    with open(TRANSLATIONS / lang / "LC_MESSAGES" / "messages.po", "rb") as f:
        catalogue = read_po(f, locale=lang)
    assert not catalogue.fuzzy, f"{lang}: the catalogue header is marked fuzzy"
    bad = []
    for m in catalogue:
        if not m.id:
            continue
        strings = m.string if isinstance(m.string, tuple) else (m.string,)
        if m.fuzzy or not all(s and s.strip() for s in strings):
            bad.append(m.id)
    assert not bad, f"{lang}: {len(bad)} messages untranslated or fuzzy, e.g. {bad[:3]}"
    # Placeholders: a translation may only use the msgid's (babel's own checks, as `pybabel compile` runs).
    problems = [(m.id, errs) for m, errs in catalogue.check()]
    assert not problems, problems


@pytest.mark.parametrize("lang", LANGUAGES)
def test_the_committed_mo_is_the_po_compiled(lang):
    """The .mo is committed (installs and containers need no build step); it must be the .po as it is."""
    base = TRANSLATIONS / lang / "LC_MESSAGES"
    with open(base / "messages.po", "rb") as f:
        catalogue = read_po(f, locale=lang)
    buf = io.BytesIO()
    write_mo(buf, catalogue)
    assert (base / "messages.mo").read_bytes() == buf.getvalue(), \
        f"{lang}: messages.mo is stale; run scripts/translations.sh compile"


def test_every_marked_string_is_in_the_catalogues(tmp_path):
    """A new participant string without its translations fails here (scripts/translations.sh extract,
    update, translate, compile)."""
    pot = tmp_path / "messages.pot"
    subprocess.run([sys.executable, "-m", "babel.messages.frontend", "extract", "-F", "study_app/babel.cfg",
                    "-k", "N_", "-k", "plural:2,3", "-k", "pgettext:1c,2", "--no-location", "-o", str(pot), "."],
                   cwd=ROOT, check=True, capture_output=True)
    with open(pot, "rb") as f:
        wanted = {(m.context, m.id if isinstance(m.id, str) else m.id[0]) for m in read_po(f) if m.id}
    assert len(wanted) > 100
    for lang in LANGUAGES:
        with open(TRANSLATIONS / lang / "LC_MESSAGES" / "messages.po", "rb") as f:
            have = {(m.context, m.id if isinstance(m.id, str) else m.id[0]) for m in read_po(f) if m.id}
        assert not wanted - have, f"{lang} lacks {sorted(wanted - have, key=str)[:3]}"


# ---- the design key

def test_language_is_validated_and_defaults_to_english(tmp_path):
    from advlegit.study_app.design import DEFAULT_QUESTIONS, DesignError, load_design

    assert load_design(write_design(tmp_path / "en.toml")).language == "en"
    de = load_design(write_german_design(tmp_path / "de.toml"))
    assert de.language == "de"
    # The platform's default debrief questions come in the study's language.
    assert de.debrief_questions and not set(de.debrief_questions) & set(DEFAULT_QUESTIONS)
    assert de.debrief_questions[0].startswith("Waren die Bilder")
    example = load_design(ROOT / "examples" / "design-identify-de.toml")
    assert example.language == "de" and example.debrief_questions == de.debrief_questions
    bad = tmp_path / "xx.toml"
    bad.write_text((tmp_path / "de.toml").read_text().replace('language = "de"', 'language = "xx"'))
    with pytest.raises(
        DesignError, match=r"study\.language: invalid value 'xx' \(the participant pages exist in en, de"
    ):
        load_design(bad)
    bad.write_text((tmp_path / "de.toml").read_text().replace('language = "de"', "language = 7"))
    with pytest.raises(DesignError, match=r"study\.language: expected str"):
        load_design(bad)


# ---- a German study, page by page

def german_study(app, stimulus_dir, tmp_path, task):
    from advlegit.study_app.db import db
    from advlegit.study_app.design import load_design
    from advlegit.study_app.manifest import load_stimulus_set
    from advlegit.study_app.studies import create_study

    with app.app_context():
        study = create_study(
            load_stimulus_set(stimulus_dir), load_design(write_german_design(tmp_path / f"{task}.toml", task))
        )
        db.session.commit()
        return study.id


def check_german(r, what):
    text = r.get_data(as_text=True)
    assert not english_in(text), (what, english_in(text))
    if r.mimetype == "text/html":
        assert '<html lang="de">' in text, what
    return text


@pytest.mark.parametrize("task", ["identify", "rate", "compare", "explain", "explain_pair"])
def test_a_german_study_shows_no_english(app, client, stimulus_dir, tmp_path, task):
    study_id = german_study(app, stimulus_dir, tmp_path, task)
    r = client.get(f"/s/{study_id}?PROLIFIC_PID=DE1&STUDY_ID=S&SESSION_ID=X")
    token = re.search(r"/p/([^/]+)/", r.headers["Location"]).group(1)
    consent = check_german(client.get(f"/p/{token}/consent"), "consent")
    assert "Ich stimme zu, weiter" in consent and "handgeschriebenen Ziffern" in consent
    csrf = page_csrf(client, f"/p/{token}/consent")
    check_german(client.post(f"/p/{token}/consent", data={"choice": "maybe", "csrf": csrf}), "consent error")
    refused = client.post(f"/p/{token}/consent", data={"choice": "agree", "csrf": "forged"})
    assert refused.status_code == 403 and "CSRF-Token" in check_german(refused, "CSRF refusal")
    client.post(f"/p/{token}/consent", data={"choice": "agree", "csrf": csrf})
    instructions = check_german(client.get(f"/p/{token}/instructions"), "instructions")
    assert "Sie bearbeiten zuerst 2 Übungsdurchgänge mit Rückmeldung" in instructions
    client.post(f"/p/{token}/instructions", data={"csrf": csrf})
    page = check_german(client.get(f"/p/{token}/task"), "task page")
    catalogue = json.loads(re.search(r'<script type="application/json" id="i18n">(.*?)</script>', page, re.S).group(1))
    assert (
        catalogue["trial_of"] == "Durchgang {i} von {n}"
        and catalogue["saving_other"] == "{n} Antworten werden gespeichert …"
    )
    assert not english_in(" ".join(catalogue.values()))
    check_german(client.get(f"/p/{token}/withdraw"), "withdraw page")
    trials = client.get(f"/api/p/{token}/trials")
    data = check_german(trials, "trial list")
    d = json.loads(data)
    assert d["keys"].startswith("Drücken Sie")
    if task == "identify":
        assert d["trials"][0]["prompt"] == "Welche Ziffer ist das?"
        assert d["trials"][0]["feedback"].startswith("Das ist eine ")
    elif task == "rate":
        assert re.fullmatch(r"Wie sehr sieht das nach einer \d aus\?", d["trials"][0]["prompt"])
        assert re.fullmatch(r"7 = genau wie eine \d", d["trials"][0]["scale_high"])
    elif task == "compare":
        assert re.fullmatch(r"Welches Bild sieht eher wie eine \d aus\?", d["trials"][0]["prompt"])
        assert re.fullmatch(r"Das (linke|rechte) Bild ist die deutlichere \d\.", d["trials"][0]["feedback"])
    answer = valid_answers(task)[0]
    for t in d["trials"]:
        assert post_answer(client, token, answer_body(t["index"], answer)).status_code == 201
    debrief = check_german(client.get(f"/p/{token}/debrief"), "debrief")
    assert "Waren die Bilder deutlich genug" in debrief and "Noch einige letzte Fragen (freiwillig):" in debrief
    client.post(f"/p/{token}/debrief", data=form(token, q0="gut"))
    done = check_german(client.get(f"/p/{token}/done"), "done")
    assert "Vielen Dank!" in done and "Zurück zu Prolific" in done and "Worum es in dieser Studie ging" in done
    # Leaving, and the pages after it, also in German.
    r = client.get(f"/s/{study_id}?PROLIFIC_PID=DE2&STUDY_ID=S&SESSION_ID=Y")
    token2 = re.search(r"/p/([^/]+)/", r.headers["Location"]).group(1)
    left = check_german(client.post(f"/p/{token2}/withdraw", data=form(token2, answers="keep")), "left")
    assert "Sie haben die Studie verlassen." in left and "Stop without completing" in left  # Prolific's own button
    check_german(client.get(f"/p/{token2}/consent"), "after leaving")
    check_german(client.get(f"/s/{study_id}?PROLIFIC_PID=DE2&STUDY_ID=S&SESSION_ID=Y"), "coming back")


def test_english_study_and_admin_pages_stay_english(app, client, stimulus_dir, tmp_path, study_id):
    r = client.get(f"/s/{study_id}?PROLIFIC_PID=EN1&STUDY_ID=S&SESSION_ID=X", headers={"Accept-Language": "de"})
    token = re.search(r"/p/([^/]+)/", r.headers["Location"]).group(1)
    consent = client.get(f"/p/{token}/consent", headers={"Accept-Language": "de"}).get_data(as_text=True)
    assert '<html lang="en">' in consent and "I agree, continue" in consent
    admin = client.get("/admin/login", headers={"Accept-Language": "de"}).get_data(as_text=True)
    assert '<html lang="en">' in admin
    # A link that leads to no participant has no study language: the browser's choice among ours.
    gone = client.get("/p/no-such-link/consent", headers={"Accept-Language": "de-DE,de;q=0.9"})
    assert gone.status_code == 404 and "Dieser Link ist nicht mehr gültig" in check_german(gone, "bad link")
    assert "This link is no longer valid" in client.get("/p/no-such-link/consent").get_data(as_text=True)
