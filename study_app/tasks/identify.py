"""identify: name the digit shown (0-9, or "not a digit"); for a set whose classes have names (CIFAR-10's
"cat"), the answer buttons show the names beside their keys and the question asks for the class. The
primary outcome is whether people name the class the model was fooled into (target_hit)."""
from __future__ import annotations

from flask_babel import gettext as _
from flask_babel import pgettext

from advlegit.contracts.vocabularies import TaskType

from ..planning import TrialSpec
from .base import SingleImage, article, digit_classes, label_name, per_classes


class Identify(SingleImage):
    name = TaskType.IDENTIFY
    responses = frozenset({str(d) for d in range(10)} | {"none"})
    primary_outcome = "target_hit"
    outcome_columns = ("response_label", "target_hit", "original_hit")
    max_classes = 10  # the answer keys 0-9 (buttons in one row); more classes would change chance level too

    def keys(self):
        return _("Press a digit key 0–9, or N for “not a digit”.")

    def prompt(self, trial, classes):
        return _("Which digit is this?") if digit_classes(classes) else _("Which of these is it?")

    def feedback(self, trial, classes):
        # The expected answer is the class index ("3"); feedback names it ("a cat"; "a 3" for digits).
        if trial.kind != "practice" or trial.expected is None:
            return None
        return self.practice_feedback(trial, label_name(classes, int(trial.expected)), classes)

    def practice_feedback(self, trial, label, classes):
        label = label or trial.expected
        w = {"label": label, "a": article(label)}
        return per_classes(classes, pgettext("digit", "This one is %(a)s %(label)s.", **w),
                           pgettext("class", "This one is %(a)s %(label)s.", **w))

    def clean_trial(self, kind, n, first, free_clean, rng):
        return TrialSpec(kind, first.key, None, None, str(first.label))

    def outcomes(self, response, a, b):
        label = int(response) if response != "none" else None
        target = a.get("target_label")
        return {"response_label": label,
                "target_hit": (label == target) if target is not None else None,
                "original_hit": label == a["true_label"]}

    def bot_answer(self, probs, entries, prompt_label, rng):
        p = probs(entries[0])
        return str(rng.choices(range(len(p)), weights=p)[0])


TASK = Identify()
