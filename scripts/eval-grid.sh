#!/usr/bin/env bash
# Runs the evaluation grids with simulated agents and copies the summaries and plots into
# docs/results/. Resumable: re-running continues where a killed run stopped (same --out).
#
#   scripts/eval-grid.sh [mbpp|humanevalcomm|classeval|all] [extra synod-eval arguments...]
#
# Environment: DATA (default ../shared/data), OUT (default eval-out), JOBS (default 2),
# SYNOD (the eval binary; default: build the synod-eval example with --release).
set -euo pipefail
cd "$(dirname "$0")/.."
which="${1:-mbpp}"
shift || true
DATA="${DATA:-../shared/data}"
OUT="${OUT:-eval-out}"
JOBS="${JOBS:-2}"
if [[ -z "${SYNOD:-}" ]]; then
  cargo build -p synod-eval --release --example eval
  SYNOD=target/release/examples/eval
  run() { "$SYNOD" "$@"; }
else
  run() { "$SYNOD" eval "$@"; }
fi
grid() {
  local kind="$1" suite="$2"
  shift 2
  local out="$OUT/$kind"
  local t0
  t0=$(date +%s)
  run --suite "$suite" --suite-kind "$kind" --grid --seed 1 --jobs "$JOBS" --out "$out" "$@"
  echo "eval-grid: $kind took $(( $(date +%s) - t0 )) s wall" >&2
  mkdir -p "docs/results/$kind"
  cp "$out/summary.md" "docs/results/$kind/"
  cp "$out"/*.png "docs/results/$kind/" 2>/dev/null || true
}
case "$which" in
  mbpp) grid mbpp "$DATA/mbpp-sanitized/sanitized-mbpp.json" "$@" ;;
  humanevalcomm) grid humanevalcomm "$DATA/humanevalcomm-dev/HumanEvalComm-even.jsonl" "$@" ;;
  classeval) grid classeval "$DATA/classeval/ClassEval_data.json" "$@" ;;
  all)
    grid mbpp "$DATA/mbpp-sanitized/sanitized-mbpp.json" "$@"
    grid humanevalcomm "$DATA/humanevalcomm-dev/HumanEvalComm-even.jsonl" "$@"
    grid classeval "$DATA/classeval/ClassEval_data.json" "$@"
    ;;
  *) echo "usage: $0 [mbpp|humanevalcomm|classeval|all] [args...]" >&2; exit 2 ;;
esac
