"""compare: which of two images (one source digit attacked against two defenses) looks more like
class c? A two-alternative forced choice; the outcome is the defense whose image was chosen."""
from __future__ import annotations

from contracts.vocabularies import TaskType

from ..planning import TrialSpec
from .base import ImagePair, label_name, with_article


class Compare(ImagePair):
    name = TaskType.COMPARE
    responses = frozenset({"left", "right"})
    keys_help = "Press ← for the left image or → for the right image."
    seconds_per_trial = 5.0
    primary_outcome = "chosen_defense"
    outcome_columns = ("chosen_side", "chosen_defense")

    def prompt(self, trial, classes):
        return f"Which looks more like {with_article(label_name(classes, trial.prompt_label))}?"

    def practice_feedback(self, trial, label):
        return f"The {trial.expected} image is the clearer {label}."

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
