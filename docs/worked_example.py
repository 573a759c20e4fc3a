"""Print the worked example of docs/statistics.md: one comparison of a shipped results
folder, decided step by step by segbench's own code, with every number it rests on.

    python docs/worked_example.py docs/examples/losses "loss=ce_dice(beta=0.75)"

docs/statistics.md shows its output in a console block, so ``python docs/console.py
--check`` (a test) fails when the example goes stale: the numbers cannot drift from the
shipped report or from the rule.
"""

from __future__ import annotations

import sys

from segbench.design import SeedDesign, StatsSettings
from segbench.statistics import difference_test, equivalence_test
from segbench.store import ResultStore, find_suite_dir
from segbench.verdicts import judge_family, metric_values


def main(folder: str, label: str) -> None:
    suite_dir = find_suite_dir(folder)
    store = ResultStore(suite_dir.parent, suite_dir.name)
    meta, records = store.load_summary(required=True), store.records()
    primary, baseline_id = meta["primary"], meta["baseline_id"]
    labels = {r["variant_id"]: r["label"] for r in records}
    variant_id = next(vid for vid, name in labels.items() if name == label)
    settings = StatsSettings.from_dict(meta.get("stats"))
    design = SeedDesign.from_dict(meta.get("design"), fallback_seeds=sorted({r["seed"] for r in records}))
    values = metric_values(records, primary)
    candidates = {vid: values[vid] for vid in meta["variant_order"] if vid != baseline_id}
    judged = judge_family(values[baseline_id], candidates, higher_is_better=True, margin=settings.margin_for(primary),
                          design=design, settings=settings)[variant_id]
    diffs = judged.diffs
    difference, equivalence = difference_test(diffs), equivalence_test(diffs, judged.margin)
    n = len(diffs)
    print(f"{label} vs {labels[baseline_id]} on {primary}: {n} paired seeds, margin ±{judged.margin:g}, "
          f"alpha {settings.alpha:g}, {settings.correction} over {len(candidates)} comparisons")
    print("per-seed differences:  " + ", ".join(f"{d:+.4f}" for d in diffs))
    print(f"Δ                      {judged.diff:+.4f}, 95% t interval [{judged.ci_low:+.4f}, {judged.ci_high:+.4f}]")
    print(f"p, paired t-test       {difference['p_t']:.4f}")
    print(f"p, exact sign flips    {difference['p_sign_flip']:.4f} (the smallest {n} seeds can give: {2 / 2 ** n:.4f})")
    print(f"p, the rule's          {judged.p_value:.4f} (the larger); Holm's adjusted p {judged.p_adjusted:.4f}; "
          f"it faced {judged.level:.4f}")
    print(f"equivalence, t-TOST    {equivalence['p_t']:.4f}; sign flips {equivalence['p_sign_flip']:.4f} "
          f"(smallest: {1 / 2 ** n:.4f}); the rule's {judged.p_equivalence:.4f}, faced {judged.equivalence_level:.4f}")
    print(f"P(better)              {judged.p_improve:.2f} [{judged.p_improve_low:.2f}, {judged.p_improve_high:.2f}] "
          "(Clopper-Pearson 95%)")
    mde = f": MDE {judged.mde:.4f}" if judged.mde == judged.mde else ""
    print(f"outcome                {judged.outcome}{mde}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
