"""rate: how much does this image look like class c (1-7)? Main trials ask about the attack's target
class; practice alternates a clear yes (the true class) and a clear no (another class)."""
from __future__ import annotations

from flask_babel import gettext as _
from flask_babel import pgettext

from advlegit.contracts.vocabularies import TaskType

from ..planning import TrialSpec
from .base import SingleImage, article, digit_classes, label_words, per_classes


class Rate(SingleImage):
    name = TaskType.RATE
    responses = frozenset(str(d) for d in range(1, 8))
    seconds_per_trial = 5.0
    primary_outcome = "rating"
    outcome_columns = ("rating",)
    prompt_on_main = True

    def keys(self):
        return _("Press 1–7.")

    def prompt(self, trial, classes):
        w = label_words(classes, trial.prompt_label)
        return per_classes(classes, pgettext("digit", "How much does this look like %(a)s %(label)s?", **w),
                           pgettext("class", "How much does this look like %(a)s %(label)s?", **w))

    def trial_text(self, trial, classes):
        # The scale's ends name the class asked about, so the server words them in the study's language.
        w = label_words(classes, trial.prompt_label)
        if not digit_classes(classes):
            return {"scale_high": pgettext("class", "7 = exactly like %(a)s %(label)s", **w),
                    "scale_low_aria": pgettext("class", "1 (not at all like %(a)s %(label)s)", **w),
                    "scale_high_aria": pgettext("class", "7 (exactly like %(a)s %(label)s)", **w)}
        return {"scale_high": pgettext("digit", "7 = exactly like %(a)s %(label)s", **w),
                "scale_low_aria": pgettext("digit", "1 (not at all like %(a)s %(label)s)", **w),
                "scale_high_aria": pgettext("digit", "7 (exactly like %(a)s %(label)s)", **w)}

    def practice_feedback(self, trial, label, classes):
        w = {"label": label, "a": article(label)}
        if trial.expected == "high":
            return per_classes(classes, pgettext("digit", "This is a clear %(label)s: most people choose 6 or 7 here.", **w),
                               pgettext("class", "This is a clear %(label)s: most people choose 6 or 7 here.", **w))
        return per_classes(classes, pgettext("digit", "This is not %(a)s %(label)s: most people choose 1 or 2 here.", **w),
                           pgettext("class", "This is not %(a)s %(label)s: most people choose 1 or 2 here.", **w))

    def attention_passed(self, trial, response):
        return int(response) >= 5 if trial.expected == "high" else int(response) <= 3

    def clean_trial(self, kind, n, first, free_clean, rng):
        if kind == "practice" and n % 2 == 1:  # odd practice trials ask about a wrong class
            return TrialSpec(kind, first.key, None, (first.label + 1 + rng.randrange(9)) % 10, "low")
        return TrialSpec(kind, first.key, None, first.label, "high")

    def outcomes(self, response, a, b):
        return {"rating": int(response)}

    def careless_answer(self, rng):
        return str(rng.randint(1, 7))

    def bot_answer(self, probs, entries, prompt_label, rng):
        p = probs(entries[0])[prompt_label]
        return str(min(7, max(1, round(1 + 6 * p + rng.gauss(0, 0.5)))))


TASK = Rate()
