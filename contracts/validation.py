"""One way to read a table a person wrote (TOML, JSON, keyword arguments) into a dataclass, for the
generation config, the defenses' parameters, the study design and the analysis options. Imports nothing
of the project, no Flask, no torch.

Types come from the annotations (str, int, float, bool, Any, Literal, X | None, unions, list[X],
tuple[X, ...], tuple[X, Y], dict, nested dataclasses); per-field rules from `spec(...)` in the field's
metadata (bounds, choices, a check function). Every error names the full dotted path of the value,
`stimuli.controls[0]: must be one of flip, noise, got 'mirror'`, and an unknown key says which known
one it may have meant.

Class-level tables: `ALIASES` (older spelling -> field name, both accepted, never both at once) and
`RETIRED` (key -> what replaced it, refused with that text). A field named after a Python keyword plus
`_` (`lambda_`) is written without the `_`. Checks between fields belong in the dataclass's
`__post_init__`: a ValidationError raised there (path relative to the table) or a plain ValueError is
reported under the table's path.
"""
from __future__ import annotations

import dataclasses
import difflib
import functools
import keyword
import types
import typing
from collections.abc import Callable
from typing import Any, Literal

MISSING = dataclasses.MISSING


class ValidationError(ValueError):
    """A value a person wrote is wrong: `path` names it (dotted, with [i] for list items)."""

    def __init__(self, path: str, problem: str) -> None:
        self.path, self.problem = path, problem
        super().__init__(f"{path}: {problem}" if path else problem)

    @classmethod
    def from_message(cls, message: str) -> ValidationError:
        """From a 'path: problem' message of an older checker (its path relative to the value)."""
        path, sep, problem = message.partition(": ")
        return cls(path, problem) if sep else cls("", message)


def join(where: str, key: str) -> str:
    if not where or not key:
        return where or key
    return f"{where}{key}" if key.startswith("[") else f"{where}.{key}"


def spec(default: Any = MISSING, *, factory: Any = MISSING, ge: float | None = None, gt: float | None = None,
         le: float | None = None, lt: float | None = None, choices: Any = None,
         check: Callable[[Any], Any] | None = None, message: str = "", expects: str = "", none: Any = MISSING,
         present: Any = MISSING, rest: bool = False, internal: bool = False, typed: bool = True) -> Any:
    """A dataclass field with validation rules in its metadata.

    ge/gt/le/lt: numeric bounds; choices: allowed values (or a function returning them, for registries
    loaded late); check: value -> value, raising ValueError (or ValidationError with a path relative to
    the field) after the type check; message: replaces the rule's own "must be ..." words; expects:
    replaces the type's name in "expected ..."; none: the value None stands for; present: the default
    when the table is written at all; rest: this dict field collects every key that is not a field;
    internal: not a key a person may write; typed=False: `check` takes the raw value and checks its type
    itself (a value with a contract of its own)."""
    meta = {k: v for k, v in dict(ge=ge, gt=gt, le=le, lt=lt, choices=choices, check=check, message=message,
                                   expects=expects).items() if v not in (None, "")}
    meta.update({k: v for k, v in dict(none=none, present=present).items() if v is not MISSING})
    meta.update({k: True for k, v in dict(rest=rest, internal=internal).items() if v})
    if not typed:
        meta["typed"] = False
    if factory is not MISSING:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    """The resolved annotations of a dataclass (cached: designs are read back on every request)."""
    return typing.get_type_hints(cls)


@functools.cache
def _fields(cls: type) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls)}


def key_of(name: str) -> str:
    """The key a person writes for a field: `lambda_` is written `lambda`."""
    return name[:-1] if name.endswith("_") and keyword.iskeyword(name[:-1]) else name


def keys(cls: type) -> list[str]:
    """The keys a table for `cls` may have (current spellings)."""
    return [key_of(f.name) for f in dataclasses.fields(cls) if not f.metadata.get("internal")]


def canonical(cls: type, raw: Any, where: str = "") -> dict[str, Any]:
    """The table's keys as field names: aliases and keyword spellings resolved, retired and unknown keys
    refused (a `rest` field collects the unknown ones instead). Values are not checked."""
    if not isinstance(raw, dict):
        raise ValidationError(where, f"expected a table, got {raw!r}")
    fields = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
    spellings = {key_of(n): n for n in fields} | {n: n for n in fields}
    spellings |= {old: new for old, new in getattr(cls, "ALIASES", {}).items()}
    retired = getattr(cls, "RETIRED", {})
    rest = next((n for n, f in fields.items() if f.metadata.get("rest")), None)
    out: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key in sorted(k for k in raw if k in retired):
        raise ValidationError(join(where, key), retired[key])
    for key, value in raw.items():
        name = spellings.get(key)
        if name is None and rest is not None:
            extra[key] = value
            continue
        if name is None:
            raise ValidationError(join(where, key), "unknown field " + _suggest(key, keys(cls)))
        if name in out:
            raise ValidationError(join(where, key_of(name)), f"given twice (as {key_of(name)!r} and an older "
                                                             "spelling)")
        out[name] = value
    if extra:
        out[rest] = {**out.get(rest, {}), **extra}
    return out


def _suggest(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"({hint}allowed: {', '.join(known) or 'none'})"


def build(cls: type, raw: Any, where: str = "", error: type[Exception] = ValidationError) -> Any:
    """An instance of the dataclass `cls` from a table, every value checked; errors are `error`s whose
    message starts with the value's path under `where`."""
    try:
        return _build(cls, raw, where)
    except ValidationError as exc:
        if error is ValidationError:
            raise
        raise error(str(exc)) from None


def _build(cls: type, raw: Any, where: str) -> Any:
    values = canonical(cls, raw, where)
    hints = _hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        path = join(where, key_of(f.name))
        if f.name in values:
            kwargs[f.name] = convert(values[f.name], hints[f.name], f.metadata, path)
        elif "present" in f.metadata:
            kwargs[f.name] = f.metadata["present"]
        elif f.default is MISSING and f.default_factory is MISSING and f.init:
            what = "table" if dataclasses.is_dataclass(hints[f.name]) else "field"
            raise ValidationError(path, f"required {what} is missing")
    try:
        return cls(**kwargs)
    except ValidationError as exc:  # a check between fields (__post_init__)
        raise ValidationError(join(where, exc.path), exc.problem) from None
    except ValueError as exc:
        raise ValidationError(where, str(exc)) from None


def check_field(cls: type, name: str, value: Any, where: str = "") -> Any:
    """One field's value, checked and converted as `build` would (path: `where` + the field's key)."""
    f = _fields(cls).get(name)
    if f is None:
        raise ValidationError(join(where, name), "unknown field " + _suggest(name, keys(cls)))
    return convert(value, _hints(cls)[name], f.metadata, join(where, key_of(name)))


def check_instance(obj: Any, names: typing.Iterable[str] | None = None) -> None:
    """Check and convert the fields of an instance made in code (call it from `__post_init__`)."""
    cls = type(obj)
    for f in dataclasses.fields(cls):
        if (names is None and not f.metadata.get("internal")) or (names is not None and f.name in names):
            setattr(obj, f.name, check_field(cls, f.name, getattr(obj, f.name)))


def convert(value: Any, hint: Any, meta: typing.Mapping[str, Any], path: str) -> Any:
    """`value` checked against its type and rules; the value in its one representation."""
    if value is None and "none" in meta:
        return meta["none"]
    raw = value
    if meta.get("typed", True):
        value = _typed(value, hint, path, meta.get("expects", ""))
    if value is None:
        return value
    problem = _rule_problem(value, meta)
    if problem:
        raise ValidationError(path, f"{meta.get('message') or problem}, got {raw!r}")
    if "check" in meta:
        try:
            value = meta["check"](value)
        except ValidationError as exc:
            raise ValidationError(join(path, exc.path), exc.problem) from None
        except ValueError as exc:
            raise ValidationError(path, str(exc)) from None
    return value


def rule_text(meta: typing.Mapping[str, Any]) -> str:
    """A field's range or choices in words, for the generated reference page ("" when it has none)."""
    if meta.get("message"):
        return meta["message"]
    choices = meta.get("choices")
    if choices is not None:
        return "must be one of " + ", ".join(map(str, choices() if callable(choices) else choices))
    lo, hi = meta.get("ge", meta.get("gt")), meta.get("le", meta.get("lt"))
    return _bounds(meta, lo, hi) if lo is not None or hi is not None else ""


def _rule_problem(value: Any, meta: typing.Mapping[str, Any]) -> str:
    choices = meta.get("choices")
    if choices is not None:
        allowed = tuple(choices() if callable(choices) else choices)
        return "" if value in allowed else f"must be one of {', '.join(map(str, allowed))}"
    lo, hi = meta.get("ge", meta.get("gt")), meta.get("le", meta.get("lt"))
    if lo is None and hi is None:
        return ""
    ok = ((lo is None or (value >= lo if "ge" in meta else value > lo))
          and (hi is None or (value <= hi if "le" in meta else value < hi)))
    return "" if ok else _bounds(meta, lo, hi)


def _bounds(meta: typing.Mapping[str, Any], lo: float | None, hi: float | None) -> str:
    lo_text, hi_text = _number(lo), _number(hi)
    if hi is None:
        if "gt" in meta and lo == 0:
            return "must be positive"
        return f"must be {'>=' if 'ge' in meta else '>'} {lo_text}"
    if lo is None:
        return f"must be {'<=' if 'le' in meta else '<'} {hi_text}"
    return f"must lie in {'[' if 'ge' in meta else '('}{lo_text}, {hi_text}{']' if 'le' in meta else ')'}"


def _number(x: float | None) -> str:
    if x is None:
        return ""
    return str(int(x)) if isinstance(x, int) or (isinstance(x, float) and x.is_integer()) else f"{x:g}"


_NAMES = {int: "int", float: "a number", str: "str", bool: "bool"}


def describe(hint: Any) -> str:
    """The type as an error message names it."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint in _NAMES:
        return _NAMES[hint]
    if origin is Literal:
        return "one of " + ", ".join(map(str, args))
    if origin in (types.UnionType, typing.Union):
        return " or ".join(describe(a) for a in args if a is not type(None))
    if origin is list or hint is list:
        return "list"
    if origin is tuple:
        return "list" if len(args) == 2 and args[1] is Ellipsis else f"a list of {len(args)} values"
    return "a table" if origin is dict or hint is dict or dataclasses.is_dataclass(hint) else str(hint)


def _typed(value: Any, hint: Any, path: str, expects: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)

    def wrong() -> ValidationError:
        return ValidationError(path, f"expected {expects or describe(hint)}, got {value!r}")

    if hint is Any:
        return value
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, path)
    if origin is Literal:
        if value not in args:
            raise ValidationError(path, f"must be one of {', '.join(map(str, args))}, got {value!r}")
        return value
    if origin in (types.UnionType, typing.Union):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:
            return _typed(value, options[0], path, expects)
        for option in options:
            try:
                return _typed(value, option, path, expects)
            except ValidationError:
                continue
        raise wrong()
    if origin in (list, tuple) or hint in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise wrong()
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):  # tuple[X, Y]: fixed length
            if len(value) != len(args):
                raise wrong()
            return tuple(_typed(v, a, f"{path}[{i}]", "") for i, (v, a) in enumerate(zip(value, args, strict=True)))
        item = args[0] if args else Any
        items = [_typed(v, item, f"{path}[{i}]", "") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple or hint is tuple else items
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise wrong()
        item = args[1] if args else Any
        return {k: _typed(v, item, join(path, str(k)), "") for k, v in value.items()}
    if hint is bool:
        if not isinstance(value, bool):
            raise wrong()
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong()
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise wrong()
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise wrong()
        return value
    raise TypeError(f"unsupported type {hint!r} at {path}")


def nonempty(value: str) -> str:
    """A check: a string with more than white space."""
    if not value.strip():
        raise ValueError("must not be empty")
    return value


def each(check: Callable[[Any], Any]) -> Callable[[list], list]:
    """A check applied to every item of a list; an error names the item's index."""
    def run(values: list) -> list:
        out = []
        for i, v in enumerate(values):
            try:
                out.append(check(v))
            except ValidationError as exc:
                raise ValidationError(join(f"[{i}]", exc.path), exc.problem) from None
            except ValueError as exc:
                raise ValidationError(f"[{i}]", str(exc)) from None
        return out
    return run


def distinct(value: list) -> list:
    """A check: no value listed twice."""
    if len(set(value)) != len(value):
        raise ValueError(f"lists a value twice: {value!r}")
    return value
