"""Plain-text listings for the CLI. Names, descriptions and labels come from suites and
plugins: each goes through ``one_line`` (no escape sequences, no control characters)."""

from __future__ import annotations

import json

from .components import KINDS, metric_direction
from .costs import direction_word
from .text import one_line


def format_components(components) -> str:
    if not components:
        return "(no components installed)"
    lines = []
    for kind in KINDS:
        mine = [c for c in components if c.kind == kind]
        if not mine:
            continue
        lines.append(f"{plural(kind)}:")
        width = max(len(c.name) for c in mine)  # names are identifiers; the rest is any text a plugin wrote
        for component in mine:
            lines.append(f"  {component.name:<{width}}  {one_line(component.description)}  "
                         f"[{one_line(component.provider)} {one_line(component.version)}]")
            params = ", ".join(one_line(p.describe()) for p in component.params.values()) or "(none)"
            lines.append(f"  {'':<{width}}  params: {params}")
            capabilities = _capabilities(component)
            if capabilities:
                lines.append(f"  {'':<{width}}  {capabilities}")
            if kind == "metric":
                lines.append(f"  {'':<{width}}  {_direction(component)}")
        lines.append("")
    return "\n".join(lines).rstrip()


def _direction(component) -> str:
    """The declared direction, with a remark when the metric's scores (or its description)
    contradict it."""
    from .component_checks import direction_remark  # imports torch: only to list metrics

    declared = metric_direction(component)
    remark = direction_remark(component, declared)
    return f"direction: {direction_word(declared)}" + (f" ({one_line(remark)})" if remark else "")


def plural(kind: str) -> str:
    return "losses" if kind == "loss" else f"{kind}s"


def _capabilities(component):
    parts = []
    if component.requires:
        parts.append("requires: " + ", ".join(one_line(item) for item in sorted(component.requires)))
    if component.provides:
        parts.append("provides: " + ", ".join(one_line(item) for item in sorted(component.provides)))
    return "; ".join(parts)


def format_plan(suite) -> str:
    runs = len(suite.variants) * len(suite.seeds)
    design = suite.design
    if design.adaptive:
        count = (f"{len(suite.variants)} variant(s) x {design.min_seeds} to {design.max_seeds} seeds "
                 f"= {len(suite.variants) * design.min_seeds} to {runs} run(s): seeds are added only where a comparison is open")
    else:
        count = f"{len(suite.variants)} variant(s) x {len(suite.seeds)} seed(s) {suite.seeds} = {runs} run(s)"
    lines = [f"suite {one_line(suite.name)} ({one_line(suite.path)})", count, f"statistics: {describe_stats(suite)}", ""]
    for variant in suite.variants:
        mark = "  (baseline)" if variant.id == suite.baseline_id else ""
        lines.append(f"  {variant.id}  {one_line(variant.label)}{mark}")
    return "\n".join(lines)


def describe_stats(suite) -> str:
    stats = suite.stats
    margins = ", ".join(f"{one_line(metric)} ±{margin:g}" for metric, margin in stats.margins)
    margin = f"±{stats.margin:g}" + (f" ({margins})" if margins else "")
    design = f"; {suite.design.describe()}" if suite.design.adaptive else ""
    return (f"{suite.primary} against the baseline, alpha {stats.alpha:g}, correction {stats.correction}, "
            f"equivalence margin {margin}{design}")


FITS, DOES_NOT_FIT = "✓", "·"


def format_matrix(matrix: dict) -> str:
    """Architectures (rows) x upsamplers (columns): which pairs a suite may use."""
    if not matrix:
        return "(no architectures installed)"
    upsamplers = list(next(iter(matrix.values())))
    width = max(len("architecture"), *(len(a) for a in matrix))
    header = f"{'architecture':<{width}}  " + "  ".join(upsamplers)
    lines = [header, "-" * len(header)]
    for architecture, row in matrix.items():
        cells = [f"{(FITS if row[u] else DOES_NOT_FIT):^{len(u)}}" for u in upsamplers]
        lines.append((f"{architecture:<{width}}  " + "  ".join(cells)).rstrip())
    lines.append(f"\n{FITS} fits, {DOES_NOT_FIT} does not (an upsampler fits when the architecture provides what it requires)")
    return "\n".join(lines)


def format_value(value) -> str:
    """A factor's value as a variant label shows it: ``name(k=v, ...)`` for a component
    reference, text as it is, anything else as JSON."""
    if isinstance(value, dict) and "name" in value:
        params = ", ".join(f"{k}={format_value(v)}" for k, v in value.items() if k != "name")
        return f"{value['name']}({params})" if params else str(value["name"])
    if isinstance(value, str):
        return value
    return json.dumps(value)


def format_stats(stats: dict) -> str:
    """``segbench data stats`` as text (the dict is segbench.data.stats'). Class names and
    the dataset's own words pass through ``one_line``: a dataset's text must not reach the
    terminal as escape sequences."""
    dataset = stats["dataset"]
    lines = [
        f"{one_line(dataset['name'])}: {len(stats['classes'])} classes ({one_line(stats['mode'])}), "
        f"ignore_index {stats['ignore_index']}"
    ]
    for role, split in stats["splits"].items():
        sizes = ", ".join(f"{h}x{w}" for h, w in split["sizes"][:4]) + (" ..." if len(split["sizes"]) > 4 else "")
        lines += ["", f"{role}: {split['images']} images ({sizes}), {split['pixels']:,} pixels, "
                      f"{split['ignored_pixels']:,} ignored ({split['ignored_fraction']:.2%})"]
        names = [one_line(c["name"]) for c in split["classes"]]
        width = max(len("class"), *(len(name) for name in names))
        lines.append(f"  {'#':>3}  {'class':<{width}}  {'pixels':>12}  {'share':>7}  {'images':>6}")
        for entry, name in zip(split["classes"], names):
            lines.append(
                f"  {entry['index']:>3}  {name:<{width}}  {entry['pixels']:>12,}  "
                f"{entry['fraction']:>7.2%}  {entry['images']:>6}"
            )
    return "\n".join(lines)
