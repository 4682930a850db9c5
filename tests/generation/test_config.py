from pathlib import Path

import pytest

from advlegit.generation.config import ConfigError, from_dict, load_config

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize("name", ["quick.toml", "mnist-demo.toml"])
def test_examples_load(name):
    cfg = load_config(EXAMPLES / name)
    kinds = {d.kind for d in cfg.defenses}
    assert {"normal", "distillation", "fgsm_adv", "gradreg", "gradreg_adv", "pgd_adv"} <= kinds
    assert {d.params.get("variant") for d in cfg.defenses if d.kind == "gradreg"} == {"y", "uniform"}


@pytest.mark.parametrize("raw, field", [
    ({"trainig": {}}, "trainig"),
    ({"training": {"stepz": 3}}, "training.stepz"),
    ({"training": {"steps": "many"}}, "training.steps"),
    ({"training": {"lr": True}}, "training.lr"),
    ({"data": {"source": "web"}}, "data.source"),
    ({"data": {"source": "folder"}}, "data.path"),
    ({"model": {"architecture": "resnet"}}, "model.architecture"),
    ({"defenses": [{"name": "a", "kind": "magic"}]}, "defenses[0].kind"),
    ({"defenses": [{"name": "a", "kind": "normal"}, {"name": "a", "kind": "normal"}]}, "defenses[1].name"),
    ({"defenses": [{"name": "g", "kind": "gradreg", "lamda": 1.0}]}, "lamda"),
    ({"defenses": [{"kind": "normal"}]}, "defenses[0].name"),
    ({"stimuli": {"attack": "magic"}}, "stimuli.attack"),
    ({"defenses": [{"name": "a", "kind": "normal", "architecture": "resnet"}]}, "defenses[0].architecture"),
    ({"defenses": [{"name": "a", "kind": "normal", "architecture": 3}]}, "defenses[0].architecture"),
    ({"stimuli": {"attack_params": {"epsilonn": 0.1}}}, "stimuli.attack_params.epsilonn"),
    ({"stimuli": {"budgets": [0.3, 0.1]}}, "stimuli.budgets"),
    ({"stimuli": {"until_success": True}}, "stimuli.design"),
    ({"stimuli": {"budgets": [0.1]}}, 'design = "minimal"'),
    ({"stimuli": {"design": "adaptive"}}, "stimuli.design"),
    ({"stimuli": {"design": 3}}, "stimuli.design"),
    ({"stimuli": {"controls": ["mirror"]}}, "stimuli.controls[0]"),
    ({"stimuli": {"controls": ["flip", "flip"]}}, "stimuli.controls"),
    ({"stimuli": {"design": "matched_norm", "norm": "l1"}}, "stimuli.norm"),
    ({"stimuli": {"design": "matched_norm", "tolerance": 0.0}}, "stimuli.tolerance"),
    ({"stimuli": {"design": "minimal", "attack": "cw_l2"}}, "stimuli.attack"),
    ({"stimuli": {"design": "minimal", "resolution": 0.9}}, "stimuli.resolution"),
    ({"stimuli": {"design": "fixed_budget", "epsilons": []}}, "stimuli.epsilons"),
    ({"stimuli": {"design": "fixed_budget", "epsilons": [1.5]}}, "stimuli.epsilons"),
    ({"stimuli": {"attack_params": {"epsilon": 0.2}}}, "stimuli.attack_params.epsilon"),
    ({"stimuli": {"design": "ross", "attack": "pgd_linf"}}, "stimuli.attack"),
    ({"stimuli": {"design": "ross", "attack_params": {"epsilon": 0.3}}}, "stimuli.attack_params.epsilon"),
    ({"evaluation": {"attacks": ["jsma"]}}, "evaluation.attacks[0]"),
])
def test_bad_config_names_the_field(raw, field):
    with pytest.raises(ConfigError) as err:
        from_dict(raw)
    assert field in str(err.value)


@pytest.mark.parametrize("name, design", [("quick.toml", "matched_norm"), ("mnist-demo.toml", "matched_norm"),
                                          ("mnist-interpretability.toml", "fixed_budget")])
def test_examples_choose_a_stimulus_design(name, design):
    s = load_config(EXAMPLES / name).stimuli
    assert s.design == design
    assert s.controls == (["flip", "noise"] if design == "matched_norm" else [])


def test_bad_toml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[training\nsteps = 3")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.toml")


def test_hash_is_stable_and_sensitive():
    a = from_dict({"training": {"steps": 10}})
    b = from_dict({"training": {"steps": 10}})
    c = from_dict({"training": {"steps": 11}})
    assert a.hash() == b.hash() != c.hash()


def test_each_defense_may_choose_its_architecture():
    from advlegit.generation.train import model_specs

    cfg = from_dict({"defenses": [{"name": "plain", "kind": "normal"},
                                  {"name": "cam", "kind": "normal", "architecture": "gap_cnn"}]})
    assert cfg.defenses[1].params == {}  # a known field, not a defense parameter
    specs = {s.name: s for s in model_specs(cfg, "sha")}
    assert specs["plain"].architecture == "ross_cnn" and specs["cam"].architecture == "gap_cnn"
    assert specs["plain"].key() != specs["cam"].key()


def test_interpretability_example_loads():
    cfg = load_config(EXAMPLES / "mnist-interpretability.toml")
    kinds = {d.kind for d in cfg.defenses}
    assert {"normal", "etmann_gradreg", "ig_norm", "ig_sum_norm", "int", "int2"} <= kinds
    assert len({d.params["lambda_"] for d in cfg.defenses if d.kind == "etmann_gradreg"}) >= 3
    assert {d.architecture for d in cfg.defenses if d.kind in ("int", "int2")} == {"gap_cnn"}
    assert cfg.interpretability.enabled


@pytest.mark.parametrize("raw, field", [
    ({"interpretability": {"methods": ["lime"]}}, "interpretability.methods[0]"),
    ({"interpretability": {"export_saliency": ["lime"]}}, "interpretability.export_saliency[0]"),
    ({"interpretability": {"robustness_attacks": ["pgd_linf"]}}, "interpretability.robustness_attacks[0]"),
    ({"interpretability": {"top_k": 0}}, "interpretability.top_k"),
    ({"interpretability": {"attack_epsilon": 2.0}}, "interpretability.attack_epsilon"),
    ({"interpretability": {"topk": 5}}, "interpretability.topk"),
    ({"defenses": [{"name": "i", "kind": "int"}]}, "defenses[0].architecture"),
])
def test_bad_interpretability_config_names_the_field(raw, field):
    with pytest.raises(ConfigError) as err:
        from_dict(raw)
    assert field in str(err.value)


def test_errors_name_the_full_path_and_suggest_the_key_meant():
    """contracts/validation.py: one reader for the config and the defenses' parameters."""
    with pytest.raises(ConfigError, match=r"^defenses\[0\]\.lamda: unknown field \(did you mean 'lambda'\?"):
        from_dict({"defenses": [{"name": "g", "kind": "gradreg", "lamda": 1.0}]})
    with pytest.raises(ConfigError, match=r"^training\.stepz: unknown field \(did you mean 'steps'\?"):
        from_dict({"training": {"stepz": 3}})
    with pytest.raises(ConfigError, match=r"^model\.dropout: must lie in \[0, 1\), got 1\.0$"):
        from_dict({"model": {"dropout": 1.0}})
    with pytest.raises(ConfigError, match=r"^defenses\[1\]\.variant: expected str, got 3$"):
        from_dict({"defenses": [{"name": "normal"}, {"name": "g", "kind": "gradreg", "variant": 3}]})
