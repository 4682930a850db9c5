"""compare: which of two images (one source digit attacked against two defenses) looks more like
class c? A two-alternative forced choice; the outcome is the defense whose image was chosen."""
from __future__ import annotations

from flask_babel import gettext as _
from flask_babel import pgettext

from advlegit.contracts.vocabularies import TaskType

from ..planning import TrialSpec
from .base import ImagePair, article, label_words, per_classes


class Compare(ImagePair):
    name = TaskType.COMPARE
    responses = frozenset({"left", "right"})
    seconds_per_trial = 5.0
    primary_outcome = "chosen_defense"
    outcome_columns = ("chosen_side", "chosen_defense")

    def keys(self):
        return _("Press ← for the left image or → for the right image.")

    def prompt(self, trial, classes):
        w = label_words(classes, trial.prompt_label)
        return per_classes(classes, pgettext("digit", "Which looks more like %(a)s %(label)s?", **w),
                           pgettext("class", "Which looks more like %(a)s %(label)s?", **w))

    def practice_feedback(self, trial, label, classes):
        w = {"label": label, "a": article(label)}
        if trial.expected == "left":
            return per_classes(classes, pgettext("digit", "The left image is the clearer %(label)s.", **w),
                               pgettext("class", "The left image is the clearer %(label)s.", **w))
        return per_classes(classes, pgettext("digit", "The right image is the clearer %(label)s.", **w),
                           pgettext("class", "The right image is the clearer %(label)s.", **w))

    def clean_trial(self, kind, n, first, free_clean, rng):
        # A clear digit of the asked class beside one of another class, on a random side.
        other = self.other_clean(first, free_clean)
        if rng.random() < 0.5:
            return TrialSpec(kind, first.key, other.key, first.label, "left")
        return TrialSpec(kind, other.key, first.key, first.label, "right")

    def outcomes(self, response, a, b):
        return {"chosen_side": response, "chosen_defense": (a if response == "left" else b).get("defense")}

    def careless_answer(self, rng):
        return rng.choice(["left", "right"])

    def bot_answer(self, probs, entries, prompt_label, rng):
        pl = probs(entries[0])[prompt_label]
        pr = probs(entries[1])[prompt_label]
        return "left" if rng.random() < (pl / (pl + pr) if pl + pr > 0 else 0.5) else "right"


TASK = Compare()
