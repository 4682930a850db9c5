"""study.toml -> stimulus set: train (cached), evaluate (cached), attack, render, write the manifest.

The folder is assembled in a temporary sibling and renamed into place at the end, so a failed or
interrupted run never leaves a half-written stimulus set.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import platform
import shutil
import tempfile
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from . import precision
from .config import GenerationConfig, sha256_json
from .data import load_dataset, split
from .evaluate import evaluate
from .interpretability import RESULTS_VERSION, evaluate_interpretability
from .interpretability_report import (
    SEED_COLUMNS,
    SEED_FIGURE,
    plot_alignment_vs_robustness,
    plot_cam_discrepancy_vs_margin,
    plot_saliency_grids,
    seed_metrics,
    write_tables,
)
from .manifest import VerificationError, manifest_sha256, read_manifest, sha256_file, verify, write_manifest
from .metrics import accuracy
from .plan import IDENTIFY_MAX_CLASSES
from .render import plot_accuracy_vs_epsilon, plot_grid_per_defense, plot_matched_grid, plot_transfer_heatmap, write_png
from .saliency_images import export_stimulus_saliency
from .seeds import (
    plot_clean_accuracy,
    plot_interpretability,
    plot_vs_reference,
    plot_white_box_curves,
    reference_model,
    summarize,
    summarize_interpretability,
    write_table,
)
from .stimuli import Stimulus, choose_sources, choose_targets, make_stimuli, predictions
from .train import cache_dir, data_key, model_specs, replicate_name, to_tensors, train_or_load

log = logging.getLogger(__name__)
VERSION = "0.1.0"


class OutputExistsError(FileExistsError):
    pass


def _cached_json(kind: str, key: dict[str, Any], compute) -> dict[str, Any]:
    path = cache_dir() / kind / f"{sha256_json(key)}.json"
    if path.is_file():
        log.info("%s: reused cached result %s", kind, path.name[:12])
        return json.loads(path.read_text())
    value = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(value))
    tmp.replace(path)
    return value


def _up_to_date(out: Path, cfg: GenerationConfig) -> bool:
    if not (out / "manifest.json").is_file():
        return False
    try:
        existing = read_manifest(out)
        if existing.get("config_hash") != cfg.hash():
            return False
        verify(out)
        return True
    except (VerificationError, KeyError):
        return False


def generate(cfg: GenerationConfig, out: str | Path, device: str = "cpu", force: bool = False) -> Path:
    out = Path(out)
    if _up_to_date(out, cfg):
        log.info("%s is already the stimulus set of this config (hash %s); nothing to do", out, cfg.hash()[:12])
        return out
    if out.exists() and any(out.iterdir()) and not force:
        raise OutputExistsError(f"{out} exists and holds something else; choose another folder or pass --force")
    dev = torch.device(device)
    started = time.time()

    dataset = load_dataset(cfg.data)
    splits = split(dataset, cfg.data)
    num_classes = len(dataset.classes)
    if num_classes > IDENTIFY_MAX_CLASSES:
        log.warning("%d classes: a study of this set cannot use the identify task (at most %d); rate, compare "
                    "and explain can", num_classes, IDENTIFY_MAX_CLASSES)
    x_test, y_test = to_tensors(dataset.images, dataset.labels, splits.test, dev)
    data_for = {"train": to_tensors(dataset.images, dataset.labels, splits.train, dev),
                "rater": to_tensors(dataset.images, dataset.labels, splits.rater, dev)}

    resolved = precision.resolve(cfg.precision, dev)
    log.info("precision %s (config: %s)", resolved, cfg.precision)
    specs = model_specs(cfg, dataset.sha256, resolved)
    # Loaded models first: a bad model file stops the run before hours of training, not after.
    loaded = {s.name: train_or_load(s, *data_for["train"], num_classes, dev) for s in specs if s.load is not None}
    validation = to_tensors(dataset.images, dataset.labels, splits.validation, dev) if len(splits.validation) else None
    trained = {}
    # accuracy-matched models after the ones they are matched to (their stop depends on those)
    for i, spec in enumerate(sorted(specs, key=lambda s: s.match is not None), 1):
        log.info("model %d/%d: %s (%s)", i, len(specs), spec.name, spec.defense)
        x, y = data_for.get(spec.split, data_for["train"])
        if spec.match:
            spec = matched_spec(spec, trained, validation)
        trained[spec.name] = loaded.get(spec.name) or train_or_load(spec, x, y, num_classes, dev, validation)
    trained = {s.name: trained[s.name] for s in specs}  # the config's order again
    everyone = {n: t.model for n, t in trained.items() if t.spec.role != "replicate"}
    defended = {n: t.model for n, t in trained.items() if t.spec.role == "defended"}
    checkpoints = {n: t.checkpoint_sha256 for n, t in trained.items() if t.spec.role != "replicate"}

    log.info("evaluating %d models (%s)", len(everyone), ", ".join(cfg.evaluation.attacks))
    metrics = _cached_json("evaluation", {"checkpoints": checkpoints, "eval": asdict(cfg.evaluation),
                                          "data": data_key(cfg.data), "dataset": dataset.sha256,
                                          **_precision_key(resolved)},
                           lambda: _under(resolved, dev, defended,
                                          lambda: evaluate(defended, everyone, x_test, y_test, cfg.evaluation)))

    if len(cfg.training.seeds) > 1:
        metrics = {**metrics, "seeds": _seed_summary(cfg, trained, metrics, dataset, x_test, y_test, resolved)}

    if cfg.interpretability.enabled:
        metrics = {**metrics,
                   "interpretability": _interpretability(cfg, defended, checkpoints, dataset, x_test, y_test)}
        if len(cfg.training.seeds) > 1:
            metrics["seeds"] = {**metrics["seeds"], "interpretability": _interpretability_across_seeds(
                cfg, trained, metrics["interpretability"], dataset, x_test, y_test)}

    log.info("making stimuli: design %s, %s against %d defenses", cfg.stimuli.design, cfg.stimuli.attack,
             len(defended))
    sources = choose_sources(x_test, y_test, splits.test, defended, cfg.stimuli, num_classes)
    pairs = choose_targets(sources, cfg.stimuli, num_classes)
    # Attacks under autocast (bf16); every flag, norm and prediction recorded below is an fp32 pass.
    stimuli, design = _under(resolved, dev, defended, lambda: make_stimuli(pairs, defended, cfg.stimuli))
    for s, p in zip(stimuli, predictions(everyone, torch.stack([s.image for s in stimuli])), strict=True):
        s.predictions = p
        if s.kind != "adversarial":  # a control "succeeds" as its twin would: its model says the target
            s.success = p[s.defense]["label"] == s.target
    source_predictions = predictions(everyone, torch.stack([s.image for s in sources]))

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        _write_set(tmp, cfg, dataset, splits, trained, metrics, sources, source_predictions, stimuli,
                   (x_test, y_test), design, resolved)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    adversarial = [s for s in stimuli if s.kind == "adversarial"]
    log.info("wrote %s: %d adversarial stimuli (%d successful), %d controls, from %d sources in %.0f s; "
             "manifest sha256 %s", out, len(adversarial), sum(s.success for s in adversarial),
             len(stimuli) - len(adversarial), len(sources), time.time() - started, manifest_sha256(out)[:12])
    return out


def matched_spec(spec, trained, validation) -> Any:
    """An accuracy-matched spec with its target filled in: the matched-to model of the same seed (a
    replicate is matched to that seed's replicate), its accuracy on the validation split and its
    checkpoint hash (both part of the cache key: another target, another model)."""
    of = spec.match["of"]
    same_seed = replicate_name(of, spec.seed)
    target = same_seed if spec.role == "replicate" and same_seed in trained else of
    t = trained[target]
    acc = accuracy(t.model, *validation)
    log.info("model %s: trained until its validation accuracy reaches %s's %.3f", spec.name, target, acc)
    return dataclasses.replace(spec, match={**spec.match, "target": target, "target_accuracy": round(acc, 6),
                                            "target_sha256": t.checkpoint_sha256, "n_validation": len(validation[1])})


def _matched(t) -> dict[str, Any]:
    """An accuracy-matched model's entry says so: to which model, on which split, where it stopped."""
    if t.matched is None:
        return {}
    m = t.spec.match
    return {"accuracy_matched": {"to": m["target"], "split": "validation", "n_images": m["n_validation"],
                                 "every": m["every"], "max_steps": t.spec.steps, **t.matched}}


def _precision_key(resolved: str) -> dict[str, str]:
    """bf16 attacks may find other images, so bf16 evaluations are cached apart; fp32 keys stay as before."""
    return {} if resolved == "fp32" else {"precision": resolved}


def _under(resolved: str, dev: torch.device, models: dict[str, Any], work):
    with precision.attacking(resolved, dev, *models.values()):
        return work()


def _seed_summary(cfg: GenerationConfig, trained, metrics, dataset, x_test, y_test,
                  resolved: str = "fp32") -> dict[str, Any]:
    """Evaluate every other seed's models as the first seed's were; summarize across seeds."""
    per_seed = [metrics]
    for seed in cfg.training.seeds[1:]:
        models = _seed_models(trained, seed)
        raters = {n: t.model for n, t in trained.items() if t.spec.role == "rater"}
        sha = {n: trained.get(replicate_name(n, seed), trained[n]).checkpoint_sha256 for n in {**models, **raters}}
        log.info("evaluating seed %d's models", seed)
        per_seed.append(_cached_json("evaluation", {"checkpoints": sha, "eval": asdict(cfg.evaluation),
                                                    "data": data_key(cfg.data), "dataset": dataset.sha256,
                                                    **_precision_key(resolved)},
                                     lambda models=models, raters=raters: _under(
                                         resolved, x_test.device, models,
                                         lambda: evaluate(models, {**models, **raters}, x_test, y_test,
                                                          cfg.evaluation))))
    defenses = [n for n, t in trained.items() if t.spec.role == "defended"]
    return summarize(cfg.training.seeds, per_seed, reference_model(defenses), defenses, _matched_baselines(cfg))


def _matched_baselines(cfg: GenerationConfig) -> dict[str, str]:
    """{accuracy-matched baseline: the defense it is matched to}: the pairs Chen et al. compare."""
    return {d.name: d.match_accuracy_of for d in cfg.defenses if d.match_accuracy_of}


def _seed_models(trained, seed: int) -> dict[str, Any]:
    """Another seed's defended models under the first seed's names, so the results line up (a loaded
    model has no seed: it stands in for itself)."""
    return {n: trained.get(replicate_name(n, seed), t).model for n, t in trained.items() if t.spec.role == "defended"}


def _interpretability_across_seeds(cfg: GenerationConfig, trained, first: dict[str, Any], dataset, x_test,
                                   y_test) -> dict[str, Any]:
    """The interpretability metrics of every other seed's models (cached per seed, as the first
    seed's), summarized with the first seed's as mean and interval per model and metric."""
    per_seed = [seed_metrics(first)]
    for seed in cfg.training.seeds[1:]:
        models = _seed_models(trained, seed)
        sha = {n: trained.get(replicate_name(n, seed), trained[n]).checkpoint_sha256 for n in models}
        log.info("interpretability of seed %d's models", seed)
        per_seed.append(seed_metrics(_interpretability(cfg, models, sha, dataset, x_test, y_test)))
    return summarize_interpretability(cfg.training.seeds, per_seed, reference_model(list(per_seed[0])),
                                      _matched_baselines(cfg))


# Settings that only change pictures or exports, not the measured numbers: outside the cache key.
_PRESENTATION_ONLY = ("enabled", "methods", "grid_images", "export_saliency")


def interpretability_key(ic) -> dict[str, Any]:
    """The [interpretability] settings as cache keys hold them: the cam_top_k_* settings only when
    cam_top_k is on, so the results cached before those keys existed are found again."""
    key = {k: v for k, v in asdict(ic).items() if k not in _PRESENTATION_ONLY}
    if not key["cam_top_k"]:
        key = {k: v for k, v in key.items() if not k.startswith("cam_top_k")}
    return key


def _interpretability(cfg: GenerationConfig, defended, checkpoints, dataset, x_test, y_test) -> dict[str, Any]:
    ic = cfg.interpretability
    log.info("interpretability: %d models on %d digits", len(defended), min(ic.n_images, len(y_test)))
    key = {"version": RESULTS_VERSION, "checkpoints": {n: checkpoints[n] for n in defended},
           "data": data_key(cfg.data), "dataset": dataset.sha256,
           "interpretability": interpretability_key(ic)}
    return _cached_json("interpretability", key, lambda: evaluate_interpretability(defended, x_test, y_test, ic))


def _write_interpretability(folder: Path, cfg: GenerationConfig, trained, metrics, test_data) -> None:
    ic = cfg.interpretability
    defended = {n: t.model for n, t in trained.items() if t.spec.role == "defended"}
    x, y = test_data[0][: ic.grid_images], test_data[1][: ic.grid_images]
    plot_saliency_grids(defended, x, y, ic.methods, folder / "figures", ig_steps=ic.ig_steps)
    interp = metrics["interpretability"]
    if ic.alignment:
        plot_alignment_vs_robustness(interp, folder / "figures" / "alignment_vs_robustness.png")
    plot_cam_discrepancy_vs_margin(interp, folder / "figures" / "cam_discrepancy_vs_margin.png")
    write_tables(interp, {n: t.spec.architecture for n, t in trained.items()}, ic, folder / "tables",
                 metrics.get("seeds", {}).get("interpretability"))


def _loaded_from(t) -> dict[str, Any]:
    """A loaded model's entry says which file it came from (checkpoint_sha256 is that file's hash)."""
    if t.spec.load is None:
        return {}
    return {"loaded_from": {**t.spec.load, "load": str(t.checkpoint), "sha256": t.checkpoint_sha256}}


def _write_set(folder: Path, cfg, dataset, splits, trained, metrics, sources, source_predictions,
               stimuli: list[Stimulus], test_data, design: dict[str, Any], resolved: str = "fp32") -> None:
    images = folder / "images"
    figures = folder / "figures"
    images.mkdir()
    figures.mkdir()
    source_entries = []
    for src, preds in zip(sources, source_predictions, strict=True):
        rel = f"images/{src.id}.png"
        write_png(folder / rel, src.image.cpu().numpy())
        source_entries.append({"id": src.id, "kind": "clean", "twin": None, "image": rel,
                               "sha256": sha256_file(folder / rel), "source_index": src.index,
                               "true_label": src.label, "predictions": preds})
    saliency = {}
    if cfg.interpretability.enabled and cfg.interpretability.export_saliency:
        saliency = export_stimulus_saliency(folder, stimuli, {n: t.model for n, t in trained.items()},
                                            cfg.interpretability.export_saliency,
                                            ig_steps=cfg.interpretability.ig_steps)
    stimulus_entries = []
    for s in stimuli:
        rel = f"images/{s.id}.png"
        write_png(folder / rel, s.image.cpu().numpy())
        stimulus_entries.append({
            "id": s.id, "kind": s.kind, "twin": s.twin, "image": rel, "sha256": sha256_file(folder / rel),
            "group": s.group, "source_id": s.source.id, "source_index": s.source.index,
            "true_label": s.source.label, "target_label": s.target, "defense": s.defense,
            "design": s.design, "attack": cfg.stimuli.attack, "attack_params": s.params, "budget": s.budget,
            "seed": cfg.stimuli.seed, "norms": s.norms, "success": s.success,
            "predictions": s.predictions,
        })
        if s.control is not None:
            stimulus_entries[-1]["control"] = s.control
        if saliency:
            stimulus_entries[-1]["saliency"] = saliency[s.id]

    (folder / "metrics.json").write_text(json.dumps(metrics, indent=1))
    for attack in cfg.evaluation.attacks:
        plot_accuracy_vs_epsilon(metrics, attack, figures / f"accuracy_vs_epsilon_{attack}.png")
        if "transfer_matrix" in metrics:
            plot_transfer_heatmap(metrics, attack, figures / f"transfer_{attack}.png")
    if "jsma_transfer" in metrics:
        plot_transfer_heatmap(metrics, "jsma", figures / "transfer_jsma.png")
    defenses = [d.name for d in cfg.defenses]
    adversarial = [s for s in stimuli if s.kind == "adversarial"]  # controls would overwrite their twins
    for d in defenses:
        plot_grid_per_defense(adversarial, d, dataset.classes, figures / f"grid_{d}.png")
    plot_matched_grid(adversarial, defenses, dataset.classes, figures / "matched_stimuli.png")
    if cfg.interpretability.enabled:
        _write_interpretability(folder, cfg, trained, metrics, test_data)
    if "seeds" in metrics:
        plot_clean_accuracy(metrics["seeds"], figures / "seeds_clean_accuracy.png")
        for attack in cfg.evaluation.attacks:
            plot_white_box_curves(metrics["seeds"], attack, figures / f"seeds_accuracy_vs_epsilon_{attack}.png")
        write_table(metrics["seeds"], folder / "tables" / "seeds.md", SEED_COLUMNS)
        if "interpretability" in metrics["seeds"]:
            plot_interpretability(metrics["seeds"]["interpretability"], SEED_FIGURE,
                                  figures / "seeds_interpretability.png")
        plot_vs_reference(metrics["seeds"], SEED_FIGURE, figures / "seeds_vs_reference.png")

    models = [{"name": n, "role": t.spec.role, "defense": t.spec.defense,
               "defense_params": t.spec.defense_params, "architecture": t.spec.architecture,
               "width": t.spec.width, "training_steps": t.spec.steps, "trained_on": t.spec.split,
               "checkpoint_sha256": t.checkpoint_sha256, "cache_key": t.spec.key(),
               "clean_accuracy": metrics["clean_accuracy"][n],
               "input_gradient_norm": metrics["input_gradient_norm"][n],
               **_loaded_from(t), **_matched(t)}
              for n, t in trained.items() if t.spec.role != "replicate"]
    replicates = [{"name": n, "defense_model": n.split("@")[0], "seed": t.spec.seed,
                   "checkpoint_sha256": t.checkpoint_sha256, "cache_key": t.spec.key(),
                   "clean_accuracy": metrics["seeds"]["clean_accuracy"][n.split("@")[0]]["values"][
                       cfg.training.seeds.index(t.spec.seed)], **_matched(t)}
                  for n, t in trained.items() if t.spec.role == "replicate"]
    write_manifest(folder, {
        "created_utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "software": {"advlegit": VERSION, "torch": torch.__version__, "python": platform.python_version(),
                     "precision": resolved},  # attacks/training; recorded numbers are fp32
        "name": cfg.name,
        "config": cfg.to_dict(),
        "config_hash": cfg.hash(),
        "dataset": {"name": dataset.name, "source": dataset.source, "sha256": dataset.sha256,
                    "image_shape": list(dataset.images.shape[1:]), "classes": dataset.classes,
                    "splits": {"train": len(splits.train), "rater": len(splits.rater), "test": len(splits.test),
                               **({"validation": len(splits.validation)} if len(splits.validation) else {})},
                    "split_seed": cfg.data.split_seed},
        "models": models,
        **({"seed_replicates": replicates} if replicates else {}),
        "stimulus_design": design,
        "sources": source_entries,
        "stimuli": stimulus_entries,
    })
