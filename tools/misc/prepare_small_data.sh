#!/usr/bin/env bash
# Converts the real datasets of ../shared/data with our converters and merges
# them into the Stage-1 corpus of configs/imdd/small/ (evaluation splits
# excluded). Usage: bash tools/misc/prepare_small_data.sh [DATA] [OUT]
set -euo pipefail
DATA=${1:-../shared/data}
OUT=${2:-data/imdd}
PY=${PYTHON:-python}
for src in magnetic_tile neu_det elpv; do
  if [ ! -f "$OUT/$src/captions.jsonl" ]; then
    $PY data_converters/convert.py "$src" --root "$DATA/$src" \
      --out-dir "$OUT/$src" --nproc 2 --seed 0
  fi
done
# Stage 1 sees the train splits only: every val/test image (and any
# byte-identical copy of one) is excluded.
$PY data_converters/build_corpus.py "$OUT/magnetic_tile" "$OUT/neu_det" \
  "$OUT/elpv" --out-dir "$OUT/corpus_small" --no-instances \
  --image-root "magnetic_tile=$DATA/magnetic_tile" "neu_det=$DATA/neu_det" \
  "elpv=$DATA/elpv" \
  --exclude magnetic_tile:val magnetic_tile:test neu_det:val neu_det:test \
  elpv:val elpv:test
