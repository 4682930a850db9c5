"""Participant pages in the study's language (Flask-Babel).

A study's language is its design's `[study] language` (default "en"); every participant page, message
and browser string is looked up in that language's catalogue (study_app/translations/<lang>/LC_MESSAGES/
messages.po, compiled to .mo). Admin pages stay English. The browser's strings reach js/*.js as a JSON
catalogue in the page (`js_catalogue()`), since inline scripts are blocked by the CSP.

Adding a language: docs/study-app.md, "Languages".
"""
from __future__ import annotations

from pathlib import Path

from babel.support import Translations
from flask import Flask, g, request
from flask_babel import Babel, get_translations, gettext

TRANSLATIONS_DIR = Path(__file__).resolve().parent / "translations"
DEFAULT_LANGUAGE = "en"


def available_languages() -> list[str]:
    """English (the msgids) plus every language with a compiled catalogue."""
    found = sorted(p.parent.parent.name for p in TRANSLATIONS_DIR.glob("*/LC_MESSAGES/messages.mo"))
    return [DEFAULT_LANGUAGE, *[lang for lang in found if lang != DEFAULT_LANGUAGE]]


def use_language(lang: str | None) -> None:
    """Serve the rest of this request in `lang` (a study's language), set once its study is known."""
    from flask_babel import refresh

    g.study_language = lang or DEFAULT_LANGUAGE
    refresh()  # forget a locale looked up earlier in this request


def _select_locale() -> str:
    if request.path.startswith("/admin"):
        return DEFAULT_LANGUAGE
    lang = g.get("study_language") or _language_from_url()
    if lang:
        return lang
    # No study known (a broken or expired link): the browser's preference among our languages.
    return request.accept_languages.best_match(available_languages()) or DEFAULT_LANGUAGE


def _language_from_url() -> str | None:
    """The study's language for a message made before the view set it (a CSRF refusal, a rate limit):
    looked up from the participant link or study id in the URL."""
    from sqlalchemy import select

    from .db import db
    from .models import Participant, Study

    args = request.view_args or {}
    try:
        if "token" in args and request.blueprint in ("participant", "api"):
            design = db.session.scalar(select(Study.design_json).join(Participant, Participant.study_id == Study.id)
                                       .where(Participant.access_token == args["token"]))
        elif "study_id" in args and request.blueprint == "participant":
            design = db.session.scalar(select(Study.design_json).where(Study.id == args["study_id"]))
        else:
            return None
    except Exception:  # the database is down: the message still has to be shown, in some language
        return None
    if design is None:
        return None
    import json

    lang = json.loads(design).get("language")
    g.study_language = lang or DEFAULT_LANGUAGE
    return g.study_language


def init_app(app: Flask) -> None:
    Babel(app, locale_selector=_select_locale, default_translation_directories=str(TRANSLATIONS_DIR))


def translations_for(lang: str) -> Translations:
    """A language's catalogue outside a request (the design's default debrief questions)."""
    return Translations.load(str(TRANSLATIONS_DIR), [lang])


def plural(key: str, singular: str, plural_: str) -> dict[str, str]:
    """A counted string for the browser as two forms with {n} for the count: `<key>_one` (n = 1) and
    `<key>_other`. Enough for English and German; a language with more plural forms needs more here."""
    catalogue = get_translations()
    return {f"{key}_one": catalogue.ungettext(singular, plural_, 1) % {"num": "{n}"},
            f"{key}_other": catalogue.ungettext(singular, plural_, 2) % {"num": "{n}"}}


def js_catalogue() -> dict[str, str]:
    """Every string the browser shows, in the request's language, for js/*.js (window.advlegitI18n).
    Placeholders in braces ({n}, {label}) are filled in by the page's script."""
    return {
        # task.js: saving, progress, finishing
        "saved_all": gettext("All answers saved ✓"),
        **plural("saving", "Saving %(num)s answer…", "Saving %(num)s answers…"),
        **plural("offline", "Offline — %(num)s answer waiting to be sent",
                 "Offline — %(num)s answers waiting to be sent"),
        "trial_of": gettext("Trial {i} of {n}"),
        "stopped": gettext("This page has stopped"),
        "image_failed": gettext("An image failed to load. Please check your connection; retrying…"),
        "left": gettext("Left"),
        "right": gettext("Right"),
        "image_alt": gettext("{side} image"),
        "digit_alt": gettext("digit image"),
        "time_ran_out": gettext("Time ran out. Please answer a little faster."),
        "well_done": gettext("Well done."),
        "not_quite": gettext("Not quite."),
        "needs_fullscreen": gettext("This study runs in full screen. Please continue in full screen."),
        "last_one": gettext("Thank you — that was the last one."),
        "all_saved_moment": gettext("All answers saved. One moment…"),
        "still_saving": gettext("Still saving your answers… ({stored} of {n})"),
        "waiting_connection": gettext("Waiting for the connection to save your answers…"),
        "no_renderer": gettext("This study cannot be shown in this page (no renderer for '{task}')."),
        "checking_screen": gettext("Checking your screen…"),
        "cannot_reach": gettext("Cannot reach the server; retrying…"),
        # display.js
        "window_too_small": gettext("This study needs a browser window of at least {w} × {h} pixels; yours is "
                                    "{vw} × {vh}. Please make the window larger (or turn your device sideways)."),
        "refresh_too_low": gettext("This study shows images for exact short times and needs a screen that "
                                   "refreshes at least {min} times a second; yours measured {hz}. Closing other "
                                   "programs or tabs, or using another computer, may help."),
        # done.js
        "copied": gettext("Copied."),
        "copy_failed": gettext("Could not copy: please select the code and copy it yourself."),
        # tasks/*.js: answer buttons and scales
        "btn_left": gettext("← Left"),
        "btn_right": gettext("Right →"),
        "not_a_digit": gettext("Not a digit"),
        "none_of_these": gettext("None of these"),
        "scale_not_at_all": gettext("1 = not at all"),
        "scale_completely": gettext("7 = completely"),
        "explain_low_aria": gettext("{r} (does not explain it at all)"),
        "explain_high_aria": gettext("{r} (explains it completely)"),
    }
