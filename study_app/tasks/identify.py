"""identify: name the digit shown (0-9, or "not a digit"). The primary outcome is whether people name
the class the model was fooled into (target_hit)."""
from __future__ import annotations

from contracts.vocabularies import TaskType

from ..planning import TrialSpec
from .base import SingleImage, with_article


class Identify(SingleImage):
    name = TaskType.IDENTIFY
    responses = frozenset({str(d) for d in range(10)} | {"none"})
    keys_help = "Press a digit key 0–9, or N for “not a digit”."
    primary_outcome = "target_hit"
    outcome_columns = ("response_label", "target_hit", "original_hit")

    def prompt(self, trial, classes):
        return "Which digit is this?"

    def practice_feedback(self, trial, label):
        return f"This one is {with_article(trial.expected)}."

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
