"""The generation Python API for scripts and notebooks: load a stimulus set, load a model it names,
re-run the attack it records on chosen images (docs/api.md, "Generation Python API").

Everything here reads what the manifest says (docs/stimulus-set.md): the architecture, width and
normalisation of a model come from the set's config, its weights from the checkpoint whose sha256 the
set records, the attack and its parameters from each stimulus's `attack_params`.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from advlegit.contracts.stimulus_set import VerificationError, read_manifest, sha256_file, verify

from . import precision
from .attacks import attack_param_names, get_attack
from .attacks.base import finish, perturbation_norms
from .config import ConfigError, GenerationConfig, from_dict
from .render import read_png
from .stimuli import base_params, quantize, run_quantized
from .train import cache_dir, model_specs, new_model
from .user_models import load_model as load_user_model

__all__ = ["GenerationError", "StimulusSet", "RerunResult", "load_stimulus_set", "load_model", "rerun_attack"]


class GenerationError(ValueError):
    """A stimulus set, model or request the API cannot serve; the message names the problem."""


@dataclass
class StimulusSet:
    """A stimulus set read from its folder: the manifest, and its images as arrays.

    Attributes
    ----------
    folder : pathlib.Path
        The stimulus-set folder.
    manifest : dict
        ``manifest.json`` as parsed (docs/stimulus-set.md).
    verified : bool
        Whether every file was checked against its sha256 in the manifest when the set was loaded.

    Examples
    --------
    >>> from advlegit.generation import load_stimulus_set
    >>> s = load_stimulus_set("runs/mnist-demo/stimuli")
    >>> s.ids(defense="gradreg_y", success=True)[:3]
    >>> s.images(["src-00012"]).shape            # (1, 1, 28, 28), floats in [0, 1]
    """

    folder: Path
    manifest: dict[str, Any]
    verified: bool

    @property
    def stimuli(self) -> list[dict[str, Any]]:
        """Every stimulus entry (adversarial images and controls), as in the manifest."""
        return self.manifest["stimuli"]

    @property
    def sources(self) -> list[dict[str, Any]]:
        """Every clean source image's entry."""
        return self.manifest["sources"]

    @property
    def models(self) -> list[dict[str, Any]]:
        """Every model entry (defended models and raters): name, role, architecture, checkpoint_sha256, ..."""
        return self.manifest["models"]

    @property
    def config(self) -> GenerationConfig:
        """The generation config the set was made with (its `config` record)."""
        try:
            return from_dict(self.manifest["config"])
        except (ConfigError, KeyError, TypeError) as exc:
            raise GenerationError(f"{self.folder}: the manifest's config cannot be read by this version ({exc})") \
                from None

    def entry(self, stimulus_id: str) -> dict[str, Any]:
        """The manifest entry of one stimulus or source image, by id.

        Parameters
        ----------
        stimulus_id : str
            A stimulus id (``stim-...``) or a source id (``src-...``).

        Returns
        -------
        dict
            The entry as the manifest records it.

        Raises
        ------
        GenerationError
            If the set has no image with that id.

        Examples
        --------
        >>> s.entry("stim-00012-t3-normal")["success"]
        """
        found = self._by_id().get(stimulus_id)
        if found is None:
            raise GenerationError(f"{self.folder}: no stimulus or source with id {stimulus_id!r}")
        return found

    def ids(self, *, kind: str | None = "adversarial", defense: str | None = None,
            success: bool | None = None) -> list[str]:
        """Stimulus ids, in manifest order, filtered by kind, defense and success.

        Parameters
        ----------
        kind : str or None
            ``"adversarial"`` (default), ``"control_flip"``, ``"control_noise"``, or None for every kind.
        defense : str or None
            Only the stimuli made against this defended model.
        success : bool or None
            Only those whose recorded success flag is this.

        Returns
        -------
        list of str

        Examples
        --------
        >>> s.ids(defense="normal", success=False)
        """
        return [e["id"] for e in self.stimuli
                if (kind is None or e["kind"] == kind) and (defense is None or e["defense"] == defense)
                and (success is None or e["success"] == success)]

    def images(self, ids: Sequence[str] | None = None) -> np.ndarray:
        """The images as one float32 array (N, C, H, W) in [0, 1], exactly the 8-bit PNGs' values.

        Parameters
        ----------
        ids : sequence of str or None
            Stimulus or source ids; None for every stimulus, in manifest order.

        Returns
        -------
        numpy.ndarray
            float32, shape (N, C, H, W).

        Raises
        ------
        GenerationError
            If an id is unknown.

        Examples
        --------
        >>> x = s.images(s.ids(defense="normal"))
        """
        ids = [e["id"] for e in self.stimuli] if ids is None else list(ids)
        arrays = [_chw(read_png(self.folder / self.entry(i)["image"])) for i in ids]
        if not arrays:
            return np.zeros((0, *self.manifest["dataset"]["image_shape"]), dtype=np.float32)
        return np.stack(arrays).astype(np.float32)

    def _by_id(self) -> dict[str, dict[str, Any]]:
        if not hasattr(self, "_index"):
            self._index = {e["id"]: e for e in [*self.sources, *self.stimuli]}
        return self._index


def _chw(image: np.ndarray) -> np.ndarray:
    return image[None] if image.ndim == 2 else image.transpose(2, 0, 1)


def load_stimulus_set(folder: str | Path, *, check: bool = True) -> StimulusSet:
    """Read a stimulus set written by ``advlegit generate``, verifying every file against the manifest.

    Parameters
    ----------
    folder : str or pathlib.Path
        The stimulus-set folder (it holds ``manifest.json``).
    check : bool
        Verify every file's sha256 (default), as ``advlegit verify-stimuli`` does.

    Returns
    -------
    StimulusSet

    Raises
    ------
    GenerationError
        If the folder is not a stimulus set, or (with ``check``) a file is missing, added or altered.

    Examples
    --------
    >>> from advlegit.generation import load_stimulus_set
    >>> s = load_stimulus_set("runs/mnist-demo/stimuli")
    >>> len(s.stimuli), [m["name"] for m in s.models]
    """
    folder = Path(folder)
    try:
        if check:
            verify(folder)
        manifest = read_manifest(folder)
    except VerificationError as exc:
        raise GenerationError(f"{folder}: not a valid stimulus set: {exc}") from None
    return StimulusSet(folder, manifest, check)


def load_model(stimulus_set: StimulusSet, name: str, *, checkpoint: str | Path | None = None,
               device: str | torch.device = "cpu") -> nn.Module:
    """One model the set names, with the architecture its manifest records and the weights it hashed.

    Parameters
    ----------
    stimulus_set : StimulusSet
        From :func:`load_stimulus_set`.
    name : str
        A model's name in the manifest (a defense such as ``"gradreg_y"``, or ``"rater"``).
    checkpoint : str, pathlib.Path or None
        The checkpoint file; None looks in the model cache (``$ADVLEGIT_CACHE_DIR/models/<cache_key>.pt``,
        where ``advlegit generate`` stored it). A model loaded from your own file is read from the file
        its entry names.
    device : str or torch.device
        Where to put the model.

    Returns
    -------
    torch.nn.Module
        In eval mode, taking (N, C, H, W) images in [0, 1] and returning logits.

    Raises
    ------
    GenerationError
        If the set has no model of that name, the checkpoint is missing, or its sha256 is not the one
        the manifest records (other weights than the set was made with).

    Examples
    --------
    >>> from advlegit.generation import load_model
    >>> model = load_model(s, "gradreg_y")
    >>> model(torch.from_numpy(s.images(["src-00012"]))).argmax(1)
    """
    entry = next((m for m in stimulus_set.models if m["name"] == name), None)
    if entry is None:
        raise GenerationError(f"{stimulus_set.folder}: no model named {name!r}; the set has "
                              + ", ".join(m["name"] for m in stimulus_set.models))
    device = torch.device(device)
    dataset = stimulus_set.manifest["dataset"]
    shape, num_classes = tuple(dataset["image_shape"]), len(dataset["classes"])
    resolved = stimulus_set.manifest.get("software", {}).get("precision", "fp32")
    spec = next((s for s in model_specs(stimulus_set.config, dataset["sha256"], resolved) if s.name == name), None)
    if spec is None:
        raise GenerationError(f"{stimulus_set.folder}: model {name!r} is not in the set's config")
    if spec.load is not None:  # your own model: the file the entry names
        path = Path(checkpoint or entry["loaded_from"]["load"]).expanduser()
        _check_sha(path, entry, name)
        return load_user_model({**spec.load, "load": str(path)}, shape, num_classes, device)
    path = Path(checkpoint) if checkpoint is not None else cache_dir() / "models" / f"{entry['cache_key']}.pt"
    _check_sha(path, entry, name)
    model = new_model(spec, shape, num_classes).to(device)
    try:
        model.load_state_dict(torch.load(path, map_location=device, weights_only=True))
    except (RuntimeError, EOFError, OSError) as exc:
        raise GenerationError(f"{path}: not a checkpoint of {name!r} ({spec.architecture}): {exc}") from None
    return model.eval()


def _check_sha(path: Path, entry: dict[str, Any], name: str) -> None:
    if not path.is_file():
        raise GenerationError(f"{path}: checkpoint of model {name!r} not found (pass checkpoint=PATH, or set "
                              "ADVLEGIT_CACHE_DIR to the cache the set was generated with)")
    if sha256_file(path) != entry["checkpoint_sha256"]:
        raise GenerationError(f"{path}: sha256 differs from the checkpoint_sha256 the manifest records for "
                              f"{name!r}: these are not the weights the set was made with")


@dataclass
class RerunResult:
    """What re-running the recorded attack produced, in the manifest's vocabulary, one row per stimulus.

    Attributes
    ----------
    ids : list of str
        The stimuli, in the order asked for.
    images : numpy.ndarray
        float32 (N, C, H, W), the 8-bit images the attack produced now.
    true_labels, target_labels : numpy.ndarray
        int64 (N,), as the manifest records them.
    success : numpy.ndarray
        bool (N,): the defended model predicts the target on the re-run image (fp32 pass).
    recorded_success : numpy.ndarray
        bool (N,): the manifest's success flags.
    norms : list of dict
        L2, L-inf and L0 of each re-run perturbation (``{"l2": ..., "linf": ..., "l0": ...}``).
    same_image : numpy.ndarray
        bool (N,): the re-run image equals the set's PNG pixel for pixel.

    Examples
    --------
    >>> r = rerun_attack(s, s.ids(defense="normal"))
    >>> (r.success == r.recorded_success).mean()
    """

    ids: list[str]
    images: np.ndarray
    true_labels: np.ndarray
    target_labels: np.ndarray
    success: np.ndarray
    recorded_success: np.ndarray
    norms: list[dict[str, float]]
    same_image: np.ndarray

    def records(self) -> list[dict[str, Any]]:
        """One dict per stimulus (id, true_label, target_label, success, recorded_success, norms, same_image),
        e.g. for ``pandas.DataFrame(result.records())``.

        Returns
        -------
        list of dict

        Examples
        --------
        >>> import pandas as pd
        >>> pd.DataFrame(r.records()).groupby("success").size()
        """
        return [{"id": i, "true_label": int(t), "target_label": int(g), "success": bool(s),
                 "recorded_success": bool(rs), "norms": n, "same_image": bool(same)}
                for i, t, g, s, rs, n, same in zip(self.ids, self.true_labels, self.target_labels, self.success,
                                                   self.recorded_success, self.norms, self.same_image, strict=True)]


def rerun_attack(stimulus_set: StimulusSet, ids: Iterable[str], *, models: dict[str, nn.Module] | None = None,
                 device: str | torch.device = "cpu") -> RerunResult:
    """Re-run the attack each stimulus records (attack, parameters, budget, target) on its source image.

    The attack is the set's ``stimulus_design.attack`` with each stimulus's ``attack_params``, against
    the defended model it names, on the source image, quantized to 8 bits as generation does; for
    ``matched_norm`` the perturbation is then scaled by the recorded ``rescale`` (the scale within its
6 recorded digits at which the 8-bit image reaches the recorded norm). Success and norms
    are measured in fp32 on the final 8-bit image, as the manifest's are.

    Deterministic attacks (fgsm, tgsm, tgsm_iterative, jsma, deepfool, cw_l2) reproduce the recorded
    images; a random-start attack (pgd_linf, pgd_l2 with ``random_start``) draws its start for the
    batch it is given, so it reproduces them only on the same batch. ``same_image`` says, per stimulus,
    whether the re-run image is the set's PNG pixel for pixel.

    Parameters
    ----------
    stimulus_set : StimulusSet
        From :func:`load_stimulus_set`.
    ids : iterable of str
        Adversarial stimulus ids (controls are not an attack's output: re-run their ``twin``).
    models : dict of str to torch.nn.Module, optional
        Defended models by name; those not given are loaded with :func:`load_model`.
    device : str or torch.device
        Where to run.

    Returns
    -------
    RerunResult

    Raises
    ------
    GenerationError
        If an id is unknown or not an adversarial stimulus, or a model cannot be loaded.

    Examples
    --------
    >>> from advlegit.generation import load_stimulus_set, rerun_attack
    >>> s = load_stimulus_set("runs/mnist-demo/stimuli")
    >>> r = rerun_attack(s, s.ids(defense="gradreg_y")[:10])
    >>> bool((r.success == r.recorded_success).all())
    True
    """
    ids = list(ids)
    entries = [stimulus_set.entry(i) for i in ids]
    for e in entries:
        if e.get("kind") != "adversarial":
            hint = f"; re-run its twin {e['twin']}" if e.get("twin") else ""
            raise GenerationError(f"{e['id']} is not an attack's output (kind {e.get('kind')!r}){hint}")
    device = torch.device(device)
    design = stimulus_set.manifest["stimulus_design"]
    cfg = stimulus_set.config.stimuli
    attack = get_attack(design["attack"])
    params = base_params(cfg)
    budget_param = design.get("budget_param", cfg.budget_param)
    resolved = stimulus_set.manifest.get("software", {}).get("precision", "fp32")
    models = dict(models or {})

    images = np.zeros((len(ids), *stimulus_set.manifest["dataset"]["image_shape"]), dtype=np.float32)
    success = np.zeros(len(ids), dtype=bool)
    norms: list[dict[str, float]] = [{} for _ in ids]
    # one batch per (defense, budget as the design passed it), in the order asked for
    for (defense, scalar), rows in _groups(entries, design["design"]).items():
        if defense not in models:
            models[defense] = load_model(stimulus_set, defense, device=device)
        model = models[defense]
        x = torch.from_numpy(stimulus_set.images([entries[r]["source_id"] for r in rows])).to(device)
        y = torch.tensor([entries[r]["true_label"] for r in rows], device=device)
        t = torch.tensor([entries[r]["target_label"] for r in rows], device=device)
        p = {**params, **{k: v for k, v in entries[rows[0]]["attack_params"].items()
                          if k in attack_param_names(design["attack"]) and k not in (budget_param, "step_size")}}
        run = attack
        if design["design"] == "ross":  # generation/designs/ross.py: iterated TGSM, epsilon 1 = no ball
            recorded = entries[rows[0]]["attack_params"]
            run, p = get_attack("tgsm_iterative"), {"epsilon": 1.0, "step_size": recorded["step_size"],
                                                    "steps": recorded["steps"]}
            budget = None
        elif scalar is not None:
            budget = scalar
        else:  # the unrounded budget (attack_params rounds it to 8 digits)
            budget = torch.tensor([entries[r]["budget"] for r in rows], dtype=torch.float64, device=device)
        with precision.attacking(resolved, device, model):
            res = run_quantized(run, model, x, y, t, p, budget_param, budget)
        out = res.images
        if design["design"] == "matched_norm":
            out = _rescaled(x, out - x, [entries[r] for r in rows], design["norm"])
        final = finish(model, x, out, y, t)
        for j, r in enumerate(rows):
            images[r] = final.images[j].cpu().numpy()
            success[r] = bool(final.success[j])
            norms[r] = {k: float(v[j]) for k, v in final.norms.items()}
    recorded = stimulus_set.images(ids)
    return RerunResult(ids=ids, images=images,
                       true_labels=np.array([e["true_label"] for e in entries], dtype=np.int64),
                       target_labels=np.array([e["target_label"] for e in entries], dtype=np.int64),
                       success=success, recorded_success=np.array([bool(e["success"]) for e in entries]),
                       norms=norms, same_image=(np.rint(images * 255) == np.rint(recorded * 255))
                       .reshape(len(ids), -1).all(axis=1))


def _rescaled(x: torch.Tensor, delta: torch.Tensor, entries: list[dict[str, Any]], norm: str) -> torch.Tensor:
    """matched_norm's step 3 again: the scale within a millionth of the recorded `rescale` (it is rounded to
    6 digits) whose 8-bit image first reaches the recorded norm, found by bisection as generation does."""
    shape = (-1, *([1] * (x.dim() - 1)))

    def image(s: torch.Tensor) -> torch.Tensor:
        return quantize((x + s.view(shape).to(x.dtype) * delta).clamp(0, 1), reference=x)

    def measure(s: torch.Tensor) -> torch.Tensor:  # as the manifest's norms are measured (stimulus_norms)
        return perturbation_norms(x.double(), image(s).double())["linf" if norm == "linf" else "l2"]

    scale = torch.tensor([e["attack_params"]["rescale"] for e in entries], dtype=torch.float64, device=x.device)
    want = torch.tensor([e["norms"][norm] for e in entries], dtype=torch.float64, device=x.device) - 1e-9
    lo, hi = (scale - 1e-6).clamp_min(1.0), scale + 1e-6
    for _ in range(40):
        mid = (lo + hi) / 2
        reached = measure(mid) >= want
        hi, lo = torch.where(reached, mid, hi), torch.where(reached, lo, mid)
    return image(torch.where(measure(lo) >= want, lo, hi))


def _groups(entries: list[dict[str, Any]], design: str) -> dict[tuple[str, float | None], list[int]]:
    """fixed_budget passed one float epsilon per call; the bisecting designs a tensor of per-image ones."""
    groups: dict[tuple[str, float | None], list[int]] = {}
    for r, e in enumerate(entries):
        scalar = e["budget"] if design == "fixed_budget" else None
        groups.setdefault((e["defense"], scalar), []).append(r)
    return groups

