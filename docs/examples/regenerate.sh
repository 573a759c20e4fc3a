#!/usr/bin/env bash
# Regenerate docs/examples/ from real CPU runs of suites/upsampling.toml and
# suites/losses.toml (about 20 minutes on 2 cores; finished runs in results/ are reused).
# Usage, from the repository root after the README's setup:  bash docs/examples/regenerate.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
segbench="${SEGBENCH:-.venv/bin/segbench}"
for suite in upsampling losses; do
  "$segbench" run "suites/$suite.toml" -o results -q
  out="docs/examples/$suite"
  mkdir -p "$out"
  cp "results/$suite/report/summary.md" "results/$suite/report/summary.csv" "results/$suite/report/per_class.csv" \
     "results/$suite/report/runs.csv" "$out/"
  for plot in metrics curves per_class cost predictions; do
    cp "results/$suite/report/plots/$plot.png" "$out/"
  done
done
echo "docs/examples/ regenerated from results/"
