#!/usr/bin/env bash
# The real-world issue's two trainings (reports/real_world.md), one after the other. Resumable: rerun this script
# after a kill; a finished run is skipped, a started one continues with --resume from its last finished epoch.
# The first run computes the frozen Lite0 features of every photo once (~35 min on 2 idle cores, in the cache dir);
# the cross-source run reuses them and only trains (~6 epochs of the last stage).
set -eu
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DATA="../shared/data/world_landmarks ../shared/data/landmarks_extra"
RECIPE="--model timm:tf_efficientnet_lite0 --strategy partial --train-stages 1 --feature-views 2 --epochs 6 --lr 1e-3 --batch-size 64"
# landmarks_extra's photos of the six classes that world_landmarks also has (all from the Kaggle wonders set), and
# every Intel scene photo (one of no_landmark's four collections)
HELD_OUT="wonders12_kaggle_sivanujan:colosseum wonders12_kaggle_sivanujan:taj_mahal wonders12_kaggle_sivanujan:machu_picchu
  wonders12_kaggle_sivanujan:chichen_itza wonders12_kaggle_sivanujan:christ_the_redeemer wonders12_kaggle_sivanujan:great_wall_of_china
  intel_scenes_luangtatipsy"
run() {  # NAME [extra train_accelerate.py options]
  local name=$1; shift
  if [ -f "runs/$name/curves.png" ]; then echo "runs/$name is finished"; return; fi
  if [ -d "runs/$name/state" ]; then PYTHONPATH=. $PY train_accelerate.py --resume "runs/$name"; return; fi
  # shellcheck disable=SC2086
  PYTHONPATH=. $PY train_accelerate.py --data $DATA $RECIPE --output-dir "runs/$name" "$@"
}
run merged-lite0-partial1
# shellcheck disable=SC2086
run xsource-intel --exclude $HELD_OUT
