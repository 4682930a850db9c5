"""explain: a digit (left) beside a model's saliency map of it (right): how well do the highlighted
pixels explain the digit (1-7)? The map is the one `generate` exported for the model the image was
made against (study_app/maps.py), so a cell is a defense, as in rate; participants never learn which.

Practice and attention checks need no model: a clean digit beside itself (the highlighted pixels are
exactly its strokes: a clear yes) or beside a digit of another class (a clear no)."""
from __future__ import annotations

from flask_babel import gettext as _

from advlegit.contracts.vocabularies import TaskType

from ..maps import map_key, methods_of
from ..planning import AllocationError, Item, TrialSpec
from .base import SingleImage


def choose_saliency(task: str, design, stimuli: list[dict]) -> None:
    """Check that every stimulus served has a map of the design's [stimuli] saliency method (default:
    the set's only one, filled in); raise ValueError naming the key otherwise."""
    have = methods_of(stimuli)
    if not have:
        raise ValueError(f"the {task} task shows saliency maps, and this stimulus set has none for the stimuli "
                         "the study serves; generate it with [interpretability] export_saliency = [\"gradient\"]")
    chosen = design.stimuli.saliency
    if not chosen:
        if len(have) > 1:
            raise ValueError(f"stimuli.saliency: the set has maps of {', '.join(have)}; choose one")
        design.stimuli.saliency = have[0]
    elif chosen not in have:
        raise ValueError(f"stimuli.saliency: {chosen!r} maps are not in the set for every stimulus served "
                         f"(it has {', '.join(have) or 'none'})")


class Explain(SingleImage):
    name = TaskType.EXPLAIN
    responses = frozenset(str(d) for d in range(1, 8))
    seconds_per_trial = 6.0  # two images to look at and a judgement on a scale
    primary_outcome = "rating"
    outcome_columns = ("rating",)
    n_images = 2  # the digit and the map

    def keys(self):
        return _("Press 1–7.")

    def prompt(self, trial, classes):
        return _("How well do the highlighted pixels on the right explain the digit on the left?")

    def practice_feedback(self, trial, label, classes):
        if trial.expected == "high":
            return _("Here the highlighted pixels are exactly the digit's strokes: most people choose 6 or 7.")
        return _("Here the highlighted pixels are another digit's strokes: most people choose 1 or 2.")

    def attention_passed(self, trial, response):
        return int(response) >= 5 if trial.expected == "high" else int(response) <= 3

    def clean_trial(self, kind, n, first, free_clean, rng):
        if n % 2 == 1:  # every other practice trial and attention check is a clear no
            other = next((c for c in reversed(free_clean) if c.label != first.label), None)
            if other is None:
                raise AllocationError("explain needs clean digits of two classes")
            free_clean.remove(other)
            return TrialSpec(kind, first.key, other.key, None, "low")
        return TrialSpec(kind, first.key, first.key, None, "high")

    def source_problem(self, sources):
        if len({s["true_label"] for s in sources}) < 2:
            return "explain needs clean digits of at least two classes"
        return None

    # ---- the map beside each stimulus
    def check_set(self, design, stimuli):
        choose_saliency(self.name, design, stimuli)

    def pool_for(self, design, stimuli):
        method = design.stimuli.saliency
        return [Item(i.key, i.cell, i.source, i.image, map_key(i.image, method), i.prompt_label)
                for i in super().pool_for(design, stimuli)]

    def main_trial(self, item, flips):
        return TrialSpec("main", item.image, item.image_b, None, None, item.key)

    # ---- the export and simulated participants
    def outcomes(self, response, a, b):
        return {"rating": int(response)}

    def careless_answer(self, rng):
        return str(rng.randint(1, 7))

    def bot_answer(self, probs, entries, prompt_label, rng):
        digit, shown = entries
        if "saliency_of" in shown:
            # No observer model of maps exists; this one finds a map more convincing the more the
            # image still looks like its true digit (to the rater model).
            q = probs(digit)[digit["true_label"]]
        else:  # a clean attention check: the digit itself (clear yes) or another digit (clear no)
            q = 1.0 if shown["id"] == digit["id"] else 0.0
        return str(min(7, max(1, round(1 + 6 * q + rng.gauss(0, 0.5)))))


TASK = Explain()
