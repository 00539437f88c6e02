#!/usr/bin/env bash
# The retrieval-head run on all three roots (the shipped model) and two calibration folds (each holds one group of no-landmark
# collections and the six-class second collection out of training), one after the other on both cores.
# Resumable: rerun; a finished run is skipped, a started one continues with --resume. All runs share one
# frozen-feature store (~35 min of one-time work on 2 idle cores); then each epoch takes about a minute. Then:
#   landmark export runs/all3-e10 --out models/NEW --format onnx --target-precision 0.99
#   landmark calibrate runs/foldA runs/foldB --out reports/calibration --export-dir models/NEW
set -u
cd "$(dirname "$0")/.."
PY="env PYTHONPATH=. OMP_NUM_THREADS=2 ${PY:-.venv/bin/python}"
DATA="../shared/data/world_landmarks ../shared/data/landmarks_extra ../shared/data/landmarks_negatives"
RECIPE="--model timm:tf_efficientnet_lite0 --strategy partial --train-stages 1 --feature-views 1 --lr 1e-3 --batch-size 64 --num-workers 0 --embedding-dim 512 --metric-loss subcenter-arcface"
SIX="wonders12_kaggle_sivanujan:colosseum wonders12_kaggle_sivanujan:taj_mahal wonders12_kaggle_sivanujan:machu_picchu wonders12_kaggle_sivanujan:chichen_itza wonders12_kaggle_sivanujan:christ_the_redeemer wonders12_kaggle_sivanujan:great_wall_of_china"
run() {  # NAME EPOCHS [options]
  local name=$1 epochs=$2; shift 2
  if [ -f "runs/$name/curves.png" ]; then echo "runs/$name is finished"; return; fi
  if [ -d "runs/$name/state" ]; then $PY train_accelerate.py --resume "runs/$name" > "runs/$name.log" 2>&1; return; fi
  # shellcheck disable=SC2086
  $PY train_accelerate.py --data $DATA $RECIPE --epochs "$epochs" --output-dir "runs/$name" "$@" > "runs/$name.log" 2>&1
}
run foldA 10 --exclude $SIX archstyle3_tianmingliu kodak24_ffdnet clothing_small_grigorev sunhays80_selfexsr intel_scenes_luangtatipsy faces_nomask_chandrikadeb7
run foldB 10 --exclude $SIX bsds500_bids museomim_melidborkin hybridstyles_bakjunheepark imagenet_samples_elischwartz gcompris_debian urban100_selfexsr
run all3-e10 10
echo chain done
