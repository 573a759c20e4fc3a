"""Suite files: TOML -> validated :class:`Suite` -> expanded :class:`Variant` list.

Every problem in a suite is collected and reported at once, each with where it came from
(``ablate."model.upsampler"[2]``), the bad value and what would be valid.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import itertools
import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .components import Catalogue, fits, metric_direction, unknown_name_message
from .design import SeedDesign, StatsSettings, margin_metric_problems, read_seeds, read_stats
from .errors import SegbenchError, SuiteError
from .gate.rules import COST_FIELDS, direction_problem, higher_is_better, read_gate_table, unknown_metric_problem
from .params import check_params, describe_value
from .plugins import locate_plugin

TOP_LEVEL_KEYS = ("name", "description", "seeds", "plugins", "baseline", "dataset", "model", "train", "eval", "ablate", "variants", "gate",
                  "stats")
SECTION_DEFAULTS = {
    "dataset": {"name": "shapes"},
    "model": {"architecture": "unet", "upsampler": "nearest"},
    "train": {
        "epochs": 6,
        "batch_size": 16,
        "loss": "ce",
        "optimizer": {"name": "adamw", "lr": 1e-3, "weight_decay": 1e-4},
        "schedule": "cosine",
        "device": "auto",
        "channels_last": True,
        "augment": {"hflip": 0.0, "scale": [1.0, 1.0]},
        "data_placement": "auto",
        "data_device_limit_mb": 2048,
        "warmup_epochs": 0.0,
        "grad_clip_norm": 0.0,
        "amp": "auto",
        "cudnn_benchmark": True,
        "compile": False,
        "val_every": 1,
        "timeout_s": None,  # seconds; None = no limit
        "deterministic": False,
        "iterations": 0,  # optimiser steps; 0 = train for `epochs` instead
        "aux_weight": 0.4,  # loss weight of an auxiliary head (mmsegmentation's), for models that have one
    },
    "eval": {"metrics": ["miou", "dice", "pixel_accuracy"], "primary": None, "inference": {"mode": "stored"}},
}
# Keys of [dataset] and [model] beyond these are parameters of the chosen component.
COMPONENT_SLOTS = {"dataset.name": "dataset", "model.architecture": "architecture", "model.upsampler": "upsampler", "train.loss": "loss"}
MAX_EPOCHS = 10_000
MAX_ITERATIONS = 10_000_000
OPTIMIZERS = {"adamw": ("lr", "weight_decay"), "adam": ("lr", "weight_decay"), "sgd": ("lr", "weight_decay", "momentum")}
SCHEDULES = ("constant", "cosine", "poly")
DATA_PLACEMENTS = ("auto", "device", "host")
AMP_MODES = ("auto", "off", "bf16", "fp16")
MAX_ZOOM = 4.0


@dataclass
class Variant:
    """One point of the ablation: a fully resolved configuration."""

    id: str
    label: str
    factors: dict
    config: dict
    versions: dict = field(default_factory=dict)


@dataclass
class Suite:
    path: Path
    name: str
    description: str
    seeds: list
    plugins: list
    variants: list
    baseline_id: str
    text: str = ""
    catalogue: Catalogue | None = field(default=None, repr=False)
    # How it was loaded, so that a worker process or a Ray task can load it again.
    source: dict = field(default_factory=dict)
    # The [gate] table's rules (segbench.gate.rules.Rule): what `segbench gate` checks by default.
    gate_rules: list = field(default_factory=list)
    design: SeedDesign = field(default_factory=lambda: SeedDesign.fixed([0, 1, 2]))
    stats: StatsSettings = field(default_factory=StatsSettings)

    def runs(self):
        """Every (variant, seed) pair that may run, in order (with adaptive seeds, up to
        the maximum; the runner decides round by round how many do)."""
        return [(variant, seed) for variant in self.variants for seed in self.seeds]

    @property
    def primary(self) -> str:
        return self.variants[0].config["eval"]["primary"]

    @property
    def metric_names(self) -> list:
        return list(dict.fromkeys(m["name"] for v in self.variants for m in v.config["eval"]["metrics"]))

    def variant(self, variant_id: str) -> Variant:
        return next(v for v in self.variants if v.id == variant_id)

    @property
    def baseline(self) -> Variant:
        return next(v for v in self.variants if v.id == self.baseline_id)


def read_suite_file(path) -> tuple[Path, str, dict]:
    path = Path(path)
    if path.is_dir():
        raise SegbenchError(f"{path} is a folder, not a suite file; give a .toml file such as suites/smoke.toml")
    if not path.is_file():
        raise SegbenchError(f"suite file {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SegbenchError(f"suite file {path} cannot be read: {exc}") from None
    try:
        return path, text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        where = "" if "line" in str(exc) else f" (the file ends at line {len(text.splitlines())})"
        raise SuiteError(path, [f"TOML syntax error: {exc}{where}"]) from None


def load_suite(path, catalogue_loader, extra_plugins=(), overrides=None) -> Suite:
    """Read, validate and expand a suite file.

    ``catalogue_loader(plugins, base_dir)`` returns the component catalogue (so the suite's
    own ``plugins`` list is honoured); ``overrides`` maps dotted keys to values, applied
    on top of the file (``--set train.epochs=1``).
    """
    path, text, raw = read_suite_file(path)
    problems = Problems()
    overrides = dict(overrides or {})
    settings = read_overrides(overrides, raw, problems)
    raw = _override_top_level(raw, settings)
    header = _read_header(raw, path, problems)
    extra_plugins = [locate_plugin(spec) for spec in extra_plugins]  # -p: from the current directory
    suite_plugins = [locate_plugin(spec, path.parent) for spec in header["plugins"]]  # from the suite's folder
    catalogue = catalogue_loader(extra_plugins + suite_plugins, path.parent)
    base = _base_config(raw, problems)
    _override_sections(base, settings)
    unresolved = []
    variants = _expand(raw, base, catalogue, problems, unresolved)
    baseline_id = _find_baseline(raw.get("baseline"), variants, problems, unresolved)
    _check_overrides_take_effect(settings, variants, problems)
    _check_gate_metrics(header["gate"], variants, catalogue, problems)
    if variants:
        metrics = list(dict.fromkeys(m["name"] for v in variants for m in v.config["eval"]["metrics"]))
        for where, message in margin_metric_problems(header["stats"], metrics):
            problems.add(where, message)
    problems.raise_if_any(path)
    source = {"path": str(path), "plugins": extra_plugins, "overrides": overrides}
    text = _note_overrides(text, overrides)
    design = header["design"]
    return Suite(path, header["name"], header["description"], list(design.seeds), header["plugins"], variants, baseline_id, text, catalogue,
                 source, gate_rules=header["gate"], design=design, stats=header["stats"])


# --set KEY=VALUE, as if the suite file said KEY = VALUE. KEY is a TOML dotted key; whether
# a dotted setting name in [ablate] or a baseline is quoted (ablate."model.upsampler") or
# not makes no difference. Examples for messages, one per top-level key:
OVERRIDE_EXAMPLES = {
    "name": 'name="quick"', "description": 'description="a quick look"', "seeds": "seeds=[0,1,2] or seeds={min=3,max=12}",
    "plugins": 'plugins=["my_plugin.py"]', "baseline": 'baseline="upsampler=nearest" or baseline."model.upsampler"=nearest',
    "dataset": "dataset.num_train=8", "model": "model.upsampler=bilinear", "train": "train.epochs=1",
    "eval": 'eval.metrics=["miou"]', "ablate": 'ablate."model.upsampler"=["nearest","bilinear"]',
    "variants": 'variants=[{label="a","model.upsampler"="bilinear"}]', "gate": 'gate.rules=["miou:max_drop=0.02"]',
    "stats": "stats.margin=0.02",
}
TABLE_KEYS = ("dataset", "model", "train", "eval", "ablate", "gate", "stats")  # a table value replaces the whole table
WHOLE_VALUE_KEYS = ("name", "description", "plugins", "variants")  # no keys inside to set
FACTOR_TABLES = ("ablate", "baseline")  # their keys are dotted setting names: ablate."model.upsampler"


def read_overrides(overrides: dict, raw: dict, problems) -> list:
    """``(key, parts, value)`` for each override. A key that names nothing a suite has, or a
    key inside a value that has none, is a problem (never silently ignored) and is left out."""
    settings = []
    for key, value in overrides.items():
        parts = _key_parts(key)
        problem = _override_problem(parts, value, raw) if parts else (
            'not a key: write dotted names, quoting a name that holds a dot, e.g. train.epochs or ablate."model.upsampler"')
        if problem:
            problems.add(f"--set {key}", problem)
        else:
            settings.append((key, parts, value))
    return settings


def _key_parts(key) -> tuple | None:
    """The names in a TOML dotted key, read by the TOML parser itself, a quoted name split at
    its dots too (``ablate."model.upsampler"`` -> ablate, model, upsampler: no name a suite
    sets holds a dot); None if ``key`` is not one key."""
    if not isinstance(key, str) or any(char in key for char in "=#\n\r"):
        return None
    try:
        table = tomllib.loads(f"{key} = 0")
    except tomllib.TOMLDecodeError:
        return None
    parts = []
    while isinstance(table, dict) and len(table) == 1:
        (part, table), = table.items()
        parts.extend(part.split("."))
    return tuple(parts) if parts and table == 0 and all(parts) else None


def _override_problem(parts, value, raw) -> str | None:
    head, inner = parts[0], parts[1:]
    if head not in TOP_LEVEL_KEYS:
        return _unknown_top_level_key(head)
    if not inner and head in TABLE_KEYS and not isinstance(value, dict):
        return (f"`{head}` is a table; set one of its keys, e.g. {OVERRIDE_EXAMPLES[head]}, or all of it as a table, "
                f"e.g. {head}={{...}}; got {describe_value(value)}")
    current = raw.get(head)
    if inner and (head in WHOLE_VALUE_KEYS or (head in ("seeds", "baseline") and current is not None and not isinstance(current, dict))):
        what = f"{describe_value(current)} in the suite" if current is not None else "not a table"
        return f"`{head}` is {what}, so it has no key {'.'.join(inner)!r}: set it whole, e.g. {OVERRIDE_EXAMPLES[head]}"
    return None


def _unknown_top_level_key(head) -> str:
    """``--set epochs=1`` most likely meant ``train.epochs``: say so."""
    in_sections = [f"{section}.{head}" for section, keys in SECTION_DEFAULTS.items() if head in keys]
    if in_sections:
        return f"unknown key {head}; did you mean {in_sections[0]}? Valid: {', '.join(TOP_LEVEL_KEYS)}"
    return _unknown_key(head, TOP_LEVEL_KEYS)


def _override_top_level(raw, settings):
    """Every override but the sections' (dataset, model, train, eval), which are applied
    once their defaults are filled in (see _override_sections)."""
    raw = copy.deepcopy(raw)
    for _, parts, value in settings:
        head, inner = parts[0], ".".join(parts[1:])
        if head in SECTION_DEFAULTS:
            continue
        if head in FACTOR_TABLES and inner:  # one dotted setting name, however it was quoted
            table = raw.get(head)
            raw[head] = _flatten(table) if isinstance(table, dict) else {}
            raw[head][inner] = copy.deepcopy(value)
        else:
            _set_path(raw, ".".join(parts), value)
    return raw


def _override_sections(base, settings):
    """``train.epochs=1`` sets one key; ``train={...}`` stands for the whole [train] table
    (its defaults still apply)."""
    for _, parts, value in settings:
        head = parts[0]
        if head not in SECTION_DEFAULTS:
            continue
        if len(parts) == 1:
            base[head] = {**copy.deepcopy(SECTION_DEFAULTS[head]), **copy.deepcopy(value)}
        else:
            _set_path(base, ".".join(parts), value)


def _check_overrides_take_effect(settings, variants, problems):
    """An override of a setting that every variant sets again ([ablate] or [[variants]])
    would change nothing: say so rather than run something else than asked."""
    for key, parts, _ in settings:
        if parts[0] not in SECTION_DEFAULTS or len(parts) < 2 or not variants:
            continue
        dotted = ".".join(parts)
        covering = [next((f for f in v.factors if dotted == f or dotted.startswith(f + ".")), None) for v in variants]
        if all(covering):
            problems.add(f"--set {key}", f"every variant sets {covering[0]} itself ([ablate] or [[variants]]), so this would change "
                                         f"nothing; override the grid instead, e.g. --set 'ablate.\"{covering[0]}\"=[...]'")


def _note_overrides(text, overrides) -> str:
    """The suite text stored with the results says which overrides the run applied."""
    if not overrides:
        return text
    lines = "".join(f"#   --set {key}={json.dumps(value, default=str)}\n" for key, value in overrides.items())
    return f"{text.rstrip()}\n\n# This run overrode the file above from the command line:\n{lines}"


class Problems(list):
    def add(self, where: str, message: str):
        line = f"{where}: {message}"
        if line not in self:
            self.append(line)

    def merge(self, other):
        self.extend(line for line in other if line not in self)

    def raise_if_any(self, path):
        if self:
            raise SuiteError(path, self)


def _read_header(raw, path, problems):
    for key in raw:
        if key not in TOP_LEVEL_KEYS:
            problems.add(key, _unknown_key(key, TOP_LEVEL_KEYS))
    name = raw.get("name", path.stem)
    name_problem = suite_name_problem(name)
    if name_problem:
        problems.add("name", name_problem)
        name = "suite"
    description = raw.get("description", "")
    if not isinstance(description, str):
        problems.add("description", f"expected a string, got {describe_value(description)}")
    design, design_problems = read_seeds(raw.get("seeds"))
    stats, stats_problems = read_stats(raw.get("stats"))
    for where, message in design_problems + stats_problems:
        problems.add(where, message)
    return {"name": name, "description": str(description), "design": design, "stats": stats, "plugins": _read_plugins(raw, problems),
            "gate": _read_gate(raw, problems)}


MAX_NAME_LENGTH = 100


def suite_name_problem(name) -> str | None:
    """The name becomes the results folder ``<output>/<name>``: it must be one ordinary
    path component, so that no suite writes over another's folder or outside ``-o``."""
    valid = f"a folder name of 1 to {MAX_NAME_LENGTH} characters without slashes or control characters, not '.' or '..'"
    if not isinstance(name, str):
        return f"expected {valid}, got {describe_value(name)}"
    if not name.strip() or name in (".", "..") or "/" in name or "\\" in name or len(name) > MAX_NAME_LENGTH \
            or any(ord(c) < 32 or ord(c) == 127 for c in name):
        return f"expected {valid}, got {describe_value(name[:120])}{' (truncated)' if len(name) > 120 else ''}"
    return None


def _read_plugins(raw, problems):
    plugins = raw.get("plugins", [])
    if not isinstance(plugins, list) or not all(isinstance(p, str) for p in plugins):
        problems.add("plugins", f"expected a list of module names or .py paths, got {describe_value(plugins)}")
        return []
    return plugins


def _read_gate(raw, problems):
    """[gate] rules = ["miou:max_drop=0.01", ...]: checked here so that a typo shows
    before training, not when the gate runs."""
    rules, gate_problems = read_gate_table(raw.get("gate"))
    for where, message in gate_problems:
        problems.add(where, message)
    return rules


def _check_gate_metrics(rules, variants, catalogue, problems):
    """A gate rule must name a metric some variant computes, or a cost field, and guard it
    in the direction that is worse for it."""
    if not rules or not variants:
        return
    metrics = list(dict.fromkeys(m["name"] for v in variants for m in v.config["eval"]["metrics"]))
    directions = {name: metric_direction(catalogue.get("metric", name)) for name in metrics}
    for rule in rules:
        problem = unknown_metric_problem(rule, metrics + list(COST_FIELDS))
        problem = problem or direction_problem(rule, higher_is_better(rule.metric, directions))
        if problem:
            problems.add("gate.rules", problem)


def _base_config(raw, problems):
    base = copy.deepcopy(SECTION_DEFAULTS)
    for section in SECTION_DEFAULTS:
        given = raw.get(section, {})
        if not isinstance(given, dict):
            problems.add(section, f"expected a table [{section}], got {describe_value(given)}")
            continue
        base[section].update(copy.deepcopy(given))
    return base


def _expand(raw, base, catalogue, problems, unresolved):
    """Every valid variant; ``unresolved`` gets a stand-in (label, factors) for each
    invalid one, so that a baseline naming it is not reported as matching nothing."""
    grid = _read_grid(raw.get("ablate", {}), problems)
    explicit = _read_variant_tables(raw.get("variants", []), problems)
    variants, seen = [], {}
    for (variant_label, variant_overrides), combination in itertools.product(explicit, _combinations(grid)):
        overrides = variant_overrides + combination
        config = copy.deepcopy(base)
        for where, key, value in overrides:
            _set_path(config, key, value)
        resolved = resolve_config(config, catalogue, problems, origins={key: where for where, key, _ in overrides})
        if resolved is None:
            factors = {key: value for _, key, value in overrides}
            unresolved.append(Variant(id="", label=variant_label or _label(factors), factors=factors, config={}, versions={}))
            continue
        variant = _make_variant(resolved, variant_label, overrides, catalogue)
        if variant.id in seen:
            problems.add("ablate", f"variants {seen[variant.id]!r} and {variant.label!r} resolve to the same configuration")
            continue
        seen[variant.id] = variant.label
        variants.append(variant)
    return variants


def _read_grid(ablate, problems):
    """[ablate] -> list of (key, [(where, value), ...]), one entry per factor."""
    if not isinstance(ablate, dict):
        problems.add("ablate", f"expected a table of dotted keys to lists, got {describe_value(ablate)}")
        return []
    grid = []
    for key, values in _flatten(ablate).items():
        where = f'ablate."{key}"'
        if not isinstance(values, list):
            problems.add(where, f"expected a list of values to compare, got {describe_value(values)}")
        elif not values:
            problems.add(where, "empty list: give at least one value")
        elif _check_dotted_key(key, where, problems):
            grid.append([(f"{where}[{i}]", key, value) for i, value in enumerate(values)])
    return grid


def _read_variant_tables(tables, problems):
    """[[variants]] -> list of (label or None, [(where, key, value), ...])."""
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        problems.add("variants", f"expected [[variants]] tables, got {describe_value(tables)}")
        return [(None, [])]
    explicit = []
    for index, table in enumerate(tables):
        table = dict(table)
        label = table.pop("label", None)
        overrides = []
        for key, value in _flatten(table).items():
            where = f"variants[{index}].{key}"
            if _check_dotted_key(key, where, problems):
                overrides.append((where, key, value))
        explicit.append((label, overrides))
    return explicit or [(None, [])]


def _combinations(grid):
    return [list(combo) for combo in itertools.product(*grid)] if grid else [[]]


def _flatten(table, prefix=""):
    """Nested tables -> dotted keys; an inline component table (one with a ``name``) is a
    value, not a level."""
    flat = {}
    for key, value in table.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and "name" not in value:
            flat.update(_flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def _check_dotted_key(key, where, problems):
    section = key.split(".", 1)[0]
    if section not in SECTION_DEFAULTS or "." not in key:
        valid = ", ".join(f"{s}.<key>" for s in SECTION_DEFAULTS)
        problems.add(where, f"{key!r} does not name a setting; expected one of {valid} (e.g. \"model.upsampler\")")
        return False
    return True


def _set_path(config, dotted, value):
    """Set ``a.b.c`` in nested dicts; a component given by name becomes ``{name = ...}`` so
    one of its parameters can be set (``model.upsampler.kernel_size``)."""
    parts = dotted.split(".")
    node = config
    for depth, part in enumerate(parts[:-1]):
        child = node.get(part)
        if isinstance(child, str) and ".".join(parts[: depth + 1]) in COMPONENT_SLOTS:
            child = {"name": child}
        elif not isinstance(child, dict):
            child = {}
        node[part] = child
        node = child
    node[parts[-1]] = copy.deepcopy(value)


def _make_variant(resolved, label, overrides, catalogue):
    factors = {key: value for _, key, value in overrides}
    versions = component_versions(resolved, catalogue)
    return Variant(id=config_id(resolved, versions), label=label or _label(factors), factors=factors, config=resolved, versions=versions)


def component_versions(resolved: dict, catalogue) -> dict:
    """segbench's version and that of each distribution providing a component the variant
    uses: a new release of any of them may change results, so it gets new ids."""
    from . import __version__

    refs = [("dataset", resolved["dataset"]), ("architecture", resolved["model"]["architecture"]),
            ("upsampler", resolved["model"]["upsampler"]), ("loss", resolved["train"]["loss"])]
    refs += [("metric", ref) for ref in resolved["eval"]["metrics"]]
    components = {}
    for kind, ref in refs:
        component = catalogue.get(kind, ref["name"])
        components[f"{kind}:{ref['name']}"] = component.provenance
    return {"segbench": __version__, "components": components}


# [train] keys that say how a run is supervised, not what it computes: left out of the
# variant id, so setting or changing them does not train finished runs again.
SUPERVISION_KEYS = ("timeout_s",)
# [train] keys added after suites were run: at their default they leave the variant id as
# it was, so finished results and stored baselines keep matching.
ID_NEUTRAL_DEFAULTS = {"deterministic": False, "iterations": 0, "aux_weight": 0.4}
# The same for [eval] keys.
EVAL_ID_NEUTRAL_DEFAULTS = {"inference": {"mode": "stored"}}


def config_id(resolved: dict, versions: dict | None = None) -> str:
    """12 hex digits of a sha256 over the resolved configuration (less SUPERVISION_KEYS)
    and the versions."""
    if isinstance(resolved.get("train"), dict):
        resolved = {**resolved, "train": {k: v for k, v in resolved["train"].items()
                                          if k not in SUPERVISION_KEYS and not (k in ID_NEUTRAL_DEFAULTS and v == ID_NEUTRAL_DEFAULTS[k])}}
    if isinstance(resolved.get("eval"), dict):
        resolved = {**resolved, "eval": {k: v for k, v in resolved["eval"].items()
                                         if not (k in EVAL_ID_NEUTRAL_DEFAULTS and v == EVAL_ID_NEUTRAL_DEFAULTS[k])}}
    canonical = json.dumps({"config": resolved, "versions": versions or {}}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def _label(factors):
    if not factors:
        return "base"
    short = {key: key.split(".")[-1] for key in factors}
    if len(set(short.values())) < len(short):
        short = {key: key for key in factors}
    return ", ".join(f"{short[key]}={format_value(value)}" for key, value in factors.items())


def format_value(value) -> str:
    if isinstance(value, dict) and "name" in value:
        params = ", ".join(f"{k}={format_value(v)}" for k, v in value.items() if k != "name")
        return f"{value['name']}({params})" if params else str(value["name"])
    if isinstance(value, str):
        return value
    return json.dumps(value)


def _find_baseline(declared, variants, problems, unresolved=()):
    if not variants:
        return ""
    if declared is None:
        return variants[0].id
    if _matches(declared, unresolved):
        return ""  # the baseline is a variant with problems of its own, reported already
    matches = _matches(declared, variants)
    if matches:
        return matches[0].id
    labels = "; ".join(v.label for v in variants)
    if isinstance(declared, str):  # a variant's label
        problems.add("baseline", f"{declared!r} is not a variant's label; the labels are: {labels}")
    elif not isinstance(declared, dict) or not declared:
        problems.add("baseline", f'expected a variant label or a table such as {{ "model.upsampler" = "nearest" }}, got {describe_value(declared)}')
    else:
        problems.add("baseline", f"{declared} matches no variant; variants are: {labels}")
    return variants[0].id


def _matches(declared, variants) -> list:
    """The variants a baseline declaration names: by label (text) or by factors (a table)."""
    if isinstance(declared, str):
        return [v for v in variants if v.label == declared]
    if not isinstance(declared, dict) or not declared:
        return []
    return [v for v in variants if all(_same(v.factors.get(k, _MISSING), value) for k, value in _flatten(declared).items())]


_MISSING = object()


def _same(factor_value, declared_value):
    as_name = lambda v: v["name"] if isinstance(v, dict) and set(v) == {"name"} else v  # noqa: E731
    return as_name(factor_value) == as_name(declared_value)


# ----------------------------------------------------------------------------- resolution


def resolve_config(config, catalogue: Catalogue, problems, origins=None):
    """Validate one configuration and return it with every component's parameters
    filled in: ``{"name": ..., "params": {...}}``. Returns None if it had problems."""
    locate = _Locator(origins or {})
    # Its own list: a problem another variant already reported is still this one's problem
    # (the shared list drops duplicate lines, so its length cannot tell).
    own = Problems()
    dataset_params = {k: v for k, v in config["dataset"].items() if k != "name"}
    resolved = {
        "dataset": _resolve_component(catalogue, "dataset", "dataset.name", config["dataset"].get("name"), locate, own, dataset_params),
        "model": _resolve_model(config["model"], catalogue, locate, own),
        "train": _resolve_train(config["train"], catalogue, locate, own),
        "eval": _resolve_eval(config["eval"], catalogue, locate, own),
    }
    problems.merge(own)
    return None if own else resolved


class _Locator:
    """Maps a dotted key of the resolved configuration to where its value was written."""

    def __init__(self, origins):
        self.origins = origins

    def __call__(self, key):
        for candidate in sorted(self.origins, key=len, reverse=True):
            if key == candidate or key.startswith(candidate + "."):
                return self.origins[candidate]
        return key


def _resolve_component(catalogue, kind, key, ref, locate, problems, extra_params=None):
    name, params = _split_ref(ref)
    if name is None:
        problems.add(locate(key), f"expected a {kind} name or {{ name = ..., <param> = ... }}, got {describe_value(ref)}")
        return None
    if not catalogue.has(kind, name):
        problems.add(locate(key), unknown_name_message(kind, name, catalogue.names(kind)))
        return None
    component = catalogue.get(kind, name)
    params.update(extra_params or {})
    param_key = key.rsplit(".", 1)[0] if kind in ("dataset", "architecture") else key
    for param, message in check_params(component, params):
        problems.add(locate(f"{param_key}.{param}"), message)
    return {"name": name, "params": component.resolve_params(params)}


def _split_ref(ref):
    if isinstance(ref, str) and ref:
        return ref, {}
    if isinstance(ref, dict) and isinstance(ref.get("name"), str):
        return ref["name"], {k: v for k, v in ref.items() if k != "name"}
    return None, {}


def _resolve_model(model, catalogue, locate, problems):
    arch_params = {k: v for k, v in model.items() if k not in ("architecture", "upsampler")}
    architecture = _resolve_component(catalogue, "architecture", "model.architecture", model.get("architecture"), locate, problems, arch_params)
    upsampler = _resolve_component(catalogue, "upsampler", "model.upsampler", model.get("upsampler"), locate, problems)
    if architecture and upsampler:
        _check_compatible(catalogue, architecture["name"], upsampler["name"], locate, problems)
    return {"architecture": architecture, "upsampler": upsampler}


def _check_compatible(catalogue, architecture_name, upsampler_name, locate, problems):
    architecture = catalogue.get("architecture", architecture_name)
    upsampler = catalogue.get("upsampler", upsampler_name)
    missing = upsampler.requires - architecture.provides
    if missing:
        fitting = [u.name for u in catalogue.all("upsampler") if fits(architecture, u)]
        problems.add(
            locate("model.upsampler"),
            f"upsampler {upsampler_name!r} needs {', '.join(sorted(missing))}, which architecture "
            f"{architecture_name!r} does not provide; upsamplers that fit it: {', '.join(fitting)}",
        )


def _resolve_train(train, catalogue, locate, problems):
    for key in train:
        if key not in SECTION_DEFAULTS["train"]:
            problems.add(locate(f"train.{key}"), _unknown_key(key, SECTION_DEFAULTS["train"], "train."))
    _check_epochs(train, locate, problems)
    return {
        "epochs": _positive_int(train, "epochs", locate, problems),
        "batch_size": _positive_int(train, "batch_size", locate, problems),
        "loss": _resolve_component(catalogue, "loss", "train.loss", train.get("loss"), locate, problems),
        "optimizer": _resolve_optimizer(train.get("optimizer"), locate, problems),
        "device": _resolve_device(train.get("device"), locate, problems),
        "channels_last": _boolean(train, "channels_last", locate, problems),
        "schedule": _choice(train, "schedule", SCHEDULES, locate, problems),
        "augment": _resolve_augment(train.get("augment"), locate, problems),
        "data_placement": _choice(train, "data_placement", DATA_PLACEMENTS, locate, problems),
        "data_device_limit_mb": _positive_int(train, "data_device_limit_mb", locate, problems),
        "warmup_epochs": _non_negative(train, "warmup_epochs", locate, problems),
        "grad_clip_norm": _non_negative(train, "grad_clip_norm", locate, problems),
        "amp": _choice(train, "amp", AMP_MODES, locate, problems),
        "cudnn_benchmark": _boolean(train, "cudnn_benchmark", locate, problems),
        "compile": _boolean(train, "compile", locate, problems),
        "val_every": _positive_int(train, "val_every", locate, problems),
        "timeout_s": _timeout_seconds(train, locate, problems),
        "deterministic": _determinism(train, locate, problems),
        "iterations": _iterations(train, locate, problems),
        "aux_weight": _non_negative(train, "aux_weight", locate, problems),
    }


def _check_epochs(train, locate, problems):
    """Epoch counts a run could finish: a typo such as 10**8 epochs is refused here, not
    discovered days later; warm-up cannot outlast training."""
    epochs, warmup = train.get("epochs"), train.get("warmup_epochs")
    if train.get("iterations"):
        return  # epochs are not used; warm-up is checked against the run's length when it starts
    if isinstance(epochs, int) and epochs > MAX_EPOCHS:
        problems.add(locate("train.epochs"), f"expected at most {MAX_EPOCHS} epochs, got {epochs}")
    if _is_number(warmup) and isinstance(epochs, int) and math.isfinite(warmup) and warmup > epochs:
        problems.add(locate("train.warmup_epochs"), f"expected at most train.epochs = {epochs} (warm-up is part of training), got {warmup}")


def _iterations(train, locate, problems):
    """``iterations``: optimiser steps (as mmsegmentation's iteration-based schedules count
    them), replacing ``epochs``; 0 (the default) trains for ``epochs``."""
    value = train.get("iterations", 0)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_ITERATIONS:
        problems.add(locate("train.iterations"), f"expected an integer from 1 to {MAX_ITERATIONS:,} optimiser steps "
                     f"(0 = train for train.epochs instead), got {describe_value(value)}")
    return value


def _timeout_seconds(table, locate, problems):
    """``timeout_s``: a finite number of seconds > 0, or absent for no limit."""
    value = table.get("timeout_s")
    if value is None:
        return None
    if not _is_number(value) or not math.isfinite(value) or value <= 0:
        problems.add(locate("train.timeout_s"), f"expected a number of seconds > 0 (leave it out for no limit), got {describe_value(value)}")
        return value
    return float(value)


def _non_negative(table, key, locate, problems):
    value = table.get(key)
    if not _is_number(value) or not math.isfinite(value) or value < 0:
        problems.add(locate(f"train.{key}"), f"expected a number >= 0 (0 = off), got {describe_value(value)}")
        return value
    return float(value)


def _resolve_augment(augment, locate, problems):
    """``{ hflip = P, scale = [LOW, HIGH] }``, missing keys from the defaults."""
    resolved = copy.deepcopy(SECTION_DEFAULTS["train"]["augment"])
    if not isinstance(augment, dict):
        problems.add(locate("train.augment"), f"expected {{ hflip = 0.5, scale = [0.5, 2.0] }}, got {describe_value(augment)}")
        return resolved
    for key, value in augment.items():
        if key not in resolved:
            problems.add(locate(f"train.augment.{key}"), _unknown_key(key, resolved, "train.augment."))
        elif key == "hflip" and _is_number(value) and 0 <= value <= 1:
            resolved["hflip"] = float(value)
        elif key == "scale" and isinstance(value, list) and len(value) == 2 and all(_is_number(v) for v in value) \
                and 0 < value[0] <= value[1] <= MAX_ZOOM:
            resolved["scale"] = [float(v) for v in value]
        else:
            expected = "a probability between 0 and 1" if key == "hflip" else f"[LOW, HIGH] with 0 < LOW <= HIGH <= {MAX_ZOOM:g}"
            problems.add(locate(f"train.augment.{key}"), f"expected {expected}, got {describe_value(value)}")
    return resolved


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _choice(table, key, valid, locate, problems):
    value = table.get(key)
    if value not in valid:
        problems.add(locate(f"train.{key}"), unknown_name_message(key, value, list(valid)))
    return value


def _determinism(train, locate, problems):
    """``deterministic``: true (an op without a deterministic kernel fails the run), "warn"
    (it runs, and the record lists it) or false."""
    value = train.get("deterministic")
    if not isinstance(value, bool) and value != "warn":
        problems.add(locate("train.deterministic"), f'expected true, false or "warn", got {describe_value(value)}')
    return value


def _boolean(table, key, locate, problems):
    value = table.get(key)
    if not isinstance(value, bool):
        problems.add(locate(f"train.{key}"), f"expected true or false, got {describe_value(value)}")
    return value


def _positive_int(table, key, locate, problems):
    value = table.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        problems.add(locate(f"train.{key}"), f"expected an integer >= 1, got {describe_value(value)}")
    return value


def _resolve_optimizer(optimizer, locate, problems):
    defaults = SECTION_DEFAULTS["train"]["optimizer"]
    optimizer = {"name": optimizer} if isinstance(optimizer, str) else optimizer
    if not isinstance(optimizer, dict):
        problems.add(locate("train.optimizer"), f"expected {{ name = \"adamw\", lr = 1e-3 }}, got {describe_value(optimizer)}")
        return None
    name = optimizer.get("name", defaults["name"])
    if name not in OPTIMIZERS:
        problems.add(locate("train.optimizer.name"), unknown_name_message("optimizer", name, sorted(OPTIMIZERS)))
        return None
    resolved = {"name": name, "lr": defaults["lr"], "weight_decay": defaults["weight_decay"]}
    if name == "sgd":
        resolved["momentum"] = 0.9
    for key, value in optimizer.items():
        if key == "name":
            continue
        if key not in OPTIMIZERS[name]:
            problems.add(locate(f"train.optimizer.{key}"), _unknown_key(key, OPTIMIZERS[name], f"{name} optimizer "))
        elif not _is_number(value) or not math.isfinite(value) or value < 0:
            problems.add(locate(f"train.optimizer.{key}"), f"expected a finite number >= 0, got {describe_value(value)}")
        else:
            resolved[key] = float(value)
    return resolved


def _resolve_device(device, locate, problems):
    valid = isinstance(device, str) and (device in ("auto", "cpu", "cuda") or device.startswith("cuda:"))
    if not valid:
        problems.add(locate("train.device"), f'expected "auto", "cpu", "cuda" or "cuda:N", got {describe_value(device)}')
    return device


def _resolve_eval(evaluation, catalogue, locate, problems):
    for key in evaluation:
        if key not in SECTION_DEFAULTS["eval"]:
            problems.add(locate(f"eval.{key}"), _unknown_key(key, SECTION_DEFAULTS["eval"], "eval."))
    inference = _resolve_inference(evaluation.get("inference", SECTION_DEFAULTS["eval"]["inference"]), locate, problems)
    refs = evaluation.get("metrics")
    if not isinstance(refs, list) or not refs:
        problems.add(locate("eval.metrics"), f"expected a non-empty list of metric names, got {describe_value(refs)}")
        return {"metrics": [], "primary": None, "inference": inference}
    metrics = [_resolve_component(catalogue, "metric", "eval.metrics", ref, locate, problems) for ref in refs]
    names = [m["name"] for m in metrics if m]
    primary = evaluation.get("primary") or (names[0] if names else None)
    if names and primary not in names:
        problems.add(locate("eval.primary"), f"{primary!r} is not one of eval.metrics: {', '.join(names)}")
    return {"metrics": metrics, "primary": primary, "inference": inference}


INFERENCE_KEYS = {"stored": ("mode",), "whole": ("mode", "scale"), "slide": ("mode", "scale", "crop", "stride")}
MAX_INFERENCE_SIZE = 8192
INFERENCE_EXAMPLE = '{ mode = "slide", scale = [2048, 512], crop = 512, stride = 341 }'


def _resolve_inference(inference, locate, problems):
    """``eval.inference`` (segbench/engine/inference.py): ``stored``, ``whole`` with an
    optional ``scale`` = [long, short], or ``slide`` with ``crop`` and ``stride`` (an
    integer or [h, w]) too; sizes are stored as [h, w], ``scale`` as [long, short]."""
    key = "eval.inference"
    if not isinstance(inference, dict) or not isinstance(inference.get("mode"), str) or inference["mode"] not in INFERENCE_KEYS:
        where, value = (f"{key}.mode", inference.get("mode")) if isinstance(inference, dict) else (key, inference)
        problems.add(locate(where), f"expected mode = 'stored', 'whole' or 'slide', e.g. {key} = {INFERENCE_EXAMPLE}; "
                                    f"got {describe_value(value)}")
        return inference
    mode, resolved = inference["mode"], {"mode": inference["mode"]}
    for name, value in inference.items():
        if name not in INFERENCE_KEYS[mode]:
            users = [repr(m) for m, keys in INFERENCE_KEYS.items() if name in keys]
            problem = (f"mode {mode!r} has no {name} (only {' and '.join(users)} uses it; to compare modes, ablate whole tables: "
                       f"\"{key}\" = [{{ mode = \"whole\", ... }}, {{ mode = \"slide\", ... }}])") if users else \
                _unknown_key(name, INFERENCE_KEYS["slide"], f"{key}.")
            problems.add(locate(f"{key}.{name}"), f"{problem}; valid for mode {mode!r}: {', '.join(INFERENCE_KEYS[mode])}")
        elif name != "mode":
            resolved[name] = _inference_size(value, name, f"{key}.{name}", locate, problems)
    if mode == "whole":
        resolved.setdefault("scale", None)
    if mode == "slide":
        _check_windows(resolved, key, locate, problems)
    return resolved


def _inference_size(value, name, key, locate, problems):
    """[long, short] for ``scale``; [h, w] from an integer or a pair for ``crop`` and ``stride``."""
    pair = [value, value] if name != "scale" and isinstance(value, int) else value
    if isinstance(pair, list) and len(pair) == 2 and all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_INFERENCE_SIZE for v in pair):
        return sorted(pair, reverse=True) if name == "scale" else pair
    shape = "[LONG, SHORT] (the image is rescaled, keeping its aspect ratio, to fit)" if name == "scale" else "an integer or [H, W]"
    problems.add(locate(key), f"expected {shape} of integers in 1..{MAX_INFERENCE_SIZE}, got {describe_value(value)}")
    return None


def _check_windows(resolved, key, locate, problems):
    """Slide windows must be given, cover every pixel (stride <= crop) and fit the scale."""
    crop, stride, scale = resolved.get("crop"), resolved.get("stride"), resolved.get("scale")
    for name in ("crop", "stride"):
        if name not in resolved:
            problems.add(locate(f"{key}.{name}"), f"mode 'slide' needs {name} (an integer or [H, W]), e.g. {key} = {INFERENCE_EXAMPLE}")
    if crop and stride and any(s > c for s, c in zip(stride, crop)):
        problems.add(locate(f"{key}.stride"), f"expected at most crop = {crop} on each side (a larger stride leaves pixels no window covers), got {stride}")
    if crop and scale and max(crop) > scale[0]:
        problems.add(locate(f"{key}.crop"), f"expected at most the scale's long side {scale[0]} (no rescaled image is larger, so the window "
                                            f"would never slide), got {crop}")


def _unknown_key(key, valid, prefix=""):
    message = f"unknown key {prefix}{key}"
    close = difflib.get_close_matches(key, list(valid), n=1)
    if close:
        message += f"; did you mean {prefix}{close[0]}?"
    return message + f" Valid: {', '.join(valid)}"
