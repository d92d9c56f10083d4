#!/usr/bin/env bash
# Re-runs the fault table of issue #11 for the kinds tests/crash*.rs do not cover:
# corrupt bundles, kill -9 during export, concurrency, hostile third-party trees.
# Prints one line per kind (trials, clean, bad) and one line per bad outcome with what
# reproduces it; exits 1 if any trial was bad. Seeded: the same SEED draws the same
# offsets, delays and start offsets.
#
# usage: scripts/fault-campaign.sh [IMGPORT] [SEED] [KINDS]
#   IMGPORT defaults to target/release/imgport, SEED to 11, KINDS to all (or a comma
#   list of corrupt-bundles,kill9-export,two-imports,export-vs-import,two-exports,
#   hostile-trees). Needs root (the sample MN has device nodes and owners).
#   FAULT_WORK=DIR keeps the scratch area in a new directory under DIR (bad trials'
#   directories stay; clean ones are removed).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
imgport=$(realpath "${1:-$here/target/release/imgport}")
seed=${2:-11}
kinds=${3:-all}
if [ -n "${FAULT_WORK:-}" ]; then
  mkdir -p "$FAULT_WORK"; work=$(mktemp -d "$FAULT_WORK/run.XXXXXX")
  echo "scratch: $work" >&2
else
  work=$(mktemp -d "${TMPDIR:-/tmp}/imgport-fault.XXXXXX")
  trap 'rm -rf "$work"' EXIT
fi
python3 "$here/scripts/fault-campaign.py" "$imgport" "$work" "$seed" "$here" "$kinds"
