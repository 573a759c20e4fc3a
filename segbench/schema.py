"""The suite file's schema, declared once: every key's type, allowed values, default and a
one-line doc.

Everything else derives from this declaration:

- :func:`resolve` checks every table of a suite (``[train]``, ``[eval]``, ``seeds``,
  ``[stats]``, ``[gate]``, ``[report]``) against it and fills in its defaults: each key's
  type, bounds, choices and default come from here and nowhere else;
  :mod:`segbench.suite`, :mod:`segbench.design` and :mod:`segbench.gate.rules` add only what
  no single key can say (components, a rule's syntax, ``min <= max``); ``--set`` knows from it
  which keys exist and which are tables;
- :func:`json_schema` is the JSON Schema (draft-07) that ``segbench schema`` prints, so
  that an editor (Even Better TOML / taplo) can check and complete a suite;
- :func:`reference_markdown` is ``docs/suite-reference.md``
  (``python -m segbench.schema --markdown > docs/suite-reference.md``; a test fails when the
  committed file is stale).

Component parameters (those of a dataset, an architecture, an upsampler, a loss or a metric)
are declared by the plugins' factories, not here: the tables that take them say so.

This module is pure Python: the CLI imports it without torch.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import json
import math
import sys
from dataclasses import dataclass, field
from typing import Any

from .components import unknown_name_message
from .params import describe_value

NO_DEFAULT = object()  # the key has no default value (it is required, or its absence means something)

# ----------------------------------------------------------------------------- value types


def _is_integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class ValueType:
    """What a key accepts. ``expected`` says it in an error message ("expected <this>, got
    ..."), ``describe`` in the reference, ``json`` as a JSON Schema."""

    choices: tuple | None = None  # the accepted values, when there are finitely many
    shape: type | None = None  # list or dict for a type with items or keys of its own, which resolve names one by one

    def accepts(self, value) -> bool:
        return True

    def resolve(self, value, where: str, name: str) -> tuple:
        """``(normalised value, problems)``: problems as ``(where, message)`` pairs, each at the
        item or key it is about (``seeds[1]``, ``stats.margin.miou``)."""
        problem = self.problem(value, name)
        return self.normalise(value), ([(where, problem)] if problem else [])

    def holds(self, kind) -> bool:
        """Whether this type is, or offers as one option, a ``kind``."""
        return isinstance(self, kind)

    def problem(self, value, name: str) -> str | None:
        return None if self.accepts(value) else f"expected {self.expected()}, got {describe_value(value)}"

    def normalise(self, value):
        return value

    def expected(self) -> str:
        return self.describe()

    def describe(self) -> str:
        raise NotImplementedError

    def json(self) -> dict:
        raise NotImplementedError


@dataclass(frozen=True)
class Integer(ValueType):
    minimum: int | None = None
    maximum: int | None = None
    unit: str = ""  # "epochs": "expected at most 10000 epochs"

    def accepts(self, value) -> bool:
        return _is_integer(value) and (self.minimum is None or value >= self.minimum) and (self.maximum is None or value <= self.maximum)

    def problem(self, value, name):
        if _is_integer(value) and self.maximum is not None and value > self.maximum and self.unit:
            return f"expected at most {self.maximum} {self.unit}, got {value}"
        return super().problem(value, name)

    def expected(self):
        if self.maximum is not None and not self.unit:
            return f"an integer from {self.minimum} to {self.maximum}"
        return f"an integer >= {self.minimum}" if self.minimum is not None else "an integer"

    def describe(self):
        if self.maximum is not None:
            return f"integer, {self.minimum} to {self.maximum:,}"
        return f"integer >= {self.minimum}" if self.minimum is not None else "integer"

    def json(self):
        schema = {"type": "integer"}
        if self.minimum is not None:
            schema["minimum"] = self.minimum
        if self.maximum is not None:
            schema["maximum"] = self.maximum
        return schema


@dataclass(frozen=True)
class Number(ValueType):
    """A finite number (an integer is taken as a float); bounds inclusive unless ``above``/``below``."""

    minimum: float | None = None
    maximum: float | None = None
    above: float | None = None
    below: float | None = None
    note: str = ""  # "0 = off"

    def accepts(self, value) -> bool:
        return _is_number(value) and all(check for check in (
            self.minimum is None or value >= self.minimum, self.maximum is None or value <= self.maximum,
            self.above is None or value > self.above, self.below is None or value < self.below))

    def normalise(self, value):
        return float(value) if self.accepts(value) else value

    def _bounds(self) -> list:
        return [f"{sign} {bound:,}" if _is_integer(bound) else f"{sign} {bound:g}" for sign, bound in ((">=", self.minimum), (">", self.above), ("<=", self.maximum), ("<", self.below))
                if bound is not None]

    def expected(self):
        text = "a number " + " and ".join(self._bounds()) if self._bounds() else "a number"
        return f"{text} ({self.note})" if self.note else text

    def describe(self):
        return " ".join(["number", *(", ".join(self._bounds()),)]).strip()

    def json(self):
        schema = {"type": "number"}
        for keyword, bound in (("minimum", self.minimum), ("maximum", self.maximum), ("exclusiveMinimum", self.above),
                               ("exclusiveMaximum", self.below)):
            if bound is not None:
                schema[keyword] = bound
        return schema


@dataclass(frozen=True)
class Boolean(ValueType):
    choices = (False, True)

    def accepts(self, value) -> bool:
        return isinstance(value, bool)

    def expected(self):
        return "true or false"

    def describe(self):
        return "true or false"

    def json(self):
        return {"type": "boolean"}


@dataclass(frozen=True)
class Text(ValueType):
    min_length: int = 0
    max_length: int | None = None

    def accepts(self, value) -> bool:
        return isinstance(value, str) and len(value) >= self.min_length and (self.max_length is None or len(value) <= self.max_length)

    def expected(self):
        return "a non-empty string" if self.min_length else "a string"

    def describe(self):
        return "string"

    def json(self):
        schema = {"type": "string"}
        if self.min_length:
            schema["minLength"] = self.min_length
        if self.max_length is not None:
            schema["maxLength"] = self.max_length
        return schema


@dataclass(frozen=True)
class FolderName(Text):
    """One ordinary path component: no slashes or control characters, not '.' or '..'."""

    def accepts(self, value) -> bool:
        return super().accepts(value) and value.strip() != "" and value not in (".", "..") and not any(
            c in "/\\" or ord(c) < 32 or ord(c) == 127 for c in value)

    def describe(self):
        return f"folder name, 1 to {self.max_length} characters"

    def json(self):
        allowed = r"[^/\\\x00-\x1f\x7f]"  # no slash, backslash or control character
        return {**super().json(), "pattern": rf"^{allowed}*[^/\\\x00-\x20\x7f]{allowed}*$", "not": {"enum": [".", ".."]}}


@dataclass(frozen=True)
class Choice(ValueType):
    """One of a few names; a wrong one gets "did you mean"."""

    values: tuple = ()

    @property
    def choices(self):
        return self.values

    def accepts(self, value) -> bool:
        return isinstance(value, str) and value in self.values

    def problem(self, value, name):
        return None if self.accepts(value) else unknown_name_message(name, value, list(self.values))

    def expected(self):
        return "one of " + ", ".join(map(repr, self.values))

    def describe(self):
        return " or ".join(f'`"{v}"`' for v in self.values)

    def json(self):
        return {"type": "string", "enum": list(self.values)}


@dataclass(frozen=True)
class AnyOf(ValueType):
    options: tuple = ()

    @property
    def choices(self):
        if all(option.choices is not None for option in self.options):
            return tuple(value for option in self.options for value in option.choices)
        return None

    def accepts(self, value) -> bool:
        return any(option.accepts(value) for option in self.options)

    def resolve(self, value, where, name):
        """As the option that accepts it; else, a list or a table as the one option of that
        shape (so that its problems name the item or key); else one problem for the value."""
        shaped = [option for option in self.options if option.shape and isinstance(value, option.shape)]
        chosen = next((option for option in self.options if option.accepts(value)), shaped[0] if len(shaped) == 1 else None)
        if chosen is None:
            return value, [(where, f"expected {self.expected()}, got {describe_value(value)}")]
        return chosen.resolve(value, where, name)

    def holds(self, kind) -> bool:
        return isinstance(self, kind) or any(option.holds(kind) for option in self.options)

    def expected(self):
        return " or ".join(option.expected() for option in self.options)

    def describe(self):
        return " or ".join(option.describe() for option in self.options)

    def json(self):
        return {"anyOf": [option.json() for option in self.options]}


@dataclass(frozen=True)
class Device(ValueType):
    """A torch device a run may ask for."""

    names: tuple = ("auto", "cpu", "cuda")

    def accepts(self, value) -> bool:
        return isinstance(value, str) and (value in self.names or (value.startswith("cuda:") and value[5:].isdigit()))

    def expected(self):
        return ", ".join(f'"{n}"' for n in self.names) + ' or "cuda:N"'

    def describe(self):
        return ", ".join(f'`"{n}"`' for n in self.names) + ' or `"cuda:N"`'

    def json(self):
        return {"anyOf": [{"type": "string", "enum": list(self.names)}, {"type": "string", "pattern": "^cuda:[0-9]+$"}]}


@dataclass(frozen=True)
class Range(ValueType):
    """``[LOW, HIGH]`` with bounds on both (``above`` exclusive, ``maximum`` inclusive)."""

    above: float = 0.0
    maximum: float = 1.0

    def accepts(self, value) -> bool:
        return isinstance(value, list) and len(value) == 2 and all(_is_number(v) for v in value) and self.above < value[0] <= value[1] <= self.maximum

    def normalise(self, value):
        return [float(v) for v in value] if self.accepts(value) else value

    def expected(self):
        return f"[LOW, HIGH] with {self.above:g} < LOW <= HIGH <= {self.maximum:g}"

    def describe(self):
        return f"[LOW, HIGH], {self.above:g} < LOW <= HIGH <= {self.maximum:g}"

    def json(self):
        item = {"type": "number", "exclusiveMinimum": self.above, "maximum": self.maximum}
        return {"type": "array", "items": item, "minItems": 2, "maxItems": 2}


@dataclass(frozen=True)
class IntRange(ValueType):
    """``[LOW, HIGH]``: integers with ``minimum <= LOW < HIGH <= maximum`` (HIGH excluded when drawn)."""

    minimum: int = 1
    maximum: int = 8192

    def accepts(self, value) -> bool:
        return (isinstance(value, list) and len(value) == 2 and all(_is_integer(v) for v in value)
                and self.minimum <= value[0] < value[1] <= self.maximum)

    def expected(self):
        return f"[LOW, HIGH] of integers with {self.minimum} <= LOW < HIGH <= {self.maximum}"

    def describe(self):
        return self.expected()

    def json(self):
        item = {"type": "integer", "minimum": self.minimum, "maximum": self.maximum}
        return {"type": "array", "items": item, "minItems": 2, "maxItems": 2}


@dataclass(frozen=True)
class Size(ValueType):
    """An image size: ``[A, B]`` of integers in 1..maximum, or (``square``) one integer."""

    maximum: int = 8192
    square: bool = True
    shape: str = "[H, W]"

    def accepts(self, value) -> bool:
        pair = [value, value] if self.square and _is_integer(value) else value
        return isinstance(pair, list) and len(pair) == 2 and all(_is_integer(v) and 1 <= v <= self.maximum for v in pair)

    def expected(self):
        return f"{'an integer or ' if self.square else ''}{self.shape} of integers in 1..{self.maximum}"

    def describe(self):
        return self.expected()

    def json(self):
        item = {"type": "integer", "minimum": 1, "maximum": self.maximum}
        pair = {"type": "array", "items": item, "minItems": 2, "maxItems": 2}
        return {"anyOf": [item, pair]} if self.square else pair


@dataclass(frozen=True)
class ListOf(ValueType):
    item: ValueType = None
    min_items: int = 0
    unique: bool = False
    what: str = ""  # "module names or .py paths"
    shape = list

    def accepts(self, value) -> bool:
        return (isinstance(value, list) and len(value) >= self.min_items and all(self.item.accepts(v) for v in value)
                and not (self.unique and _repeats(value)))

    def resolve(self, value, where, name):
        if not isinstance(value, list) or len(value) < self.min_items:
            return value, [(where, f"expected {self.expected()}, got {describe_value(value)}")]
        items, problems = [], []
        for index, item in enumerate(value):
            resolved, found = self.item.resolve(item, f"{where}[{index}]", name)
            items.append(resolved)
            problems += found
        if self.unique and _repeats(value):
            problems.append((where, f"expected {self.expected()}, got repeats: {value}"))
        return items, problems

    def expected(self):
        return f"a {'non-empty ' if self.min_items else ''}list of {self.what or self.item.describe()}"

    def describe(self):
        return f"list of {self.what or self.item.describe()}" + (f" (at least {self.min_items})" if self.min_items else "")

    def json(self):
        schema = {"type": "array", "items": self.item.json()}
        if self.min_items:
            schema["minItems"] = self.min_items
        if self.unique:
            schema["uniqueItems"] = True
        return schema


@dataclass(frozen=True)
class Component(ValueType):
    """A component by name, or inline with parameters: ``{ name = "transposed", kernel_size = 4 }``.
    Which names exist and which parameters they take is the plugins' business."""

    kind: str = ""

    def accepts(self, value) -> bool:
        return (isinstance(value, str) and bool(value)) or (isinstance(value, dict) and isinstance(value.get("name"), str))

    def expected(self):
        return f"a {self.kind} name or {{ name = ..., <param> = ... }}"

    @property
    def listing(self) -> str:
        return f"segbench list {self.kind}{'es' if self.kind.endswith('s') else 's'}"

    def describe(self):
        return f"{self.kind} name, or `{{ name = ..., <param> = ... }}` (`{self.listing}`)"

    def json(self):
        name = {"type": "string", "minLength": 1, "description": f"a {self.kind}: `{self.listing}` lists them"}
        inline = {"type": "object", "required": ["name"], "properties": {"name": name}, "additionalProperties": True}
        return {"anyOf": [name, inline]}


@dataclass(frozen=True)
class Mapping(ValueType):
    """A table of names the suite chooses (metric names) to values of one type."""

    value: ValueType = None
    what: str = ""
    shape = dict

    def accepts(self, value) -> bool:
        return isinstance(value, dict) and all(self.value.accepts(v) for v in value.values())

    def problem(self, value, name):
        """Names each entry that is not valid, not only the table."""
        if not isinstance(value, dict):
            return f"expected a table of {self.what} to {self.value.expected()}, got {describe_value(value)}"
        bad = [f"{key!r} = {describe_value(item)}" for key, item in value.items() if not self.value.accepts(item)]
        return f"expected {self.value.expected()} for each key, got {', '.join(bad)}" if bad else None

    def normalise(self, value):
        return {key: self.value.normalise(item) for key, item in value.items()} if self.accepts(value) else value

    def resolve(self, value, where, name):
        if not isinstance(value, dict):
            return value, [(where, self.problem(value, name))]
        resolved, problems = {}, []
        for key, item in value.items():
            resolved[key], found = self.value.resolve(item, f"{where}.{key}", key)
            problems += found
        return resolved, problems

    def expected(self):
        return f"a table of {self.what} to {self.value.expected()}"

    def describe(self):
        return f"table of {self.what} to {self.value.describe()}"

    def json(self):
        return {"type": "object", "additionalProperties": self.value.json()}


SETTING_SECTIONS = ("dataset", "model", "train", "eval")  # the tables a variant's configuration is made of


@dataclass(frozen=True)
class Settings(ValueType):
    """A table of dotted setting names (``"model.upsampler"``) to values; ``lists``: to lists
    of values to compare. ``extra``: other keys it takes (``label``)."""

    lists: bool = False
    extra: tuple = ()

    def describe(self):
        return "table of dotted setting names (`\"model.upsampler\"`) to " + ("lists of values" if self.lists else "values")

    def json(self):
        names = "|".join(SETTING_SECTIONS + self.extra)
        value = {"anyOf": [{"type": "array", "minItems": 1}, {"type": "object"}]} if self.lists else {}
        return {"type": "object", "propertyNames": {"pattern": f"^({names})(\\.|$)"}, "additionalProperties": value}


# ----------------------------------------------------------------------------- keys and tables


@dataclass(frozen=True)
class Key:
    """One key of a suite file."""

    name: str
    type: ValueType
    doc: str  # one line, for the reference and for editors
    default: Any = NO_DEFAULT
    details: str = ""  # more, in Markdown, for the reference
    default_doc: str = ""  # the default in words, when it is not a value ("the file's name")
    expected: str = ""  # what an error message says is valid, when the type's own words would say less
    example: str = ""  # a --set example for messages (top-level keys)
    in_id: bool = True  # False: how a run is supervised, not what it computes; left out of the variant id
    id_neutral: bool = False  # added after suites were run: at its default it is left out of the variant id

    def problem(self, value) -> str | None:
        """The error message for ``value``, or None if the key accepts it."""
        if self.expected:
            return None if self.type.accepts(value) else f"expected {self.expected}, got {describe_value(value)}"
        return self.type.problem(value, self.name)

    @property
    def choices(self):
        return self.type.choices

    def json(self) -> dict:
        schema = {**self.type.json(), "description": self.doc}
        if self.default is not NO_DEFAULT and self.default is not None:
            schema["default"] = self.default
        return schema


@dataclass(frozen=True)
class Table(ValueType):
    """A TOML table of declared keys. ``params``: the other keys it takes are the parameters
    of this component slot (the plugins declare them); ``required``: keys that must be given."""

    keys: tuple = ()
    params: str = ""
    required: tuple = ()
    example: str = ""
    shape = dict

    def __getitem__(self, name) -> Key:
        return next(key for key in self.keys if key.name == name)

    @property
    def names(self) -> tuple:
        return tuple(key.name for key in self.keys)

    def defaults(self) -> dict:
        return {key.name: copy.deepcopy(key.default) for key in self.keys if key.default is not NO_DEFAULT}

    def accepts(self, value) -> bool:
        return isinstance(value, dict)

    def resolve(self, value, where, name):
        return resolve(self, value, where)

    def expected(self):
        return self.example or "a table"

    def describe(self):
        return "table"

    def json(self):
        schema = {"type": "object", "properties": {key.name: key.json() for key in self.keys}, "additionalProperties": bool(self.params)}
        if self.required:
            schema["required"] = list(self.required)
        return schema


@dataclass(frozen=True)
class Tagged(ValueType):
    """A table whose ``tag`` key picks which other keys it takes (``optimizer.name``,
    ``inference.mode``); ``shorthand``: the tag alone may stand for the table."""

    tag: str = "name"
    cases: dict = field(default_factory=dict)  # tag value -> Table of the keys it takes, the tag included
    default_tag: str | None = None  # the tag when the table leaves it out (None: it must be given)
    shorthand: bool = False
    example: str = ""
    tag_doc: str = ""

    def merged(self) -> Table:
        """Every key of every case, once, for the reference; a key that only some cases take says which."""
        tag_key = Key(self.tag, Choice(self.tags), self.tag_doc, self.default_tag if self.default_tag else NO_DEFAULT)
        keys = {}
        for table in self.cases.values():
            for key in table.keys:
                keys.setdefault(key.name, key)
        merged = [tag_key]
        for name, key in keys.items():
            users = [tag for tag, table in self.cases.items() if name in table.names]
            if name != self.tag:
                only = f" (only {self.tag} = {' or '.join(users)})" if len(users) < len(self.cases) else ""
                merged.append(dataclasses.replace(key, doc=key.doc + only))
        return Table(tuple(merged))

    @property
    def tags(self) -> tuple:
        return tuple(self.cases)

    def keys_of(self, tag) -> tuple:
        return self.cases[tag].names

    def defaults(self, tag=None) -> dict:
        """The resolved table for ``tag`` before any key is given."""
        tag = tag or self.default_tag
        return {self.tag: tag, **{k: v for k, v in self.cases[tag].defaults().items() if k != self.tag}}

    def accepts(self, value) -> bool:
        return isinstance(value, dict) or (self.shorthand and isinstance(value, str))

    def expected(self):
        return self.example

    def describe(self):
        return f"table, by `{self.tag}`" + (f" (or the {self.tag} alone)" if self.shorthand else "")

    def json(self):
        options = []
        for tag, table in self.cases.items():
            case = table.json()
            case["properties"] = {**case["properties"], self.tag: {**case["properties"][self.tag], "enum": [tag]}}
            if tag != self.default_tag:
                case["required"] = sorted({self.tag, *case.get("required", ())})
            options.append(case)
        if self.shorthand:
            options.insert(0, {"type": "string", "enum": list(self.tags)})
        return {"anyOf": options}


# ----------------------------------------------------------------------------- resolution


def resolve(table: Table, given, where: str, special=None) -> tuple[dict, list]:
    """``given`` (a table of a suite file, None when absent) checked against ``table``'s
    declared keys: each key's value, or its default, normalised, in declaration order, and the
    problems as ``(where, message)`` pairs. ``special``: keys resolved by a function of the
    caller's (what the plugins declare: a component name), given the value, instead."""
    given = {} if given is None else given
    if not isinstance(given, dict):
        wanted = f"a table {table.example} with keys {', '.join(table.names)}" if table.example.startswith("[") else table.expected()
        return table.defaults(), [(where, f"expected {wanted}, got {describe_value(given)}")]
    problems = [(f"{where}.{name}", unknown_key_message(name, table.names, f"{where}.")) for name in given if name not in table.names]
    problems += [(f"{where}.{name}", f"required: {table[name].expected or table[name].type.expected()}, e.g. {where} = {table.example}")
                 for name in table.required if name not in given]
    resolved = {}
    for key in table.keys:
        if key.name not in given and key.default is NO_DEFAULT:
            continue  # required (said above), or its absence means something
        value = given[key.name] if key.name in given else copy.deepcopy(key.default)
        if special and key.name in special:
            resolved[key.name] = special[key.name](value)
            continue
        resolved[key.name], found = resolve_value(key, value, f"{where}.{key.name}")
        problems += found
    return resolved, problems


def resolve_value(key: Key, value, where: str) -> tuple:
    """One key's value: ``(normalised value, problems)``. None is "left out" for a key whose
    default is None. The key's own ``expected`` words the problem with the whole value."""
    if value is None and key.default is None:
        return None, []
    resolved, problems = key.type.resolve(value, where, key.name)
    if key.expected:
        problems = [(at, f"expected {key.expected}, got {describe_value(value)}" if at == where else message) for at, message in problems]
    return resolved, problems


def unknown_key_message(key, valid, prefix="") -> str:
    message = f"unknown key {prefix}{key}"
    close = difflib.get_close_matches(str(key), list(valid), n=1)
    if close:
        message += f"; did you mean {prefix}{close[0]}?"
    return message + f" Valid: {', '.join(valid)}"


def _repeats(values: list) -> bool:
    return len({repr(value) for value in values}) != len(values)


# ----------------------------------------------------------------------------- the declaration

MAX_NAME_LENGTH = 100
MAX_EPOCHS = 10_000
MAX_ITERATIONS = 10_000_000
MAX_ZOOM = 4.0
MAX_RESIZE = 8192
MAX_RATIO = 8.0
MAX_CROP = 4096
MAX_DATA_WORKERS = 256
MAX_TORCH_THREADS = 1024
MAX_INFERENCE_SIZE = 8192
# 30 days: far below what the run's alarm (setitimer) and the process executor's waits
# (threading.TIMEOUT_MAX, about 292 years) can take, so a limit that passes validation is enforced.
MAX_TIMEOUT_S = 30 * 24 * 3600
DEFAULT_SEEDS = (0, 1, 2)
SEED_LIMIT = 2**32  # numpy and torch seed generators take seeds below 2**32
MAX_SEEDS = 64  # a ceiling on adaptive seeds' max: beyond it a suite is almost surely a typo
ALPHA = 0.05
POWER = 0.8
DEFAULT_MARGIN = 0.01  # one point of a [0, 1] metric such as mIoU
CORRECTIONS = ("holm", "none")
SPENDINGS = ("obrien_fleming", "pocock")
GATE_DIRECTIONS = ("max_drop", "max_increase")  # METRIC:max_drop=X, METRIC:max_increase=X
GATE_NOISE_MODES = ("check", "ignore")  # ,noise=ignore

_LR = Key("lr", Number(minimum=0), "learning rate", 1e-3, expected="a finite number >= 0")
_WEIGHT_DECAY = Key("weight_decay", Number(minimum=0), "decoupled (adamw) or L2 (adam, sgd) weight decay", 1e-4,
                    expected="a finite number >= 0")
_MOMENTUM = Key("momentum", Number(minimum=0), "SGD momentum", 0.9, expected="a finite number >= 0")


_OPTIMIZER_NAME = Key("name", Choice(("adamw", "adam", "sgd")), "the optimiser", "adamw")
OPTIMIZER = Tagged("name", {
    "adamw": Table((_OPTIMIZER_NAME, _LR, _WEIGHT_DECAY)),
    "adam": Table((_OPTIMIZER_NAME, _LR, _WEIGHT_DECAY)),
    "sgd": Table((_OPTIMIZER_NAME, _LR, _WEIGHT_DECAY, _MOMENTUM)),
}, default_tag="adamw", shorthand=True, example='{ name = "adamw", lr = 1e-3 }', tag_doc="the optimiser")

AUGMENT = Table((
    Key("hflip", Number(minimum=0, maximum=1), "probability of a horizontal flip", 0.0, expected="a probability between 0 and 1"),
    Key("scale", Range(0.0, MAX_ZOOM), "random zoom of each stored image, drawn per image, on the batch's device (`[1.0, 1.0]`: none)",
        [1.0, 1.0]),
    Key("resize", Size(MAX_RESIZE, square=False, shape="[LONG, SHORT]"),
        "rescale each image, keeping its aspect ratio, to fit [LONG, SHORT] times a ratio drawn from `ratio` (mmsegmentation's "
        "RandomResize)", None, default_doc="none", id_neutral=True),
    Key("ratio", Range(0.0, MAX_RATIO), "the range `resize` draws its ratio from, per image", [1.0, 1.0], id_neutral=True),
    Key("short_side", IntRange(1, MAX_RESIZE), "rescale each image so that its short side is an integer drawn from [LOW, HIGH) "
        "(torchvision's RandomResize)", None, default_doc="none", id_neutral=True),
    Key("crop", Size(MAX_CROP), "a random crop of this size from each (rescaled) image: an integer or [H, W]; a smaller image is "
        "padded (mean colour, ignore_index)", None, default_doc="none", id_neutral=True),
    Key("cat_max_ratio", Number(above=0, maximum=1), "draw a crop again (up to 10 times) while one class covers this share or more "
        "of its labelled pixels (mmsegmentation)", None, default_doc="off", id_neutral=True,
        expected="a number > 0 and <= 1 (leave it out for no limit)"),
    Key("photometric", Boolean(), "mmsegmentation's PhotoMetricDistortion: brightness, contrast, saturation and hue jitter", False,
        id_neutral=True),
), example="{ hflip = 0.5, resize = [2048, 512], ratio = [0.5, 2.0], crop = 512 }")

# The [train] augment keys that make the per-sample pipeline (segbench/data/transforms.py).
PER_SAMPLE_KEYS = ("resize", "short_side", "crop", "photometric")


def augment_problems(augment: dict) -> list:
    """``(key, message)`` for each setting of a resolved ``[train] augment`` that cannot work
    with the others."""
    problems = []
    per_sample = [key for key in (*PER_SAMPLE_KEYS, "cat_max_ratio") if augment.get(key)]
    if augment.get("resize") and augment.get("short_side"):
        problems.append(("short_side", "resize and short_side both rescale each image; use one of them"))
    if tuple(augment.get("ratio") or (1.0, 1.0)) != (1.0, 1.0) and not augment.get("resize"):
        problems.append(("ratio", "ratio scales resize = [LONG, SHORT]; set resize too, or leave ratio out"))
    if augment.get("cat_max_ratio") and not augment.get("crop"):
        problems.append(("cat_max_ratio", "cat_max_ratio chooses among random crops; set crop too"))
    if (augment.get("resize") or augment.get("short_side")) and not augment.get("crop"):
        problems.append(("crop", "rescaled images differ in size and cannot be batched; set crop too (e.g. crop = 512)"))
    if tuple(augment.get("scale") or (1.0, 1.0)) != (1.0, 1.0) and per_sample:
        problems.append(("scale", f"scale zooms stored images batch by batch and does not combine with the per-sample "
                                  f"{', '.join(per_sample)}; rescale with resize or short_side instead"))
    largest, crop = _largest_short_side(augment), augment.get("crop")
    crop = [crop, crop] if isinstance(crop, int) else crop
    if largest is not None and crop and min(crop) > largest:
        problems.append(("crop", f"{crop} is larger than any rescaled image (short side at most {math.floor(largest)}), so every "
                                 "crop would be partly padding; use a crop of at most that, or rescale to larger sizes"))
    return problems


def _largest_short_side(augment: dict) -> float | None:
    """The longest short side the rescaling can give an image, or None without rescaling."""
    if augment.get("resize"):
        return min(augment["resize"]) * max(augment.get("ratio") or (1.0, 1.0))
    if augment.get("short_side"):
        return augment["short_side"][1] - 1
    return None


_MODE = Key("mode", Choice(("stored", "whole", "slide")), "how validation images are predicted", "stored")
_SCALE = Key("scale", Size(MAX_INFERENCE_SIZE, square=False, shape="[LONG, SHORT] (the image is rescaled, keeping its aspect ratio, to fit)"),
             "rescale each image to fit [long side, short side] (mmcv's rescale_size)", None, default_doc="the native size")
_CROP = Key("crop", Size(MAX_INFERENCE_SIZE), "slide window size: an integer or [H, W]")
_STRIDE = Key("stride", Size(MAX_INFERENCE_SIZE), "slide window step: an integer or [H, W], at most crop")
INFERENCE = Tagged("mode", {
    "stored": Table((_MODE,)),
    "whole": Table((_MODE, _SCALE)),
    "slide": Table((_MODE, _SCALE, _CROP, _STRIDE), required=("crop", "stride")),
}, default_tag=None, example='{ mode = "slide", scale = [2048, 512], crop = 512, stride = 341 }',
   tag_doc="stored: the images as stored, in batches; whole: each image whole, rescaled to fit scale; slide: crop windows every "
           "stride pixels, overlapping logits averaged")

DATASET = Table((
    Key("name", Component("dataset"), "the dataset", "shapes"),
), params="the dataset's parameters (`segbench list datasets`), e.g. image_size, num_train", example="[dataset]")

MODEL = Table((
    Key("architecture", Component("architecture"), "the segmentation architecture", "unet"),
    Key("upsampler", Component("upsampler"), "the upsampler the architecture's decoder uses (injected into it)", "nearest"),
), params="the architecture's parameters (`segbench list architectures`), e.g. encoder", example="[model]")

TRAIN = Table((
    Key("epochs", Integer(1, MAX_EPOCHS, unit="epochs"), "passes over the training set (unused when iterations is set)", 6),
    Key("batch_size", Integer(1), "images per optimiser step; larger than the training set is refused", 16),
    Key("loss", Component("loss"), "the training loss", "ce"),
    Key("optimizer", OPTIMIZER, "the optimiser and its settings; the name alone takes the defaults", OPTIMIZER.defaults()),
    Key("device", Device(), "where runs train: auto = CUDA when present, else CPU; cuda without CUDA is refused", "auto"),
    Key("channels_last", Boolean(), "NHWC memory format for convolutions", True),
    Key("schedule", Choice(("constant", "cosine", "poly")),
        "learning-rate schedule, per step: constant, cosine to zero, or poly (power 0.9, as in DeepLab)", "cosine"),
    Key("augment", AUGMENT, "training augmentation (default: none)", AUGMENT.defaults()),
    Key("data_placement", Choice(("auto", "device", "host")),
        "where samples live: on the device (auto: when they fit under data_device_limit_mb) or on the host", "auto"),
    Key("data_device_limit_mb", Integer(1), "largest dataset (uint8 samples) that auto placement keeps on the device", 2048),
    Key("data_loading", Choice(("auto", "memory", "streaming")),
        "how samples reach training: decoded once into memory, or streamed from their files by loader workers", "auto",
        in_id=False,
        details="`memory`: every sample decoded once (by `data_workers` processes) into the sample cache and held in memory. "
                "`streaming`: map-style samples stay in their files and are read per batch by `data_workers` loader processes, so "
                "memory does not grow with the dataset (a dataset that builds its samples as tensors, such as `shapes`, is always "
                "in memory). `auto`: in memory when the decoded samples take at most a quarter of this machine's memory. Both feed "
                "the same samples in the same order with the same random draws, so the choice changes speed and memory, not the "
                "numbers; the record's `data_loading` says which path ran."),
    Key("data_workers", AnyOf((Integer(0, MAX_DATA_WORKERS), Choice(("auto",)))),
        'processes that decode and load samples: a count (0 = this process) or "auto" (one per core, at most 8)', "auto",
        in_id=False, expected=f'an integer from 0 to {MAX_DATA_WORKERS} or "auto"',
        details="Random draws are seeded per sample from the run's seed and the sample's place in the run, so a run computes the "
                "same numbers with any number of workers; the record says how many fed it."),
    Key("threads", AnyOf((Integer(1, MAX_TORCH_THREADS), Choice(("auto",)))),
        'torch threads each run computes with (torch.set_num_threads): a count, or "auto" for whatever the executor left', 1,
        id_neutral=True, expected=f'an integer from 1 to {MAX_TORCH_THREADS} or "auto"',
        details="CPU reductions split their work by thread, so the thread count changes a CPU run's last bits. The default, 1, "
                "is the same under every executor and on every node, so local, process, Ray and Slurm runs of one suite give "
                "bit-identical records on one machine, and a suite resumed elsewhere mixes no numbers computed differently. "
                "The price is speed on the CPU: a larger model trains on one core (small models and batches gain little from "
                "more, and shared cores can make more threads slower). On a GPU it matters little. Any fixed count is as "
                "reproducible (the split follows the count, not the cores; more threads than cores is only slower), "
                "though another CPU model may still differ in the last bits; `\"auto\"` keeps the executor's choice (torch's default, "
                "or the process executor's share of the cores) and is not. The record's `environment.torch_threads` says "
                "what ran. Left out of the variant id at its default."),
    Key("warmup_epochs", Number(minimum=0, note="0 = off"), "linear learning-rate warm-up over this many epochs (fractions allowed)", 0.0),
    Key("min_lr", Number(minimum=0), "the learning rate cosine and poly decay to (mmengine's eta_min), in every parameter group", 0.0,
        id_neutral=True, expected="a finite number >= 0, below the optimizer's lr",
        details="mmsegmentation's schedules decay to 1e-4: `lr = (base - min_lr) * decay + min_lr`, per iteration. Ignored by "
                "`constant`."),
    Key("grad_clip_norm", Number(minimum=0, note="0 = off"), "clip the global gradient norm (fp16 gradients are unscaled first)", 0.0),
    Key("amp", Choice(("auto", "off", "bf16", "fp16")),
        "mixed precision: auto = bf16 on a GPU that has it, else fp16; full precision on the CPU", "auto",
        details="`auto`: bf16 on a GPU that has it, else fp16 with a GradScaler, full precision on the CPU; `bf16` and `fp16` "
                "are forced (on the CPU too); `off`: full precision. Each record notes the precision used (`precision`)."),
    Key("cudnn_benchmark", Boolean(), "let cuDNN pick the fastest kernels", True),
    Key("compile", Boolean(), "torch.compile the model (latency is then timed on the compiled model)", False),
    Key("val_every", Integer(1), "validate every N epochs (and always after the last)", 1),
    Key("timeout_s", Number(above=0, maximum=MAX_TIMEOUT_S), "seconds one run may take; past it the run is recorded as failed (Timeout)",
        None, default_doc="no limit", in_id=False,
        expected=f"a number of seconds > 0 and at most {MAX_TIMEOUT_S:,} (30 days; leave it out for no limit)",
        details="The suite goes on after a run that timed out. Not part of the variant id: setting or changing it trains nothing "
                "again."),
    Key("deterministic", AnyOf((Boolean(), Choice(("warn",)))),
        'deterministic kernels: true fails a run on an op without one, "warn" runs it and records it', False,
        expected='true, false or "warn"', id_neutral=True,
        details="`true`: bit-identical runs on the GPU too: `torch.use_deterministic_algorithms(True)`, no cudnn benchmarking, "
                "`CUBLAS_WORKSPACE_CONFIG=:4096:8`; an op without a deterministic kernel fails the run, naming itself and this key. "
                "On CUDA that includes the default cross-entropy (`nll_loss2d`) and the backward of bilinear/bicubic interpolation "
                "and `grid_sample`, so `true` suits e.g. Dice with nearest upsampling. `\"warn\"`: the same settings, but such ops "
                "run and the record lists them (`determinism.nondeterministic_ops`): as reproducible as the model allows, and says "
                "where not. The record's `determinism` stores the flags; the process's own setting is restored after each run. On "
                "the CPU runs are bit-identical either way (tested: resumed equals uninterrupted, and every executor gives the same "
                "numbers); on a GPU only in this mode. Its cost on a GPU is not measured yet."),
    Key("iterations", Integer(0, MAX_ITERATIONS), "train exactly this many optimiser steps instead of epochs (0: train for epochs)", 0,
        details="As mmsegmentation's 20k/40k schedules count them: passes over the data with the last one cut short; the "
                "learning-rate schedule spans exactly these steps.",
        expected=f"an integer from 1 to {MAX_ITERATIONS:,} optimiser steps (0 = train for train.epochs instead)", id_neutral=True),
    Key("aux_weight", Number(minimum=0, note="0 = off"), "weight of an auxiliary head's loss, for a model built with one", 0.4,
        id_neutral=True,
        details="mmsegmentation's 0.4; torchvision's reference uses 0.5. Models built with one: `aux_head = true` on `unet`, `fcn`, "
                "`fpn`, `deeplabv3plus` (mmsegmentation's FCN head on the encoder's second-deepest feature), `aux_loss = true` on "
                "`tv_fcn_resnet50` and `tv_deeplabv3_resnet50`. The loss is `loss(out) + aux_weight · loss(aux)`; evaluation uses "
                "`out` only."),
    Key("lr_mult", Mapping(Number(above=0, note="a finite multiplier of the optimizer's lr"), "parameter-name substrings"),
        "learning-rate multipliers: a parameter whose name contains a key trains at lr times its value", {},
        default_doc="`{}`: every parameter at lr", id_neutral=True,
        details="mmsegmentation's `paramwise_cfg.custom_keys` (`lr_mult`): a parameter whose full name, as "
                "`model.named_parameters()` of the built model gives it, contains the key gets the optimizer's `lr` times the "
                "value; where several keys match, the longest wins (equal lengths: the alphabetically first); the other "
                "parameters keep `lr`. Each key is one optimiser parameter group, and the schedule and warm-up scale every group "
                "alike. A key that matches no parameter of a variant's model is refused before training, with the names there "
                "are. torchvision's segmentation reference trains the auxiliary classifier at 10 × lr: "
                "`lr_mult = { aux_classifier = 10.0 }` on `tv_fcn_resnet50` and `tv_deeplabv3_resnet50` (parameters "
                "`model.aux_classifier.*`). A key holding a dot (`\"backbone.layer4\"`) is set from the command line as the whole "
                "table, `--set 'train.lr_mult={ \"backbone.layer4\" = 0.1 }'`: a quoted dotted key there is read as nesting."),
), example="[train]")

EVAL = Table((
    Key("metrics", ListOf(Component("metric"), min_items=1, what="metric names"), "the metrics computed on the validation split",
        ["miou", "dice", "pixel_accuracy"]),
    Key("primary", Text(min_length=1), "the metric that decides comparisons and the plots; one of metrics", None,
        default_doc="the first of metrics"),
    Key("inference", INFERENCE, "how validation images are predicted, as mmsegmentation's test modes", {"mode": "stored"},
        id_neutral=True),
), example="[eval]")

ADAPTIVE_SEEDS = Table((
    Key("min", Integer(2), "seeds before the first look (a paired t-test needs two)",
        expected="an integer >= 2 (a paired t-test needs two seeds)"),
    Key("max", Integer(2, MAX_SEEDS), "seeds at the last look"),
    Key("step", Integer(1), "seeds added per round", 1, expected="an integer >= 1 (seeds added per round)"),
    Key("spending", Choice(SPENDINGS), "alpha spending function (Lan & DeMets)", SPENDINGS[0]),
), required=("min", "max"), example="{ min = 3, max = 12 }")

STATS = Table((
    Key("alpha", Number(above=0, below=0.5, note="a level such as 0.05"), "significance level of every comparison", ALPHA),
    Key("margin", AnyOf((Number(above=0), Mapping(Number(above=0), "metric names"))),
        "equivalence margin in the metric's units, or a table per metric ({ miou = 0.01 })", DEFAULT_MARGIN),
    Key("correction", Choice(CORRECTIONS), "multiplicity correction over a suite's comparisons", CORRECTIONS[0]),
    Key("power", Number(above=0, below=1, note="a probability such as 0.8"), "power at which the minimum detectable effect is stated", POWER),
), example="[stats]")

# METRIC:max_drop=X or METRIC:max_increase=X, X absolute or a percentage, then optionally ,noise=...
GATE_RULE_PATTERN = (r"^\s*[^\s:]+\s*:\s*(" + "|".join(GATE_DIRECTIONS) + r")\s*=\s*[0-9.eE+-]+\s*%?\s*"
                     r"(,\s*noise\s*=\s*(" + "|".join(GATE_NOISE_MODES) + r")\s*)*$")


@dataclass(frozen=True)
class RuleText(Text):
    """The rule's syntax is the gate's to parse (segbench.gate.rules); the pattern is for editors."""

    def expected(self):
        return 'a rule such as "miou:max_drop=0.01"'

    def describe(self):
        return '`"METRIC:max_drop=X"` or `"METRIC:max_increase=X"` (X absolute or `10%`), optionally `,noise=ignore`'

    def json(self):
        return {"type": "string", "pattern": GATE_RULE_PATTERN}


GATE = Table((
    Key("rules", ListOf(RuleText()), "what `segbench gate` checks by default (docs/gate.md)", []),
), example="[gate]")

REPORT = Table((
    Key("exporters", ListOf(Text(min_length=1), what="exporter names"),
        'opt-in exporters that also receive the results, e.g. ["mlflow"]', []),
), example="[report]")

SEEDS = AnyOf((ListOf(Integer(0, SEED_LIMIT - 1), min_items=1, unique=True, what="distinct integers"), ADAPTIVE_SEEDS))

SUITE = Table((
    Key("name", FolderName(min_length=1, max_length=MAX_NAME_LENGTH), "the suite's name: results go to `<output>/<name>/`",
        default_doc="the file's name without .toml", example='name="quick"'),
    Key("description", Text(), "what the suite compares and why; shown in the report", "", example='description="a quick look"'),
    Key("seeds", SEEDS, "the seeds every variant runs with, or adaptive seeds { min, max, step, spending }", list(DEFAULT_SEEDS),
        example="seeds=[0,1,2] or seeds={min=3,max=12}"),
    Key("plugins", ListOf(Text(), what="module names or .py paths"), "suite-local plugins: modules, or .py paths relative to the suite",
        [], example='plugins=["my_plugin.py"]'),
    Key("baseline", AnyOf((Text(), Settings())), "the variant the others are compared with: its label, or settings it has",
        default_doc="the first variant", example='baseline="upsampler=nearest" or baseline."model.upsampler"=nearest'),
    Key("dataset", DATASET, "the dataset and its parameters", example="dataset.num_train=8"),
    Key("model", MODEL, "architecture, upsampler and the architecture's parameters", example="model.upsampler=bilinear"),
    Key("train", TRAIN, "how every run trains", example="train.epochs=1"),
    Key("eval", EVAL, "how every run is evaluated", example='eval.metrics=["miou"]'),
    Key("ablate", Settings(lists=True), "the grid: each dotted setting name to the values to compare (cartesian product)",
        example='ablate."model.upsampler"=["nearest","bilinear"]'),
    Key("variants", ListOf(Settings(extra=("label",)), what="[[variants]] tables"),
        "explicit variants: a label and dotted settings each; crossed with the [ablate] grid (labels `LABEL, key=value`), a "
        "setting in both is refused",
        example='variants=[{label="a","model.upsampler"="bilinear"}]'),
    Key("gate", GATE, "regression-gate rules checked at load", example='gate.rules=["miou:max_drop=0.02"]'),
    Key("stats", STATS, "how differences are judged (docs/statistics.md)", example="stats.margin=0.02"),
    Key("report", REPORT, "what is written besides the report", example='report.exporters=["mlflow"]'),
))

SECTIONS = {name: SUITE[name].type for name in SETTING_SECTIONS}  # [dataset], [model], [train], [eval]
COMPONENT_SLOTS = {"dataset.name": "dataset", "model.architecture": "architecture", "model.upsampler": "upsampler", "train.loss": "loss"}


def section_defaults() -> dict:
    """The configuration every variant starts from, section by section."""
    return {name: table.defaults() for name, table in SECTIONS.items()}


def walk(table: Table = SUITE, prefix: str = ""):
    """``(dotted name, key)`` for every declared key, depth first."""
    for key in table.keys:
        dotted = f"{prefix}{key.name}"
        yield dotted, key
        for nested in _nested_tables(key.type):
            yield from walk(nested, dotted + ".")


def _nested_tables(value_type) -> list:
    if isinstance(value_type, Table):
        return [value_type]
    if isinstance(value_type, Tagged):
        return [value_type.merged()]
    if isinstance(value_type, AnyOf):
        return [nested for option in value_type.options for nested in _nested_tables(option)]
    return []


# ----------------------------------------------------------------------------- JSON Schema

JSON_SCHEMA_DRAFT = "http://json-schema.org/draft-07/schema#"


def json_schema() -> dict:
    """The suite file as a JSON Schema, draft-07 (what taplo / Even Better TOML read)."""
    schema = SUITE.json()
    return {"$schema": JSON_SCHEMA_DRAFT, "title": "segbench suite",
            "description": "A segbench suite file (TOML): docs/suite-reference.md", **schema}


# ----------------------------------------------------------------------------- reference

REGENERATE = "python -m segbench.schema --markdown > docs/suite-reference.md"


def reference_markdown() -> str:
    """docs/suite-reference.md: every key of a suite file, table by table."""
    lines = [
        "# Suite file reference",
        "",
        f"<!-- Generated from segbench/schema.py by `{REGENERATE}`; do not edit. -->",
        "",
        "Every key a suite file (TOML) may set, with its type, valid values and default. Every key is",
        "optional. `segbench schema` prints the same as a JSON Schema, for editors ([Editor support](guide/suites.md#editor-support)).",
        "`--set KEY=VALUE` sets any of them from the command line (`--set train.epochs=1`).",
        "",
        "Component parameters (a dataset's `image_size`, an architecture's `encoder`, an upsampler's",
        "`kernel_size`) are declared by the plugins that provide the components: `segbench list`",
        "shows them.",
        "",
        *_markdown_table("Top level", [(name, key) for name, key in walk(SUITE) if "." not in name]),
    ]
    for name in (*SETTING_SECTIONS, "stats", "gate", "report"):
        table = SUITE[name]
        lines += ["", *_markdown_table(f"[{name}]", list(walk(table.type, f"{name}.")), table.doc, table.type.params)]
    lines += ["", *_markdown_table("seeds = { ... } (adaptive seeds)", list(walk(ADAPTIVE_SEEDS, "seeds.")),
                                   "Instead of a list: the comparisons are looked at after `min` seeds, then every `step` more, up to `max`.")]
    return "\n".join(lines) + "\n"


def _markdown_table(title, rows, doc="", params="") -> list:
    lines = [f"## {title}", ""]
    if doc:
        lines += [doc[0].upper() + doc[1:] + ("" if doc.endswith(".") else "."), ""]
    if params:
        lines += [f"Besides these keys: {params}.", ""]
    lines += ["| key | type / valid values | default | meaning |", "|---|---|---|---|"]
    for name, key in rows:
        lines.append(f"| `{name}` | {_cell(key.type.describe())} | {_cell(_default_text(key))} | {_cell(key.doc)} |")
    details = [f"- `{name}`: {key.details}" for name, key in rows if key.details]
    return lines + (["", *details] if details else [])


def _default_text(key) -> str:
    if key.default_doc:
        return key.default_doc
    if key.default is NO_DEFAULT or isinstance(key.type, (Table, Tagged)) and not key.default:
        return "—"
    return f"`{toml_value(key.default)}`"


def toml_value(value) -> str:
    """A value as a suite file writes it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):  # TOML has no null: a key that is None is left out
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items() if v is not None) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(value)


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv not in ([], ["--markdown"]):
        print("usage: python -m segbench.schema [--markdown]", file=sys.stderr)
        return 2
    print(reference_markdown() if argv else json.dumps(json_schema(), indent=2), end="" if argv else "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
