"""What a participant is asked and told, per task type. No defense/attack/model names here, ever."""
from __future__ import annotations

from .models import Trial

KEYS_HELP = {
    "identify": "Press a digit key 0–9, or N for “not a digit”.",
    "rate": "Press 1–7.",
    "compare": "Press ← for the left image or → for the right image.",
}


def label_name(classes: list[str], label: int | None) -> str:
    return classes[label] if label is not None and 0 <= label < len(classes) else ""


def prompt(task: str, trial: Trial, classes: list[str]) -> str:
    c = label_name(classes, trial.prompt_label)
    if task == "identify":
        return "Which digit is this?"
    if task == "rate":
        return f"How much does this look like a {c}?"
    return f"Which looks more like a {c}?"


def feedback(task: str, trial: Trial, classes: list[str]) -> str | None:
    if trial.kind != "practice" or trial.expected is None:
        return None
    c = label_name(classes, trial.prompt_label)
    if task == "identify":
        return f"This one is a {trial.expected}."
    if task == "rate":
        if trial.expected == "high":
            return f"This is a clear {c}: most people choose 6 or 7 here."
        return f"This is not a {c}: most people choose 1 or 2 here."
    return f"The {trial.expected} image is the clearer {c}."


def attention_passed(task: str, trial: Trial, response: str) -> bool:
    if task == "rate":
        return int(response) >= 5 if trial.expected == "high" else int(response) <= 3
    return response == trial.expected
