"""Suite files: TOML -> validated :class:`Suite` -> expanded :class:`Variant` list.

Every problem in a suite is collected and reported at once, each with where it came from
(``ablate."model.upsampler"[2]``), the bad value and what would be valid.

Which keys exist, their types, valid values and defaults are declared once, in
:mod:`segbench.schema`; this module applies that declaration (and the checks that need the
components: names, parameters, compatibility, metrics named by other keys).
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from . import __version__
from .components import Catalogue, fits, metric_direction, unknown_name_message
from .design import SeedDesign, StatsSettings, margin_metric_problems, seed_design, stats_settings
from .errors import SegbenchError, SuiteError
from .format import format_value
from .gate.rules import COST_FIELDS, direction_problem, gate_rules, higher_is_better, unknown_metric_problem
from .params import check_params, describe_value
from .plugins import locate_plugin, plugin_file_contents, shipped_plugin_files
from .schema import (AUGMENT, COMPONENT_SLOTS, EVAL, INFERENCE, MAX_NAME_LENGTH, NO_DEFAULT, OPTIMIZER, SECTIONS, SETTING_SECTIONS, SUITE,
                     TRAIN, ListOf, Mapping, Settings, Table, Text, augment_problems, resolve, resolve_value, section_defaults,
                     unknown_key_message)

# The schema (segbench/schema.py) declares every key; these are what the loader needs of it.
TOP_LEVEL_KEYS = SUITE.names
SECTION_DEFAULTS = section_defaults()  # read only: copied before use


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
    # [report] exporters: the opt-in exporters (reporter names) that also receive the results.
    report_exporters: tuple = ()
    # The resolved `seeds`, [stats], [gate] and [report]: every key the schema declares, given
    # or its default (design, stats, gate_rules and report_exporters are read off them).
    settings: dict = field(default_factory=dict)

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
    return path, text, parse_suite_text(path, text)


def parse_suite_text(path: Path, text: str) -> dict:
    """The suite file ``path``'s ``text`` as TOML; a syntax error names the file."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        where = "" if "line" in str(exc) else f" (the file ends at line {len(text.splitlines())})"
        raise SuiteError(path, [f"TOML syntax error: {exc}{where}"]) from None


def load_suite(path, catalogue_loader, extra_plugins=(), overrides=None, text=None) -> Suite:
    """Read, validate and expand a suite file.

    ``catalogue_loader(plugins, base_dir)`` returns the component catalogue (so the suite's
    own ``plugins`` list is honoured); ``overrides`` maps dotted keys to values, applied
    on top of the file (``--set train.epochs=1``). ``text``: the file's content as read
    elsewhere (a worker gets it in ``suite.source``), so the file itself is not read.
    """
    path, text, raw = read_suite_file(path) if text is None else (Path(path), text, parse_suite_text(Path(path), text))
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
    # What a worker needs to load it again wherever it runs, not from this directory: the
    # absolute path (the suite's own plugins are found next to it) and the text as read here.
    # Local plugin files travel by content: a worker needs the installed packages, not these files.
    source = {"path": os.path.abspath(path), "text": text, "plugins": extra_plugins, "overrides": overrides,
              "plugin_files": plugin_file_contents(extra_plugins + suite_plugins)}
    text = _note_overrides(text, overrides)
    design = header["design"]
    return Suite(path, header["name"], header["description"], list(design.seeds), header["plugins"], variants, baseline_id, text, catalogue,
                 source, gate_rules=header["gate"], design=design, stats=header["stats"], report_exporters=header["report"],
                 settings=header["settings"])


def load_suite_source(source: dict, catalogue_loader) -> Suite:
    """The suite as the driver loaded it, from its ``suite.source``, wherever this runs: its
    text and absolute path, its plugins and overrides, and its local plugin files by
    content (``plugin_files``), so that neither the suite file nor those need exist here."""
    with shipped_plugin_files(source.get("plugin_files")):
        return load_suite(source["path"], catalogue_loader, extra_plugins=source["plugins"], overrides=source["overrides"],
                          text=source.get("text"))


# --set KEY=VALUE, as if the suite file said KEY = VALUE. KEY is a TOML dotted key; whether
# a dotted setting name in [ablate] or a baseline is quoted (ablate."model.upsampler") or
# not makes no difference. What each top-level key is, from the schema:
OVERRIDE_EXAMPLES = {key.name: key.example for key in SUITE.keys}  # for messages
TABLE_KEYS = tuple(k.name for k in SUITE.keys if isinstance(k.type, (Table, Settings)))  # a table value replaces the whole table
WHOLE_VALUE_KEYS = tuple(k.name for k in SUITE.keys if isinstance(k.type, (Text, ListOf)))  # no keys inside to set
FACTOR_TABLES = tuple(k.name for k in SUITE.keys if k.type.holds(Settings))  # keys are dotted setting names: ablate."model.upsampler"


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
    in_sections = [f"{section}.{head}" for section, table in SECTIONS.items() if head in table.names]
    if in_sections:
        return f"unknown key {head}; did you mean {in_sections[0]}? Valid: {', '.join(TOP_LEVEL_KEYS)}"
    return unknown_key_message(head, TOP_LEVEL_KEYS)


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
            problems.add(key, unknown_key_message(key, TOP_LEVEL_KEYS))
    name = raw.get("name", path.stem)
    name_problem = suite_name_problem(name)
    if name_problem:
        problems.add("name", name_problem)
        name = "suite"
    description = raw.get("description", "")
    if problem := SUITE["description"].problem(description):
        problems.add("description", problem)
    return {"name": name, "description": str(description), "plugins": _read_plugins(raw, problems), **_read_settings(raw, problems)}


# Top-level keys resolved by the schema alone, each into a Suite's settings.
SETTINGS_KEYS = ("seeds", "stats", "gate", "report")


def _read_settings(raw, problems) -> dict:
    """``seeds``, [stats], [gate] and [report] resolved by their declarations, and what is
    read off them: the seed design, the statistical settings, the gate rules, the exporters."""
    settings, valid = {}, set()
    for key in SETTINGS_KEYS:
        settings[key], found = _resolve_top_level(key, raw)
        _add_all(problems, found)
        if not found:
            valid.add(key)
    design, stats, exporters = SeedDesign.fixed(SUITE["seeds"].default), StatsSettings(), ()
    if "seeds" in valid:
        design, found = seed_design(settings["seeds"])
        _add_all(problems, found)
    if "stats" in valid:
        stats = stats_settings(settings["stats"])
    rules, found = gate_rules(settings["gate"])  # beside an unknown key too: every problem at once
    _add_all(problems, found)
    if "report" in valid:
        exporters = tuple(settings["report"]["exporters"])  # whether such a reporter is installed is the reporters' business
    return {"design": design, "stats": stats, "gate": rules, "report": exporters, "settings": settings}


def _resolve_top_level(name, raw) -> tuple:
    """One top-level key resolved by its declaration: ``(value, problems)``."""
    key = SUITE[name]
    value = raw[name] if name in raw else (None if key.default is NO_DEFAULT else copy.deepcopy(key.default))
    return resolve_value(key, value, name)


def _add_all(problems, found):
    for where, message in found:
        problems.add(where, message)


def suite_name_problem(name) -> str | None:
    """The name becomes the results folder ``<output>/<name>``: it must be one ordinary
    path component, so that no suite writes over another's folder or outside ``-o``."""
    valid = f"a folder name of 1 to {MAX_NAME_LENGTH} characters without slashes or control characters, not '.' or '..'"
    if not isinstance(name, str):
        return f"expected {valid}, got {describe_value(name)}"
    if not SUITE["name"].type.accepts(name):
        return f"expected {valid}, got {describe_value(name[:120])}{' (truncated)' if len(name) > 120 else ''}"
    return None


def _read_plugins(raw, problems):
    plugins = raw.get("plugins", [])
    if problem := SUITE["plugins"].problem(plugins):
        problems.add("plugins", problem)
        return []
    return plugins


def _check_gate_metrics(rules, variants, catalogue, problems):
    """A gate rule must name a metric some variant computes, or a cost field, and guard it
    in the direction that is worse for it."""
    if not rules or not variants:
        return
    metrics = list(dict.fromkeys(m["name"] for v in variants for m in v.config["eval"]["metrics"]))
    for rule in rules:
        problem = unknown_metric_problem(rule, metrics + list(COST_FIELDS))
        if problem is None and rule.metric in metrics:
            problem = _metric_rule_direction_problem(rule, catalogue.get("metric", rule.metric))
        elif problem is None:
            problem = direction_problem(rule, higher_is_better(rule.metric))
        if problem:
            problems.add("gate.rules", problem)


def _metric_rule_direction_problem(rule, component):
    """The rule guards the metric in the direction its scores show (a perfect prediction
    against a wrong one), so that a wrongly declared direction is not carried into the
    hint; the preflight refuses that declaration, naming the fix."""
    from .component_checks import probed_direction  # imports torch: only for gate rules on metrics

    declared = metric_direction(component)
    probed = probed_direction(component)
    if probed is None or probed[0] == declared:
        return direction_problem(rule, declared)
    checked, perfect, wrong = probed
    problem = direction_problem(rule, checked)
    note = (f"metric {component.name!r} is registered with higher_is_better={declared}, but a perfect prediction scores "
            f"{perfect:.4g} and a wrong one {wrong:.4g}: register it with higher_is_better={checked}")
    return f"{problem} ({note})" if problem else None


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
    _check_grid_leaves_variants_alone(explicit, grid, problems)
    variants, seen = [], {}
    for (variant_label, variant_overrides), combination in itertools.product(explicit, _combinations(grid)):
        overrides = variant_overrides + combination
        label = _crossed_label(variant_label, variant_overrides, combination)
        config = copy.deepcopy(base)
        for where, key, value in overrides:
            _set_path(config, key, value)
        resolved = resolve_config(config, catalogue, problems, origins={key: where for where, key, _ in overrides})
        if resolved is None:
            factors = {key: value for _, key, value in overrides}
            unresolved.append(Variant(id="", label=label, factors=factors, config={}, versions={}))
            continue
        variant = _make_variant(resolved, label, overrides, catalogue)
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
    explicit, labels = [], {}
    for index, table in enumerate(tables):
        table = dict(table)
        label = table.pop("label", None)
        if label is not None and label in labels:
            problems.add(f"variants[{index}].label", f"{label!r} is the label of variants[{labels[label]}] too; give each variant its own")
        labels.setdefault(label, index)
        overrides = []
        for key, value in _flatten(table).items():
            where = f"variants[{index}].{key}"
            if _check_dotted_key(key, where, problems):
                overrides.append((where, key, value))
        explicit.append((label, overrides))
    return explicit or [(None, [])]


def _check_grid_leaves_variants_alone(explicit, grid, problems):
    """[ablate] is crossed with each [[variants]] table: a setting both make would be the
    grid's in every variant, and the variant's own silently lost. Refuse it, saying how."""
    for label, overrides in explicit:
        for where, key, value in overrides:
            for factor in grid:
                grid_key = factor[0][1]
                if _overlaps(key, value, grid_key):
                    problems.add(where, f'[ablate] sets "{grid_key}" in every variant, so this variant\'s own {key} would be lost; set it '
                                        f"in one place: leave it out of this [[variants]] table (each variant is crossed with the grid), "
                                        f'or leave "{grid_key}" out of [ablate] and write each combination as a [[variants]] table')


def _overlaps(variant_key, variant_value, grid_key) -> bool:
    """Whether the grid's ``grid_key`` sets what ``variant_key = variant_value`` sets: the same
    key, a table around it, or a key inside the variant's (inline component) table."""
    if variant_key == grid_key or variant_key.startswith(grid_key + "."):
        return True
    if not grid_key.startswith(variant_key + "."):
        return False
    inside = grid_key[len(variant_key) + 1:]
    if variant_key in VALUE_TABLES:  # its keys may hold dots: "backbone.layer4"
        return isinstance(variant_value, dict) and inside in variant_value
    node = variant_value
    for part in inside.split("."):
        if not isinstance(node, dict) or part not in node:
            return False  # e.g. the variant picks { name = "transposed" }, the grid its kernel_size: a combination
        node = node[part]
    return True


def _crossed_label(variant_label, variant_overrides, combination) -> str:
    """A [[variants]] table's label, followed by the grid's values when it is crossed with
    [ablate] ("large, upsampler=bilinear"), so that no two variants share a label."""
    if not variant_label:
        return _label({key: value for _, key, value in variant_overrides + combination})
    return ", ".join([str(variant_label), *([_label({key: value for _, key, value in combination})] if combination else [])])


def _combinations(grid):
    return [list(combo) for combo in itertools.product(*grid)] if grid else [[]]


# Settings whose value is a table of names the suite chooses (train.lr_mult): a value, not a level.
VALUE_TABLES = {f"{section}.{key.name}" for section, table in SECTIONS.items() for key in table.keys if isinstance(key.type, Mapping)}


def _flatten(table, prefix=""):
    """Nested tables -> dotted keys; an inline component table (one with a ``name``) and
    a table-valued setting (VALUE_TABLES) are values, not levels."""
    flat = {}
    for key, value in table.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and "name" not in value and dotted not in VALUE_TABLES:
            flat.update(_flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def _check_dotted_key(key, where, problems):
    section = key.split(".", 1)[0]
    if section not in SETTING_SECTIONS or "." not in key:
        valid = ", ".join(f"{s}.<key>" for s in SETTING_SECTIONS)
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
    return Variant(id=config_id(resolved, versions), label=label, factors=factors, config=resolved, versions=versions)


def component_versions(resolved: dict, catalogue) -> dict:
    """segbench's version and that of each distribution providing a component the variant
    uses: a new release of any of them may change results, so it gets new ids."""
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
SUPERVISION_KEYS = tuple(key.name for key in TRAIN.keys if not key.in_id)
# [train] keys added after suites were run: at their default they leave the variant id as
# it was, so finished results and stored baselines keep matching.
ID_NEUTRAL_DEFAULTS = {key.name: key.default for key in TRAIN.keys if key.id_neutral}
# The same for [eval] keys, and for the keys of [train] augment.
EVAL_ID_NEUTRAL_DEFAULTS = {key.name: key.default for key in EVAL.keys if key.id_neutral}
AUGMENT_ID_NEUTRAL_DEFAULTS = {key.name: key.default for key in AUGMENT.keys if key.id_neutral}


def config_id(resolved: dict, versions: dict | None = None) -> str:
    """12 hex digits of a sha256 over the resolved configuration (less SUPERVISION_KEYS)
    and the versions."""
    if isinstance(resolved.get("train"), dict):
        train = {k: v for k, v in resolved["train"].items()
                 if k not in SUPERVISION_KEYS and not (k in ID_NEUTRAL_DEFAULTS and v == ID_NEUTRAL_DEFAULTS[k])}
        if isinstance(train.get("augment"), dict):
            train["augment"] = _without_neutral_defaults(train["augment"], AUGMENT_ID_NEUTRAL_DEFAULTS)
        resolved = {**resolved, "train": train}
    if isinstance(resolved.get("eval"), dict):
        resolved = {**resolved, "eval": {k: v for k, v in resolved["eval"].items()
                                         if not (k in EVAL_ID_NEUTRAL_DEFAULTS and v == EVAL_ID_NEUTRAL_DEFAULTS[k])}}
    canonical = json.dumps({"config": resolved, "versions": versions or {}}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def _without_neutral_defaults(table: dict, neutral: dict) -> dict:
    return {k: v for k, v in table.items() if not (k in neutral and v == neutral[k])}


def _label(factors):
    if not factors:
        return "base"
    short = {key: key.split(".")[-1] for key in factors}
    if len(set(short.values())) < len(short):
        short = {key: key for key in factors}
    return ", ".join(f"{short[key]}={format_value(value)}" for key, value in factors.items())


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
    _check_warmup(train, locate, problems)
    resolved = _resolve_keys(TRAIN, train, "train", locate, problems, special={
        "loss": lambda ref: _resolve_component(catalogue, "loss", "train.loss", ref, locate, problems),
        "optimizer": lambda optimizer: _resolve_optimizer(optimizer, locate, problems),
    })
    if isinstance(resolved.get("augment"), dict):
        for key, message in augment_problems(resolved["augment"]):
            problems.add(locate(f"train.augment.{key}"), message)
    _check_min_lr(resolved, locate, problems)
    return resolved


def _check_min_lr(train, locate, problems):
    """A schedule decays to min_lr: from a higher rate, or it would climb."""
    lr, floor = (train.get("optimizer") or {}).get("lr"), train.get("min_lr")
    if _is_number(lr) and _is_number(floor) and floor > 0 and floor >= lr:
        problems.add(locate("train.min_lr"), f"expected a rate below train.optimizer.lr = {lr:g} (the schedule decays to it), got {floor:g}")


def _resolve_keys(table: Table, given: dict, prefix: str, locate, problems, special=None) -> dict:
    """Each key of ``table`` checked by its declaration (``special`` ones by a function of
    their own), normalised, in declaration order; a key it does not declare is a problem."""
    resolved, found = resolve(table, given, prefix, special)
    for where, message in found:
        problems.add(locate(where), message)
    return resolved


def _check_warmup(train, locate, problems):
    """Warm-up cannot outlast training (when it is counted in epochs)."""
    epochs, warmup = train.get("epochs"), train.get("warmup_epochs")
    if train.get("iterations"):
        return  # epochs are not used; warm-up is checked against the run's length when it starts
    if _is_number(warmup) and isinstance(epochs, int) and math.isfinite(warmup) and warmup > epochs:
        problems.add(locate("train.warmup_epochs"), f"expected at most train.epochs = {epochs} (warm-up is part of training), got {warmup}")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _resolve_optimizer(optimizer, locate, problems):
    """A name, or ``{ name = ..., <setting> = ... }``: the settings that optimiser takes over
    their defaults."""
    optimizer = {OPTIMIZER.tag: optimizer} if isinstance(optimizer, str) else optimizer
    if not isinstance(optimizer, dict):
        problems.add(locate("train.optimizer"), f"expected {OPTIMIZER.example}, got {describe_value(optimizer)}")
        return None
    name = optimizer.get(OPTIMIZER.tag, OPTIMIZER.default_tag)
    if name not in OPTIMIZER.cases:
        problems.add(locate("train.optimizer.name"), unknown_name_message("optimizer", name, sorted(OPTIMIZER.tags)))
        return None
    resolved, settings = OPTIMIZER.defaults(name), OPTIMIZER.cases[name]
    valid = [key for key in settings.names if key != OPTIMIZER.tag]
    for key, value in optimizer.items():
        if key == OPTIMIZER.tag:
            continue
        problem = unknown_key_message(key, valid, f"{name} optimizer ") if key not in valid else settings[key].problem(value)
        if problem:
            problems.add(locate(f"train.optimizer.{key}"), problem)
        else:
            resolved[key] = settings[key].type.normalise(value)
    return resolved


def _resolve_eval(evaluation, catalogue, locate, problems):
    resolved = _resolve_keys(EVAL, evaluation, "eval", locate, problems, special={
        "metrics": lambda refs: _resolve_metrics(refs, catalogue, locate, problems),
        "inference": lambda inference: _resolve_inference(inference, locate, problems),
    })
    names = [m["name"] for m in resolved["metrics"] if m]
    primary = resolved["primary"]
    if primary is None:
        resolved["primary"] = names[0] if names else None
    elif isinstance(primary, str) and names and primary not in names:
        problems.add(locate("eval.primary"), f"{primary!r} is not one of eval.metrics: {', '.join(names)}")
    return resolved


def _resolve_metrics(refs, catalogue, locate, problems) -> list:
    if not isinstance(refs, list) or not refs:
        problems.add(locate("eval.metrics"), f"expected {EVAL['metrics'].type.expected()}, got {describe_value(refs)}")
        return []
    return [_resolve_component(catalogue, "metric", "eval.metrics", ref, locate, problems) for ref in refs]


INFERENCE_KEYS = {mode: table.names for mode, table in INFERENCE.cases.items()}


def _resolve_inference(inference, locate, problems):
    """``eval.inference`` (segbench/engine/inference.py): ``stored``, ``whole`` with an
    optional ``scale`` = [long, short], or ``slide`` with ``crop`` and ``stride`` (an
    integer or [h, w]) too; sizes are stored as [h, w], ``scale`` as [long, short]."""
    key = "eval.inference"
    if not isinstance(inference, dict) or not isinstance(inference.get("mode"), str) or inference["mode"] not in INFERENCE_KEYS:
        where, value = (f"{key}.mode", inference.get("mode")) if isinstance(inference, dict) else (key, inference)
        modes = ", ".join(repr(mode) for mode in INFERENCE.tags[:-1]) + f" or {INFERENCE.tags[-1]!r}"
        problems.add(locate(where), f"expected mode = {modes}, e.g. {key} = {INFERENCE.example}; got {describe_value(value)}")
        return inference
    mode, resolved = inference["mode"], {"mode": inference["mode"]}
    for name, value in inference.items():
        if name not in INFERENCE_KEYS[mode]:
            users = [repr(m) for m, keys in INFERENCE_KEYS.items() if name in keys]
            problem = (f"mode {mode!r} has no {name} (only {' and '.join(users)} uses it; to compare modes, ablate whole tables: "
                       f"\"{key}\" = [{{ mode = \"whole\", ... }}, {{ mode = \"slide\", ... }}])") if users else \
                unknown_key_message(name, INFERENCE_KEYS["slide"], f"{key}.")
            problems.add(locate(f"{key}.{name}"), f"{problem}; valid for mode {mode!r}: {', '.join(INFERENCE_KEYS[mode])}")
        elif name != "mode":
            resolved[name] = _inference_size(INFERENCE.cases[mode][name], value, f"{key}.{name}", locate, problems)
    if mode == "whole":
        resolved.setdefault("scale", None)
    if mode == "slide":
        _check_windows(resolved, key, locate, problems)
    return resolved


def _inference_size(size, value, where, locate, problems):
    """[long, short] for ``scale``; [h, w] from an integer or a pair for ``crop`` and ``stride``."""
    problem = size.problem(value)
    if problem:
        problems.add(locate(where), problem)
        return None
    return sorted(value, reverse=True) if size.name == "scale" else [value, value] if isinstance(value, int) else value


def _check_windows(resolved, key, locate, problems):
    """Slide windows must be given, cover every pixel (stride <= crop) and fit the scale."""
    crop, stride, scale = resolved.get("crop"), resolved.get("stride"), resolved.get("scale")
    for name in ("crop", "stride"):
        if name not in resolved:
            problems.add(locate(f"{key}.{name}"), f"mode 'slide' needs {name} (an integer or [H, W]), e.g. {key} = {INFERENCE.example}")
    if crop and stride and any(s > c for s, c in zip(stride, crop)):
        problems.add(locate(f"{key}.stride"), f"expected at most crop = {crop} on each side (a larger stride leaves pixels no window covers), got {stride}")
    if crop and scale and max(crop) > scale[0]:
        problems.add(locate(f"{key}.crop"), f"expected at most the scale's long side {scale[0]} (no rescaled image is larger, so the window "
                                            f"would never slide), got {crop}")

