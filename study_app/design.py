"""Study design files (TOML): parse, validate field by field, and check against a stimulus set."""
from __future__ import annotations

import math
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from advlegit.contracts import analysis_options
from advlegit.contracts.export import STIMULUS_KINDS
from advlegit.contracts.validation import build, distinct, each, keys, nonempty, spec

from .planning import cell_of  # noqa: F401  (kept importable from here)
from .presentation import Presentation
from .tasks import TASKS, task_of


def N_(text: str) -> str:
    """Marks a string for the catalogue (pybabel extract -k N_) that is translated later, not here."""
    return text


# In the study's language when the design has no [debrief] questions (default_questions).
DEFAULT_QUESTIONS = [
    N_("Were the images clear enough to judge? Anything that got in the way?"),
    N_("Any other comments for the researchers?"),
]


def default_questions(language: str) -> list[str]:
    return [_in_language(q, language) for q in DEFAULT_QUESTIONS]


# Shown on the completion page, after the debrief answers are stored, when the design has no [debrief]
# explanation_md. Neutral and blinded: no defense, attack or model names, no words that announce a control.
DEFAULT_EXPLANATION = N_(
    "Some of the pictures you saw had been changed slightly by a computer program, so that an "
    "image-recognition system would name them as a different class than the one they show. Others were "
    "changed at random or left unchanged, for comparison.\n\n"
    "The study asks when such changed pictures also look like that other class to people, and which ways "
    "of building image-recognition systems make their mistakes understandable to people.\n\n"
    "There were no right or wrong answers in the main part of the study: your own impression was what "
    "counted.\n\n"
    "If you have questions about the study, please contact the researchers named on the consent page."
)


def default_explanation(language: str) -> str:
    return _in_language(DEFAULT_EXPLANATION, language)


def debrief_explanation(design: dict[str, Any]) -> str:
    """The Markdown for the completion page ("" = none); a design stored before the key existed gets the
    default in its language."""
    text = design.get("debrief_explanation_md")
    return default_explanation(design.get("language", "en")) if text is None else text


def _in_language(text: str, language: str) -> str:
    from .i18n import DEFAULT_LANGUAGE, translations_for

    return text if language == DEFAULT_LANGUAGE else translations_for(language).gettext(text)


PRIMARY_OUTCOMES = analysis_options.TASK_OUTCOMES
CONTRASTS = analysis_options.CONTRASTS


class DesignError(ValueError):
    """A design file problem; the message names the field."""


# [analysis]: one type, its names, defaults and checks shared with the analysis (contract 3)
Analysis = analysis_options.AnalysisOptions


def _kinds(kinds: list[str]) -> list[str]:
    if not kinds:
        raise ValueError("must not be empty (leave it out to serve every kind in the set)")
    if any(k not in STIMULUS_KINDS for k in kinds) or len(set(kinds)) != len(kinds):
        raise ValueError(f"must be distinct values of {', '.join(STIMULUS_KINDS)}; got {kinds!r}")
    return [k for k in STIMULUS_KINDS if k in kinds]  # canonical order


@dataclass
class StimulusChoice:
    """Which stimuli of the set a study serves ([stimuli] in the design file)."""

    # adversarial | control_flip | control_noise; [] = every kind the set has
    kinds: list[str] = spec(factory=list, check=_kinds)
    include_failed: bool | None = None  # None until checked = the set's design: true for fixed_budget only
    saliency: str = ""  # explain, explain_pair: the saliency method whose maps are shown; "" = the set's only one


# A study created before [stimuli] existed served successful adversarial images only.
LEGACY_STIMULI = {"kinds": ["adversarial"], "include_failed": False}


def cell_label(cell: tuple[str, ...]) -> str:
    kind = cell[-1] if cell[-1] in STIMULUS_KINDS else None
    defenses = cell[:-1] if kind else cell
    return " vs ".join(defenses) + (f" ({kind})" if kind else "")


@dataclass
class Design:
    name: str  # shown to participants as the study's title
    task: str  # identify | rate | compare | explain | explain_pair (docs/study-app.md: the task types)
    trials: int  # main trials per participant; a multiple of the defenses (compare: defense pairs)
    practice: int  # clean digits with feedback before the main trials
    attention_checks: int  # clear clean digits among the main trials (exclusion rule in [analysis])
    target_sample_size: int  # completed participants wanted; the link closes itself after that
    consent_md: str  # Markdown shown on the consent page; participants must agree to go on
    instructions_md: str  # Markdown shown before the first trial
    defenses: list[str] = field(default_factory=list)  # empty = every defended model
    timeout_minutes: int = 60  # inactive this long: timed_out, and their trials go to others
    seed: int | None = None  # allocation seed; unset = random
    completion_code: str = ""  # Prolific's study completion code; generated when empty
    debrief_questions: list[str] = field(default_factory=lambda: list(DEFAULT_QUESTIONS))  # free-text, optional
    # Markdown on the completion page, below the code, after the debrief answers are stored: what the study
    # was about; "" = none. Unset: the platform's default, in the study's language
    debrief_explanation_md: str = DEFAULT_EXPLANATION
    analysis: Analysis = field(default_factory=Analysis)
    stimuli: StimulusChoice = field(default_factory=lambda: StimulusChoice(**LEGACY_STIMULI))
    presentation: Presentation = field(default_factory=Presentation)  # how trials are shown, for every task
    # of the participant pages: "en", "de" (study_app/translations); write consent, instructions, questions in it
    language: str = "en"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Design:
        d = dict(d)
        d["analysis"] = Analysis(**d.get("analysis", {}))
        d["stimuli"] = StimulusChoice(**d.get("stimuli", LEGACY_STIMULI))
        d["presentation"] = Presentation.from_dict(d.get("presentation"))
        d["debrief_explanation_md"] = debrief_explanation(d)  # stored before the key existed: its language's
        return cls(**d)

    def conditions(self) -> list[tuple[str, ...]]:
        """Cells every participant sees equally often: one defense, or (compare) one defense pair, for
        each stimulus kind served. Compare pairs like with like: two adversarial images, or two controls
        of one kind — a control beside an adversarial image would confound defense with kind."""
        base = task_of(self.task).base_cells(self.defenses)
        return [cell_of(k, b) for k in self.stimuli.kinds for b in base]


# Consent, instructions and debrief: reading and answering, about three minutes together.
FIXED_MINUTES = 3


def estimated_minutes(design: dict[str, Any]) -> int:
    """The one time estimate participants see (preview, and `{minutes}` in consent and instructions)."""
    n = design["practice"] + design["trials"] + design["attention_checks"]
    return FIXED_MINUTES + math.ceil(n * task_of(design["task"]).seconds_per_trial / 60)


def with_minutes(text: str, design: dict[str, Any]) -> str:
    return text.replace("{minutes}", str(estimated_minutes(design)))


def _language(value: str) -> str:
    from .i18n import available_languages

    languages = available_languages()
    if value not in languages:
        raise ValueError(f"invalid value {value!r} (the participant pages exist in {', '.join(languages)})")
    return value


def _completion_code(value: str) -> str:
    if value and not (value.isalnum() and len(value) <= 64):
        raise ValueError(f"invalid value {value!r} (letters and digits only, at most 64)")
    return value


# The design file's tables, read by contracts/validation.py (types, ranges, unknown keys); their keys are
# the fields of Design of the same meaning, documented there.
@dataclass
class StudyTable:
    name: str = spec(check=nonempty)
    task: str = spec(choices=TASKS)
    trials: int = spec(gt=0)
    target_sample_size: int = spec(gt=0)
    practice: int = spec(2, ge=0)
    attention_checks: int = spec(2, ge=0)
    defenses: list[str] = spec(factory=list, check=distinct)
    timeout_minutes: int = spec(60, gt=0)
    seed: int | None = spec(None, ge=0, lt=2**31)
    language: str = spec("en", check=_language)


@dataclass
class TextTable:
    text: str = spec(check=nonempty)


@dataclass
class CompletionTable:
    code: str = spec("", check=_completion_code)


@dataclass
class DebriefTable:
    questions: list[str] | None = spec(None, check=each(nonempty))  # None: the defaults
    explanation_md: str | None = spec(None)  # None: the default in the study's language; "": none


@dataclass
class DesignFile:
    study: StudyTable
    consent: TextTable
    instructions: TextTable
    completion: CompletionTable = field(default_factory=CompletionTable)
    debrief: DebriefTable = field(default_factory=DebriefTable)
    stimuli: StimulusChoice = field(default_factory=StimulusChoice)
    presentation: Presentation = field(default_factory=Presentation)
    analysis: dict[str, Any] = field(default_factory=dict)  # contracts/analysis_options.parse_section: needs the task


_TABLES = {"study": StudyTable, "consent": TextTable, "instructions": TextTable, "completion": CompletionTable,
           "debrief": DebriefTable, "stimuli": StimulusChoice, "presentation": Presentation}
# Every key a design file may set, per table (docs/config-reference.md lists each one).
_ALLOWED = {name: set(keys(table)) for name, table in _TABLES.items()}
_ALLOWED["analysis"] = set(analysis_options.OPTION_NAMES) | set(analysis_options.ALIASES)


def parse_design(data: dict[str, Any]) -> Design:
    f = build(DesignFile, data, error=DesignError)
    s = f.study
    try:
        analysis = analysis_options.parse_section(f.analysis, s.task)
    except analysis_options.OptionError as exc:
        raise DesignError(str(exc)) from None
    questions, explanation = f.debrief.questions, f.debrief.explanation_md
    return Design(
        name=s.name, task=s.task, trials=s.trials, practice=s.practice, attention_checks=s.attention_checks,
        target_sample_size=s.target_sample_size, defenses=list(s.defenses), timeout_minutes=s.timeout_minutes,
        seed=s.seed, consent_md=f.consent.text, instructions_md=f.instructions.text, completion_code=f.completion.code,
        debrief_questions=list(questions) if questions is not None else default_questions(s.language),
        debrief_explanation_md=default_explanation(s.language) if explanation is None else explanation,
        analysis=analysis, stimuli=f.stimuli, presentation=f.presentation, language=s.language,
    )


def load_design(path: str | Path) -> Design:
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError as exc:
        raise DesignError(f"design file not found: {path}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise DesignError(f"design file is not valid TOML: {exc}") from exc
    return parse_design(data)


def _check_class_count(task_name: str, classes: list[str] | None) -> None:
    most = task_of(task_name).max_classes
    if classes is None or most is None or len(classes) <= most:
        return
    raise DesignError(
        f"study.task: the {task_name} task serves stimulus sets of at most {most} classes (one answer key "
        f"each, 0-9, and its analysis assumes chance level 1/K of such a set); this set has {len(classes)} "
        f"classes ({', '.join(classes[:4])}, ...). Choose another task (rate, compare, explain), or "
        f"generate the set from at most {most} classes"
    )


def check_against_set(design: Design, defended: list[str], stimuli: list[dict], sources: list[dict],
                      set_design: str = "minimal", classes: list[str] | None = None) -> Design:
    """Fill in defaults that depend on the stimulus set and refuse designs it cannot serve.
    classes: the set's class names (contracts.stimulus_set.class_names); None skips the class checks."""
    from .stimuli import stimulus_kind

    _check_class_count(design.task, classes)

    if not design.defenses:
        design.defenses = list(defended)
    unknown = [d for d in design.defenses if d not in defended]
    if unknown:
        raise DesignError(f"study.defenses: {unknown} are not defended models in the stimulus set ({defended})")
    task = task_of(design.task)
    need = task.min_defenses
    if len(design.defenses) < need:
        raise DesignError(f"study.defenses: the {design.task} task needs at least {need} defenses")
    present = [k for k in STIMULUS_KINDS if any(stimulus_kind(s) == k for s in stimuli)]
    if not design.stimuli.kinds:
        design.stimuli.kinds = present
    missing = [k for k in design.stimuli.kinds if k not in present]
    if missing:
        raise DesignError(f"stimuli.kinds: {missing} are not in this stimulus set (it has {present})")
    if design.stimuli.include_failed is None:
        # fixed_budget keeps failed attacks on purpose: P(target named | defense, eps) must not be
        # conditioned on the model being fooled. The other designs select successes by construction.
        design.stimuli.include_failed = set_design == "fixed_budget"
    cells = design.conditions()
    if design.trials % len(cells):
        unit = task.cell_unit + "s"
        n_kinds = len(design.stimuli.kinds)
        if n_kinds > 1:  # controls are cells of their own
            raise DesignError(
                f"study.trials: {design.trials} is not a multiple of the {len(cells)} cells "
                f"({len(cells) // n_kinds} {unit} x {n_kinds} stimulus kinds), so cells cannot be seen equally often"
            )
        raise DesignError(
            f"study.trials: {design.trials} is not a multiple of the {len(cells)} {unit}, "
            f"so defenses cannot be seen equally often"
        )
    try:  # "" stays "": the analysis applies the one default rule (contracts/analysis_options.py)
        analysis_options.check_defenses(design.analysis, design.defenses)
    except analysis_options.OptionError as exc:
        raise DesignError(str(exc)) from None
    try:  # what else the task needs from the set (explain: a saliency map for every stimulus it serves)
        task.check_set(design, [s for s in stimuli if s["defense"] in design.defenses
                                and stimulus_kind(s) in design.stimuli.kinds])
    except ValueError as exc:
        raise DesignError(str(exc)) from None
    items, _ = _pool(design, stimuli, sources)
    main_sources = {it.source for it in items}
    if len(main_sources) < design.trials:
        raise DesignError(
            f"study.trials: each participant needs {design.trials} different source digits but the stimulus set "
            f"has only {len(main_sources)} usable ones"
        )
    clean_needed = (design.practice + design.attention_checks) * task.n_images
    # Practice and attention checks use clean digits the participant never sees attacked.
    if design.trials + clean_needed > len(sources):
        raise DesignError(
            f"study.practice/attention_checks: {design.trials} trials + {clean_needed} clean images need "
            f"{design.trials + clean_needed} different source digits; the set has {len(sources)}"
        )
    problem = task.source_problem(sources) if clean_needed else None
    if problem:
        raise DesignError(f"study.practice/attention_checks: {problem}")
    _check_feasible(design, stimuli, sources)
    return design


def _pool(design: Design, stimuli: list[dict], sources: list[dict]):
    """The allocator's pool built from manifest entries (what the imported Image rows will hold)."""
    from types import SimpleNamespace

    from .allocation import build_pool
    from .stimuli import stimulus_kind, twin_of

    images = [SimpleNamespace(kind="stimulus", key=s["id"], success=s["success"], defense=s["defense"],
                              source_key=s["source_id"], target_label=s["target_label"], group=s["group"],
                              true_label=s["true_label"], stimulus_kind=stimulus_kind(s), twin_key=twin_of(s))
              for s in stimuli]
    images += [SimpleNamespace(kind="source", key=s["id"], true_label=s["true_label"], success=None, defense=None,
                               stimulus_kind=None, twin_key=None)
               for s in sources]
    return build_pool(design, images)


def _check_feasible(design: Design, stimuli: list[dict], sources: list[dict]) -> None:
    """Dry-run the allocator on the manifest, so a study that cannot be served is refused at creation."""
    from .allocation import AllocationError, plan_trials

    items, clean = _pool(design, stimuli, sources)
    per_cell = {c: 0 for c in design.conditions()}
    for it in items:
        per_cell[it.cell] += 1
    need = design.trials // len(per_cell)
    short = {cell_label(c): n for c, n in per_cell.items() if n < need}
    if short:
        which = "" if design.stimuli.include_failed else "successful "
        raise DesignError(f"study.trials: each participant needs {need} stimuli per "
                          f"{task_of(design.task).cell_unit}"
                          f"{' and kind' if len(design.stimuli.kinds) > 1 else ''}, but the set has only "
                          f"{short} {which}ones; lower trials or drop those from study.defenses or stimuli.kinds")
    try:
        for seed in range(5):
            plan_trials(design, items, clean, {}, seed)
    except AllocationError as exc:
        raise DesignError(f"study.trials: {design.trials} trials cannot be drawn from this set with a different "
                          f"source digit each time ({exc}); lower trials or choose other defenses") from exc
