"""An accuracy-matched natural baseline (Chen et al.; issue 15): a defense with match_accuracy_of is
trained until its accuracy on a held-out validation split first reaches the named model's, checked
every match_every steps, and the manifest says so."""
from __future__ import annotations

import pytest

from advlegit.generation.config import ConfigError, from_dict
from advlegit.generation.manifest import verify
from advlegit.generation.pipeline import generate
from advlegit.generation.plan import make_plan

MATCHED = {
    "name": "matched",
    "data": {"n_train": 300, "n_rater": 50, "n_test": 60, "n_validation": 100},
    "model": {"width": 0.25},
    "training": {"steps": 20, "batch_size": 16, "seeds": [0, 3]},
    # the same kind and seed as its target: about the same trajectory (CPU threads may reorder sums),
    # so it reaches the target's accuracy near the target's 20 steps, long before its own cap of 400
    "defenses": [{"name": "normal"},
                 {"name": "normal_matched", "kind": "normal", "train_steps": 400, "match_accuracy_of": "normal",
                  "match_every": 5}],
    "raters": {"count": 0},
    "evaluation": {"attacks": ["fgsm"], "epsilons": [0.0, 0.3], "n_images": 8},
    "stimuli": {"per_class": 1, "attack": "fgsm", "epsilons": [0.3], "require_correct": False},
}


def _with(**defense):
    return {**MATCHED, "defenses": [MATCHED["defenses"][0], {**MATCHED["defenses"][1], **defense}]}


@pytest.mark.parametrize("change, message", [
    (dict(match_accuracy_of="nobody"), "match_accuracy_of 'nobody' is not the name of a defense"),
    (dict(match_accuracy_of="normal_matched"), "match_accuracy_of names the defense itself"),
    (dict(match_every=0), r"defenses\[1\].match_every must be positive"),
])
def test_a_wrong_match_is_refused(change, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(_with(**change))


def test_a_match_needs_a_validation_split_and_a_trained_target():
    with pytest.raises(ConfigError, match="set data.n_validation"):
        from_dict({**MATCHED, "data": {**MATCHED["data"], "n_validation": 0}})
    chained = {**MATCHED, "defenses": MATCHED["defenses"] + [
        {"name": "again", "kind": "normal", "match_accuracy_of": "normal_matched"}]}
    with pytest.raises(ConfigError, match="is matched to another model itself"):
        from_dict(chained)


def test_the_dry_run_says_the_model_stops_early():
    plan = str(make_plan(from_dict(MATCHED)))
    assert "stops when its validation accuracy reaches normal's, checked every 5 steps" in plan


def test_the_validation_split_leaves_the_other_splits_as_they_were():
    from advlegit.generation.data import load_embedded, split
    ds = load_embedded()
    before = split(ds, from_dict({**MATCHED, "defenses": [{"name": "normal"}],
                                  "data": {**MATCHED["data"], "n_validation": 0}}).data)
    after = split(ds, from_dict(MATCHED).data)
    for part in ("train", "rater", "test"):
        assert (getattr(before, part) == getattr(after, part)).all()
    assert len(after.validation) == 100 and not set(after.validation) & set(after.train) & set(after.test)


def test_the_matched_model_stops_at_the_first_check_that_reaches_the_target(tmp_path):
    out = generate(from_dict(MATCHED), tmp_path / "set")
    m = verify(out)
    entry = next(x for x in m["models"] if x["name"] == "normal_matched")
    match = entry["accuracy_matched"]
    assert match["to"] == "normal" and match["split"] == "validation" and match["n_images"] == 100
    assert m["dataset"]["splits"] == {"train": 300, "rater": 50, "test": 60, "validation": 100}
    assert match["reached"] and match["accuracy"] >= match["target_accuracy"]
    assert match["stopped_at_step"] < 400 and match["stopped_at_step"] % 5 == 0 and match["max_steps"] == 400
    steps = [s for s, _ in match["checks"]]
    assert steps == list(range(5, match["stopped_at_step"] + 1, 5))
    assert all(acc < match["target_accuracy"] for _, acc in match["checks"][:-1])  # the *first* check to reach it
    assert "accuracy_matched" not in next(x for x in m["models"] if x["name"] == "normal")
    # another seed's matched model is matched to that seed's model
    rep = next(r for r in m["seed_replicates"] if r["name"] == "normal_matched@seed3")
    assert rep["accuracy_matched"]["to"] == "normal@seed3" and rep["accuracy_matched"]["reached"]
    # across seeds, the baseline is paired with the model it is matched to, seed by seed
    import json
    seeds = json.loads((out / "metrics.json").read_text())["seeds"]
    vs = seeds["vs_accuracy_matched"]
    assert vs["pairs"] == {"normal_matched": "normal"}
    clean = vs["models"]["normal_matched"]["clean_accuracy"]
    assert clean["values"] == pytest.approx([a - b for a, b in zip(seeds["clean_accuracy"]["normal"]["values"],
                                                                    seeds["clean_accuracy"]["normal_matched"]["values"],
                                                                    strict=True)])
    assert clean["n"] == 2 and clean["seeds"] == [0, 3]
    # a second run reuses the checkpoints and still says where they stopped
    again = verify(generate(from_dict(MATCHED), tmp_path / "again"))
    assert next(x for x in again["models"] if x["name"] == "normal_matched")["accuracy_matched"] == match
