"""What a task type is, as the study app needs it: one subclass per task (study_app/tasks/<name>.py).

A task says what answers are valid, what the participant is asked and told, how stimuli pair into
cells and trials (through its pairing: one image, or two matched images side by side), when an
attention check is passed, which outcome columns of the export it fills, and how a simulated
participant answers. The rest of the app asks the task and never branches on its name.
No defense/attack/model names in anything a participant sees, ever.

Where later needs go: a per-study presentation protocol or a confidence rating is the same for every
task, so it belongs to the runner (js/task.js) and responses.py, not here; a task whose trials show
other images (a saliency map beside its digit, explain.py) overrides `pool_for`/`check_set`, and one that adds export
columns lists them in `outcome_columns` (and contracts/export.py) and fills them in `outcomes`.
"""
from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from itertools import combinations
from typing import Any, ClassVar

from ..planning import AllocationError, Clean, Item, TrialSpec, cell_of, kind_of

Entry = dict[str, Any]  # a manifest entry (stimulus or clean source)
Probs = Callable[[Entry], list[float]]  # a simulated observer's class probabilities for an image


def digit_classes(classes: list[str]) -> bool:
    """The classes are the digits 0..K-1 (MNIST, SVHN), so a class can be asked for as "which digit"."""
    return list(classes) == [str(i) for i in range(len(classes))]


def label_name(classes: list[str], label: int | None) -> str:
    return classes[label] if label is not None and 0 <= label < len(classes) else ""


def article(word: str) -> str:
    """The English article, as the word is spoken: an 8, an 11, an 18, an 80, an ankle boot; a 1, a 7, a
    unicorn. English only: a sentence that names a class passes `a` ("an") beside `label` ("8"); the
    English msgid says "%(a)s %(label)s", and each translation words the class itself ("einer %(label)s")."""
    w = word.strip().lower()
    if not w:
        return "a"
    if w.isdigit():  # read aloud: eight…, eleven, eighteen, eighty…, eight hundred…
        n = int(w)
        return "an" if w.startswith("8") or n in (11, 18) or 11_000 <= n < 12_000 or 18_000 <= n < 19_000 else "a"
    if w.startswith(("uni", "use", "usu", "one", "eu")):
        return "a"
    return "an" if w[0] in "aeiou" or w.startswith(("hour", "honest")) else "a"


def with_article(word: str) -> str:
    return f"{article(word)} {word}"


def label_words(classes: list[str], label: int | None) -> dict[str, str]:
    """The placeholders of a sentence that names a class: `label` ("8", "cat") and `a` (its English
    article, for the msgid's wording). Translations use `label` in their own grammar."""
    name = label_name(classes, label)
    return {"label": name, "a": article(name)}


def per_classes(classes: list[str], digit: str, named: str) -> str:
    """Of two translated sentences, the one for digit sets or the one for named classes (a German digit
    is "eine 8", a class name goes in quotes)."""
    return digit if digit_classes(classes) else named


class Task:
    """A task type. Subclasses set the class attributes and implement the methods marked abstract."""

    name: ClassVar[str]  # a contracts.vocabularies.TaskType value
    responses: ClassVar[frozenset[str]]  # every valid `response` string
    # For the time estimate people are told (design.estimated_minutes): a generous per-trial time, image
    # load and practice feedback included. Compare shows two images, rate asks for a judgement on a scale.
    seconds_per_trial: ClassVar[float] = 4.0
    primary_outcome: ClassVar[str]  # the export column the primary test is about ([analysis].primary_outcome)
    outcome_columns: ClassVar[tuple[str, ...]]  # export columns this task fills (the rest stay empty)
    n_images: ClassVar[int]  # images per trial (set by the pairing)
    # Most classes a stimulus set may have for this task (None: any). identify answers with one key
    # per class, and its chance level (1/K) is part of the analysis.
    max_classes: ClassVar[int | None] = None

    @property
    def renderer(self) -> str:
        """The browser side: a static file that registers this task with the trial runner (js/task.js)."""
        return f"js/tasks/{self.name}.js"

    # ---- what the participant is asked and told (in the request's language: flask_babel.gettext)
    def keys(self) -> str:
        """The keyboard line under the answers."""
        raise NotImplementedError

    def prompt(self, trial, classes: list[str]) -> str:
        raise NotImplementedError

    def trial_text(self, trial, classes: list[str]) -> dict[str, str]:
        """Extra sentences a renderer shows with this trial (rate: the scale's ends), in the request's
        language; the browser never words a sentence that names a class itself."""
        return {}

    def feedback(self, trial, classes: list[str]) -> str | None:
        """Practice feedback (None on other trials)."""
        if trial.kind != "practice" or trial.expected is None:
            return None
        return self.practice_feedback(trial, label_name(classes, trial.prompt_label), classes)

    def practice_feedback(self, trial, label: str, classes: list[str]) -> str:
        raise NotImplementedError

    def attention_passed(self, trial, response: str) -> bool:
        return response == trial.expected

    # ---- clean digits for practice and attention checks
    def clean_trial(self, kind: str, n: int, first: Clean, free_clean: list[Clean], rng: random.Random) -> TrialSpec:
        raise NotImplementedError

    # ---- the export
    def outcomes(self, response: str, a: Entry, b: Entry) -> dict[str, Any]:
        """This task's outcome columns for one answer to image a (and b, for pairs; {} otherwise)."""
        raise NotImplementedError

    # ---- simulated participants (study_app/bots.py)
    def careless_answer(self, rng: random.Random) -> str:
        return rng.choice(sorted(self.responses))

    def bot_answer(self, probs: Probs, entries: list[Entry], prompt_label: int | None, rng: random.Random) -> str:
        raise NotImplementedError

    # ---- pairing (SingleImage / ImagePair below)
    cell_unit: ClassVar[str]  # "defense" | "defense pair": what a cell is, for messages
    min_defenses: ClassVar[int]

    def base_cells(self, defenses: Sequence[str]) -> list[tuple[str, ...]]:
        raise NotImplementedError

    def pool(self, stimuli: list, defenses: Sequence[str], cells: set[tuple[str, ...]]) -> list[Item]:
        raise NotImplementedError

    def pool_for(self, design, stimuli: list) -> list[Item]:
        """The fillable items of a study (design: study_app.design.Design); a task that needs more of the
        design than its defenses and cells (explain: which saliency maps) overrides this."""
        return self.pool(stimuli, design.defenses, set(design.conditions()))

    def check_set(self, design, stimuli: list[Entry]) -> None:
        """Raise ValueError (naming the design key) when the set cannot serve this task; may fill in
        design defaults that depend on the set. `stimuli`: the manifest entries the study would serve."""

    def main_trial(self, item: Item, flips: dict[tuple[str, ...], bool]) -> TrialSpec:
        raise NotImplementedError

    def fill_key(self, key: str, group: str, kind: str | None, defense: str, defense_b: str | None,
                 order: dict[str, int]) -> str:
        """The item a stored main trial filled (as `pool` keys it)."""
        return key

    def source_problem(self, sources: list[Entry]) -> str | None:
        """Why the set's clean digits cannot serve practice and attention checks, or None."""
        return None


class SingleImage(Task):
    """One stimulus per trial; a cell is one defense (plus the kind, for controls)."""

    n_images = 1
    cell_unit = "defense"
    min_defenses = 1
    prompt_on_main: ClassVar[bool] = False  # whether main trials ask about a class (the target)

    def base_cells(self, defenses):
        return [(d,) for d in defenses]

    def pool(self, stimuli, defenses, cells):
        return [Item(i.key, cell_of(kind_of(i), (i.defense,)), i.source_key, i.key, None, i.target_label)
                for i in stimuli]

    def main_trial(self, item, flips):
        return TrialSpec("main", item.image, None, item.prompt_label if self.prompt_on_main else None, None, item.key)


def pair_key(group: str, kind: str, a: str, b: str) -> str:
    # Adversarial pair keys keep their pre-control form, so logged counts of older studies still match.
    return f"{group}|{a}|{b}" if kind == "adversarial" else f"{group}|{kind}|{a}|{b}"


class ImagePair(Task):
    """Two images of one source digit and one kind, from two defenses, side by side; a cell is a
    defense pair. Like with like: a control beside an adversarial image would confound defense with kind."""

    n_images = 2
    cell_unit = "defense pair"
    min_defenses = 2

    def base_cells(self, defenses):
        return list(combinations(defenses, 2))

    def pool(self, stimuli, defenses, cells):
        by_group: dict[tuple[str, str], dict[str, Any]] = {}
        for i in stimuli:
            by_group.setdefault((i.group, kind_of(i)), {})[i.defense] = i
        items = []
        for (group, kind), members in sorted(by_group.items()):
            for a, b in combinations(defenses, 2):
                if a in members and b in members and cell_of(kind, (a, b)) in cells:
                    ia, ib = members[a], members[b]
                    items.append(Item(pair_key(group, kind, a, b), cell_of(kind, (a, b)), ia.source_key, ia.key,
                                      ib.key, ia.target_label))
        return items

    def main_trial(self, item, flips):
        # Alternate sides within each pair so each defense is on the left half the time.
        swap = flips[item.cell]
        flips[item.cell] = not swap
        left, right = (item.image_b, item.image) if swap else (item.image, item.image_b)
        return TrialSpec("main", left, right, item.prompt_label, None, item.key)

    def fill_key(self, key, group, kind, defense, defense_b, order):
        pair = (defense, defense_b) if order.get(defense, 0) <= order.get(defense_b, 0) else (defense_b, defense)
        return pair_key(group, kind or "adversarial", *pair)  # sides may be swapped

    def source_problem(self, sources):
        if len({s["true_label"] for s in sources}) < 2:
            return f"{self.name} needs clean digits of at least two classes"
        return None

    def other_clean(self, first: Clean, free_clean: list[Clean]) -> Clean:
        """A clean digit of another class than `first`, taken from the free ones."""
        other = next((c for c in reversed(free_clean) if c.label != first.label), None)
        if other is None:
            raise AllocationError(f"{self.name} needs clean digits of two classes")
        free_clean.remove(other)
        return other
