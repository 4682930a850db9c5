"""rate: how much does this image look like class c (1-7)? Main trials ask about the attack's target
class; practice alternates a clear yes (the true class) and a clear no (another class)."""
from __future__ import annotations

from contracts.vocabularies import TaskType

from ..planning import TrialSpec
from .base import SingleImage, label_name, with_article


class Rate(SingleImage):
    name = TaskType.RATE
    responses = frozenset(str(d) for d in range(1, 8))
    keys_help = "Press 1–7."
    seconds_per_trial = 5.0
    primary_outcome = "rating"
    outcome_columns = ("rating",)
    prompt_on_main = True

    def prompt(self, trial, classes):
        return f"How much does this look like {with_article(label_name(classes, trial.prompt_label))}?"

    def practice_feedback(self, trial, label):
        if trial.expected == "high":
            return f"This is a clear {label}: most people choose 6 or 7 here."
        return f"This is not {with_article(label)}: most people choose 1 or 2 here."

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
