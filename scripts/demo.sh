#!/usr/bin/env bash
# The evonas demo on Fashion-MNIST: train a supernet, score, search, correct the gap, export.
# Rerunning continues where a previous run stopped (each step resumes or reuses results).
set -euo pipefail
RUN=${1:-runs/demo}
EVONAS=${EVONAS:-.venv/bin/evonas}
EPOCHS=${EPOCHS:-6}
step() { printf '\n== %s\n' "$*"; }

step "1/4 train the supernet ($EPOCHS epochs, uniform single-path sampling)"
if [ -f "$RUN/supernet.pt" ]; then
  echo "already trained: $RUN/supernet.pt"
elif [ -f "$RUN/checkpoints/last.pt" ]; then
  $EVONAS train-supernet --run "$RUN" --resume
else
  $EVONAS train-supernet --space macro-fmnist --run "$RUN" --epochs "$EPOCHS"
fi

step "2/4 score a handful of sampled sub-networks (inherited weights, BN recalibrated)"
$EVONAS eval --run "$RUN" --sample 8 --seed 1 | tee "$RUN/demo_eval.txt"

step "3/4 the same sub-networks without BN recalibration (what recalibration changes)"
$EVONAS eval --run "$RUN" --sample 8 --seed 1 --no-recalibrate

step "4/4 export the best of them as a standalone PyTorch module"
best=$(awk 'NR > 1 {print $3, $1}' "$RUN/demo_eval.txt" | sort -rn | head -1 | cut -d' ' -f2)
$EVONAS export --run "$RUN" --arch "$best"
echo
echo "done: run directory $RUN (evonas eval --run $RUN --arch $best)"
