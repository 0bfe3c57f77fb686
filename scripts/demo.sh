#!/usr/bin/env bash
# The evonas demo on Fashion-MNIST: train a supernet, score, search under a FLOPs limit,
# export the top 3, measure and correct the optimization gap, and search with the corrected
# predictor. Rerunning continues where a previous run stopped (every step resumes or reuses
# stored results).
set -euo pipefail
RUN=${1:-runs/demo}
EVONAS=${EVONAS:-.venv/bin/evonas}
EPOCHS=${EPOCHS:-18}  # the default schedule of macro-fmnist (evonas/run/config.py)
PYTHON=${PYTHON:-.venv/bin/python}
step() { printf '\n== %s\n' "$*"; }
# search NAME OPTIONS...: a finished search is kept, an interrupted one continues (--resume), else it starts
search() {
  local name=$1; shift
  if [ -f "$RUN/searches/$name/result.json" ]; then
    echo "already searched: $RUN/searches/$name/result.json"
  elif [ -f "$RUN/store.sqlite" ] && "$PYTHON" -c 'import sys; from evonas.run.store import Store
with Store(sys.argv[1]) as store: sys.exit(0 if store.search_run(sys.argv[2]) else 1)' "$RUN/store.sqlite" "$name"; then
    $EVONAS search --run "$RUN" --name "$name" "$@" --resume
  else
    $EVONAS search --run "$RUN" --name "$name" "$@"
  fi
}
start=$(date +%s)

step "1/8 train the supernet ($EPOCHS epochs, one uniformly sampled path per step)"
if [ -f "$RUN/supernet.pt" ]; then
  echo "already trained: $RUN/supernet.pt"
elif [ -f "$RUN/checkpoints/last.pt" ]; then
  $EVONAS train-supernet --run "$RUN" --resume
else
  $EVONAS train-supernet --space macro-fmnist --run "$RUN" --epochs "$EPOCHS"
fi

step "2/8 score a handful of sampled sub-networks (inherited weights, BN recalibrated)"
$EVONAS eval --run "$RUN" --sample 8 --seed 1

step "3/8 the same sub-networks without BN recalibration (what recalibration changes)"
$EVONAS eval --run "$RUN" --sample 8 --seed 1 --no-recalibrate

step "4/8 evolutionary search under a FLOPs limit (supernet scores, stored as they finish)"
search evolution-s0 --algo evolution --budget 60 --max-flops 3e6 --seed 0

step "5/8 export the top 3 as standalone PyTorch modules, with a report"
$EVONAS export --run "$RUN" --top-k 3

step "6/8 measure the optimization gap: 16 stand-alone anchors, estimators compared with the supernet on held-out splits"
$EVONAS fit-predictor --run "$RUN" --anchors 16 --anchor-epochs 1

step "7/8 search again with the gap-corrected predictor (no forward passes)"
search predictor-evolution-s0 --scorer predictor --algo evolution --budget 2000 --max-flops 3e6 --seed 0

step "8/8 predicted stand-alone accuracy, with intervals, of the anchors' neighbours"
$EVONAS predict --run "$RUN" --arch 12012200 --arch 22222222 --arch 00000000

echo
echo "done in $(( $(date +%s) - start ))s: $RUN (reports: $RUN/exports/top3/report.md, $RUN/predictor/report.md)"
