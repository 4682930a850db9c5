"""explain_pair: the two-alternative version of explain. Two models' saliency maps of one source digit
(attacked toward the same target with the same attack, one image per model: a matched pair, as in
compare) side by side: which highlighted pattern looks more like the digit (its true class, named)?
The outcome is the model whose map was chosen; sides alternate within each pair (compare's pairing).

The maps are those `generate` exports per stimulus, so each explains its own model's image of the
digit; the question names the digit people should see in them (Ross & Doshi-Velez: input gradients of
robust models look like the digit). Practice and attention checks: a clean digit of the named class
beside one of another class (compare's)."""
from __future__ import annotations

from flask_babel import gettext as _
from flask_babel import pgettext

from advlegit.contracts.vocabularies import TaskType

from ..maps import map_key
from ..planning import Item
from .base import article, label_words, per_classes
from .compare import Compare
from .explain import choose_saliency


class ExplainPair(Compare):
    name = TaskType.EXPLAIN_PAIR
    seconds_per_trial = 6.0

    def keys(self):
        return _("Press ← for the left pattern or → for the right pattern.")

    def prompt(self, trial, classes):
        w = label_words(classes, trial.prompt_label)
        return per_classes(classes, pgettext("digit", "The digit is %(a)s %(label)s. Which highlighted pattern shows it better?", **w),
                           pgettext("class", "The image is %(a)s %(label)s. Which highlighted pattern shows it better?", **w))

    def practice_feedback(self, trial, label, classes):
        w = {"label": label, "a": article(label)}
        if trial.expected == "left":
            return per_classes(classes, pgettext("digit", "The left pattern is the %(label)s.", **w),
                               pgettext("class", "The left pattern is the %(label)s.", **w))
        return per_classes(classes, pgettext("digit", "The right pattern is the %(label)s.", **w),
                           pgettext("class", "The right pattern is the %(label)s.", **w))

    def check_set(self, design, stimuli):
        choose_saliency(self.name, design, stimuli)

    def pool_for(self, design, stimuli):
        method = design.stimuli.saliency
        true = {i.key: i.true_label for i in stimuli}  # the question names the digit, not the target
        return [Item(i.key, i.cell, i.source, map_key(i.image, method), map_key(i.image_b, method), true[i.image])
                for i in super().pool_for(design, stimuli)]


TASK = ExplainPair()
