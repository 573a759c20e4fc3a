"""The regression gate, baselines and result-set comparison.

- ``save_baseline(results_dir, output)``: the per-seed values of every metric and cost
  field of a result set, to a JSON file (``segbench baseline save``).
- ``run_gate(results_dir, baseline_path, rules)``: one check per rule x baseline variant;
  ``GateResult.exit_code`` is 0 (pass) or 1 (regression) (``segbench gate``).
- ``compare_results(dir_a, dir_b)``: the same variants across two result sets, with
  differences, CIs, p-values and marks (``segbench compare``).
- ``gate_text`` / ``gate_markdown`` / ``gate_junit`` and ``compare_text`` /
  ``compare_markdown`` render them; ``parse_rule`` reads ``METRIC:max_drop=X`` rules.

Bad input raises :class:`segbench.errors.SegbenchError` (exit code 2).

Names are imported on first use: the suite loader needs only :mod:`.rules`, and the
statistics pull in numpy and scipy. Nothing here imports torch or matplotlib
(tests/test_layering.py); pandas comes only with the statsmodels tests of ``compare``.
"""

from __future__ import annotations

from ..lazy import lazy_exports

_EXPORTS = {
    "Rule": "rules", "RuleError": "rules", "parse_rule": "rules", "parse_rules": "rules", "read_gate_table": "rules",
    "Baseline": "baseline", "save_baseline": "baseline", "load_baseline": "baseline",
    "ResultSet": "results", "load_results": "results",
    "Check": "checks", "GateResult": "checks", "run_gate": "checks", "build_checks": "checks",
    "Comparison": "compare", "compare_results": "compare",
    "seed_comparison": "seeds",
    "gate_text": "render", "gate_markdown": "render", "gate_junit": "render",
    "compare_text": "render", "compare_markdown": "render", "escape_markdown": "render", "write_file": "render",
}
__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
