"""contracts/validation.py: the one reader of tables people write (generation config, defense parameters,
study design, analysis options). Types from annotations, rules from field metadata, unknown keys refused
with a suggestion, every error naming the value's full path."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import pytest

from advlegit.contracts.validation import (
    ValidationError,
    build,
    canonical,
    check_field,
    check_instance,
    each,
    keys,
    nonempty,
    spec,
)


@dataclass
class Timing:
    exposure_ms: int = spec(0, ge=0, le=60_000)
    mask: str = spec("none", choices=("none", "noise"))
    rate: float = spec(1.0, gt=0)

    def __post_init__(self) -> None:
        if self.mask != "none" and not self.exposure_ms:
            raise ValidationError("mask", "needs exposure_ms > 0")


@dataclass
class Item:
    name: str = spec(check=nonempty)
    weight: float = 1.0


@dataclass
class Study:
    ALIASES: ClassVar[dict[str, str]] = {"old_name": "title"}
    RETIRED: ClassVar[dict[str, str]] = {"budgets": "replaced by design"}

    title: str
    presentation: Timing = field(default_factory=Timing)
    items: list[Item] = field(default_factory=list)
    order: Literal["fixed", "random"] = "fixed"
    seed: int | None = None
    pair: str | tuple[str, str] = "all"
    tags: tuple[str, ...] = ()
    extra: dict[str, Any] = spec(factory=dict, rest=True)
    lambda_: float = spec(0.0, ge=0)
    secret: str = spec("", internal=True)
    enabled: bool = spec(False, present=True)
    words: list[str] = spec(factory=list, check=each(nonempty))


def error_of(raw: Any, cls: type = Study) -> str:
    with pytest.raises(ValidationError) as err:
        build(cls, raw)
    return str(err.value)


def test_a_table_becomes_the_dataclass_with_values_in_one_representation():
    s = build(Study, {"title": "t", "presentation": {"exposure_ms": 200, "mask": "noise", "rate": 2},
                      "items": [{"name": "a"}], "pair": ["x", "y"], "tags": ["p", "q"], "lambda": 3, "color": "red"})
    assert s.presentation == Timing(200, "noise", 2.0) and isinstance(s.presentation.rate, float)
    assert s.items == [Item("a", 1.0)] and s.pair == ("x", "y") and s.tags == ("p", "q")
    assert s.lambda_ == 3.0 and s.extra == {"color": "red"}  # lambda is written without its _
    assert build(Study, {"title": "t"}).enabled is True  # `present`: writing the table asks for it
    assert build(Study, {"title": "t", "enabled": False}).enabled is False


@pytest.mark.parametrize("raw, message", [
    ({"title": 3}, "title: expected str, got 3"),
    ({"title": "t", "seed": "x"}, "seed: expected int, got 'x'"),
    ({"title": "t", "seed": True}, "seed: expected int, got True"),  # a bool is not a number
    ({"title": "t", "presentation": {"rate": True}}, "presentation.rate: expected a number, got True"),
    ({"title": "t", "presentation": {"exposure_ms": 2.5}}, "presentation.exposure_ms: expected int, got 2.5"),
    ({"title": "t", "presentation": 5}, "presentation: expected a table, got 5"),
    ({"title": "t", "items": {"name": "a"}}, "items: expected list, got {'name': 'a'}"),
    ({"title": "t", "items": [{"name": "a"}, {"weight": 2}]}, "items[1].name: required field is missing"),
    ({"title": "t", "order": "sorted"}, "order: must be one of fixed, random, got 'sorted'"),
    ({"title": "t", "pair": ["x"]}, "pair: expected str or a list of 2 values, got ['x']"),
    ({"title": "t", "tags": ["p", 1]}, "tags[1]: expected str, got 1"),
])
def test_wrong_types_name_the_full_path(raw, message):
    assert error_of(raw) == message


@pytest.mark.parametrize("raw, message", [
    ({"title": "t", "presentation": {"exposure_ms": -5}}, "presentation.exposure_ms: must lie in [0, 60000], got -5"),
    ({"title": "t", "presentation": {"mask": "pink"}}, "presentation.mask: must be one of none, noise, got 'pink'"),
    ({"title": "t", "presentation": {"rate": 0}}, "presentation.rate: must be positive, got 0"),
    ({"title": "t", "lambda": -1}, "lambda: must be >= 0, got -1"),
    ({"title": "t", "items": [{"name": "  "}]}, "items[0].name: must not be empty"),
    ({"title": "t", "words": ["a", ""]}, "words[1]: must not be empty"),
    # a check between fields (__post_init__) is named under the table's path
    ({"title": "t", "presentation": {"mask": "noise"}}, "presentation.mask: needs exposure_ms > 0"),
])
def test_rules_name_the_full_path(raw, message):
    assert error_of(raw) == message


def test_unknown_keys_are_refused_with_a_suggestion():
    assert error_of({"title": "t", "presentation": {"exposure": 1}}).startswith(
        "presentation.exposure: unknown field (did you mean 'exposure_ms'? allowed: exposure_ms, mask, rate)")
    assert error_of({"title": "t", "secret": "x"}, Item).startswith("title: unknown field")
    assert build(Study, {"title": "t", "secret": "x"}).extra == {"secret": "x"}  # internal: not a key; rest takes it
    assert "did you mean" not in error_of({"zzz": 1}, Timing)


def test_required_fields_aliases_and_retired_keys():
    assert error_of({}) == "title: required field is missing"
    assert build(Study, {"old_name": "t"}).title == "t"
    assert error_of({"old_name": "t", "title": "u"}) == "title: given twice (as 'title' and an older spelling)"
    assert error_of({"title": "t", "budgets": [1]}) == "budgets: replaced by design"
    assert "lambda" in keys(Study) and "secret" not in keys(Study) and "lambda_" not in keys(Study)
    assert canonical(Study, {"lambda": 1, "old_name": "t"}) == {"lambda_": 1, "title": "t"}


def test_instances_made_in_code_are_checked_the_same_way():
    @dataclass
    class Options:
        alpha: float = spec(0.05, gt=0, lt=1)
        n: int = 10

        def __post_init__(self) -> None:
            check_instance(self)

    with pytest.raises(ValidationError, match=r"^alpha: must lie in \(0, 1\), got 1$"):
        Options(alpha=1)
    assert isinstance(Options(alpha=0.5, n=3).alpha, float)
    assert check_field(Options, "n", 4) == 4
    with pytest.raises(ValidationError, match=r"^x\.n: expected int, got 'a'$"):
        check_field(Options, "n", "a", "x")


def test_the_caller_chooses_the_error_type():
    class ConfigError(ValueError):
        pass

    with pytest.raises(ConfigError, match=r"^presentation\.rate: must be positive"):
        build(Study, {"title": "t", "presentation": {"rate": -1}}, error=ConfigError)
    with pytest.raises(ConfigError, match=r"^cfg\.title: required field is missing$"):
        build(Study, {}, "cfg", error=ConfigError)


def test_fields_without_rules_keep_their_defaults_and_docs():
    f = {f.name: f for f in dataclasses.fields(Timing)}
    assert f["exposure_ms"].default == 0 and f["exposure_ms"].metadata["le"] == 60_000
    assert build(Timing, {}) == Timing()
