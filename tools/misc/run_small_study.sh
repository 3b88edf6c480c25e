#!/usr/bin/env bash
# The small study of configs/imdd/small/study_spec.py: few-shot training
# files, then (a), (b), (c) at N labelled images per class, each trained for
# the same budget of BUDGET seconds of process CPU time (TimeBudgetHook,
# clock=cpu: fair on a shared machine), then the table. RUNS="a b c" picks
# runs; SEEDS="0 1 2" repeats them: seed S draws the few-shot file
# train_n<N>_seed<S>.json and seeds training (randomness.seed=S); work dirs
# are <run>_n<N> for seed 0 and <run>_n<N>_seed<S> otherwise. A run whose
# work dir holds time_budget.pth is skipped.
#
#   bash tools/misc/prepare_small_data.sh
#   python tools/train.py configs/imdd/small/stage1_small.py   # Stage 1
#   BUDGET=600 bash tools/misc/run_small_study.sh [N ...]      # default 25 50 100 1000
#   SEEDS="1 2" RUNS="a b" TABLE=0 bash tools/misc/run_small_study.sh 50
set -euo pipefail
PY=${PYTHON:-python}
BUDGET=${BUDGET:-240}
ANN=data/imdd/magnetic_tile/annotations
FEW=$ANN/few_shot
NS=${*:-25 50 100 1000}
for seed in ${SEEDS:-0}; do
  $PY data_converters/build_corpus.py --few-shot-coco $ANN/train.json \
    --few-shot $NS --few-shot-normal --out-dir $FEW --seed $seed
done
for seed in ${SEEDS:-0}; do
  suffix=$([ "$seed" = 0 ] || echo "_seed$seed")
  for n in $NS; do
    for key in a b c; do
      cfg=configs/imdd/small/study_$key.py
      case " ${RUNS:-a b c} " in *" $key "*) ;; *) continue ;; esac
      wd=work_dirs/small_study/${key}_n$n$suffix
      [ -f $wd/time_budget.pth ] && continue
      echo "[$(date -u +%FT%TZ)] train $key n=$n seed=$seed -> $wd"
      $PY tools/train.py $cfg --work-dir $wd --cfg-options \
        train_dataloader.dataset.ann_file=$FEW/train_n${n}_seed$seed.json \
        custom_hooks.1.seconds=$BUDGET randomness.seed=$seed
      echo "[$(date -u +%FT%TZ)] done $key n=$n seed=$seed"
    done
  done
done
if [ "${TABLE:-1}" = 1 ]; then
  $PY tools/analysis_tools/benchmark_table.py configs/imdd/small/study_spec.py \
    --out-dir work_dirs/small_study/tables
fi
