#!/usr/bin/env bash
# Regenerate docs/examples/ from real CPU runs of suites/upsampling.toml and
# suites/losses.toml (about 15 minutes on 2 cores). Each example is the whole
# results folder a run writes: records, report, plots and the suite it ran.
# Usage, from the repository root after the README's setup:  bash docs/examples/regenerate.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
segbench="${SEGBENCH:-.venv/bin/segbench}"
for suite in upsampling losses; do
  rm -rf "docs/examples/$suite"
  "$segbench" run "suites/$suite.toml" -o docs/examples -q
  rm -f "docs/examples/$suite/.lock"
done
echo "docs/examples/ regenerated"
