"""Plain-text listings for the CLI."""

from __future__ import annotations

from .components import KINDS


def format_components(components) -> str:
    if not components:
        return "(no components installed)"
    lines = []
    for kind in KINDS:
        mine = [c for c in components if c.kind == kind]
        if not mine:
            continue
        lines.append(f"{plural(kind)}:")
        width = max(len(c.name) for c in mine)
        for component in mine:
            lines.append(f"  {component.name:<{width}}  {component.description}  [{component.provider} {component.version}]")
            params = ", ".join(p.describe() for p in component.params.values()) or "(none)"
            lines.append(f"  {'':<{width}}  params: {params}")
            capabilities = _capabilities(component)
            if capabilities:
                lines.append(f"  {'':<{width}}  {capabilities}")
        lines.append("")
    return "\n".join(lines).rstrip()


def plural(kind: str) -> str:
    return "losses" if kind == "loss" else f"{kind}s"


def _capabilities(component):
    parts = []
    if component.requires:
        parts.append("requires: " + ", ".join(sorted(component.requires)))
    if component.provides:
        parts.append("provides: " + ", ".join(sorted(component.provides)))
    return "; ".join(parts)


def format_plan(suite) -> str:
    runs = len(suite.variants) * len(suite.seeds)
    lines = [
        f"suite {suite.name} ({suite.path})",
        f"{len(suite.variants)} variant(s) x {len(suite.seeds)} seed(s) {suite.seeds} = {runs} run(s)",
        "",
    ]
    for variant in suite.variants:
        mark = "  (baseline)" if variant.id == suite.baseline_id else ""
        lines.append(f"  {variant.id}  {variant.label}{mark}")
    return "\n".join(lines)


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
