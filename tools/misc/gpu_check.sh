#!/usr/bin/env bash
# One prepared GPU check: install the wheelhouse, build mmcv with ops for the
# torch and GPU found, run the GPU tests, then the speed benchmarks.
#
#   tools/misc/make_wheelhouse.sh          # once, on a CPU machine with PyPI
#   tools/misc/gpu_check.sh                # on the GPU machine (one command)
#   tools/misc/gpu_check.sh --dry-run      # anywhere: tiny shapes, no CUDA
#
# Options:
#   --out DIR         results (default: $OUT when set, else work_dirs/gpu_check)
#   --wheelhouse DIR  wheels + mmcv sdist (default .whl)
#   --dry-run         no install, no build: the project venv (or python3),
#                     `pytest -m gpu` (skips without CUDA), benchmarks with
#                     --dry-run (tiny models, CPU)
#   --mmcv-ops cuda|cpu   mmcv ops built with CUDA kernels for the present
#                     compute capability (default), or CPU kernels only
#                     (faster to build; the default FPN pixel decoder needs
#                     no CUDA op)
#   --skip-tests / --skip-bench
#
# Writes to DIR: gpu_check.log (everything), pytest_gpu.txt, inference.json,
# inference.md, training.json, training.md and summary.md (the tables).
# Budget: the whole script is meant to finish within 8 minutes on one
# H100/H200 machine with 16 cores; each step is bounded by `timeout`.
set -uo pipefail
cd "$(dirname "$0")/../.."
REPO=$(pwd)

OUT_DIR=${OUT:-work_dirs/gpu_check}
WHEELS=.whl
DRY=0
MMCV_OPS=cuda
RUN_TESTS=1
RUN_BENCH=1
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT_DIR=$2; shift 2 ;;
    --wheelhouse) WHEELS=$2; shift 2 ;;
    --dry-run) DRY=1; shift ;;
    --mmcv-ops) MMCV_OPS=$2; shift 2 ;;
    --skip-tests) RUN_TESTS=0; shift ;;
    --skip-bench) RUN_BENCH=0; shift ;;
    -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
    *) echo "gpu_check: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
case "$MMCV_OPS" in cuda|cpu) ;; *) echo "gpu_check: --mmcv-ops must be cuda or cpu" >&2; exit 2 ;; esac
mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
LOG="$OUT_DIR/gpu_check.log"
: > "$LOG"
export PYTHONUNBUFFERED=1
STATUS=0
T0=$(date +%s)

say() { echo "[gpu_check +$(( $(date +%s) - T0 ))s] $*" | tee -a "$LOG"; }
step() {  # step NAME SECONDS CMD...: run bounded, log, remember failure
  local name=$1 limit=$2; shift 2
  say "$name"
  timeout "$limit" "$@" >>"$LOG" 2>&1
  local rc=$?
  if [ $rc -ne 0 ]; then
    say "$name FAILED (exit $rc; 124 = over its ${limit}s)"; STATUS=1
  fi
  return $rc
}

if [ "$DRY" = 1 ]; then
  PY=${PYTHON:-}
  [ -n "$PY" ] || { [ -x .venv/bin/python ] && PY=.venv/bin/python || PY=python3; }
  export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
  BENCH_ARGS=(--dry-run)
  say "dry run with $PY (no install, no build, tiny shapes)"
else
  PY=python3
  SITE=/tmp/imdd_site
  say "GPU: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -1)"
  ls "$WHEELS"/*.whl >/dev/null 2>&1 || {
    say "no wheels in $WHEELS: run tools/misc/make_wheelhouse.sh on a CPU machine first"; exit 1; }
  step "install wheels from $WHEELS" 120 "$PY" -m pip install -q --no-index \
    --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$WHEELS"/*.whl || exit 1
  export PYTHONPATH="$REPO:$SITE${PYTHONPATH:+:$PYTHONPATH}"
  MMCV_SRC=$(mktemp -d)
  tar -xzf "$WHEELS"/mmcv-2.1.0.tar.gz -C "$MMCV_SRC" || { say "no mmcv-2.1.0.tar.gz in $WHEELS"; exit 1; }
  # torch >= 2.10 headers need C++20; mmcv 2.1.0 hard-codes c++17
  sed -i 's/c++17/c++20/g' "$MMCV_SRC/mmcv-2.1.0/setup.py"
  CAP=$("$PY" -c 'import torch; print("%d.%d" % torch.cuda.get_device_capability())')
  if [ "$MMCV_OPS" = cuda ]; then
    export FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST="$CAP"
  else
    export FORCE_CUDA=0 MMCV_WITH_OPS=1
  fi
  say "mmcv ops: $MMCV_OPS (compute capability $CAP, $(nproc) jobs)"
  (cd "$MMCV_SRC/mmcv-2.1.0" && MMCV_WITH_OPS=1 MAX_JOBS=$(nproc) \
     step "build mmcv 2.1.0" 420 "$PY" -m pip install -q --no-deps \
       --no-build-isolation --no-cache-dir --target "$SITE" .) || exit 1
  step "import check" 120 "$PY" -c 'import imdd_mm, mmcv.ops, torch; print("imdd_mm", imdd_mm.__version__, "torch", torch.__version__, "cuda", torch.cuda.is_available())' || exit 1
  BENCH_ARGS=()
fi

if [ "$RUN_TESTS" = 1 ]; then
  say "pytest -m gpu"
  timeout 300 "$PY" -m pytest -m gpu tests/test_gpu -q -p no:cacheprovider \
    >"$OUT_DIR/pytest_gpu.txt" 2>&1
  rc=$?
  cat "$OUT_DIR/pytest_gpu.txt" >>"$LOG"
  # 5 = nothing collected/selected; with --dry-run (no CUDA) everything skips
  if [ $rc -ne 0 ] && ! { [ "$DRY" = 1 ] && [ $rc -eq 5 ]; }; then
    say "pytest -m gpu FAILED (exit $rc)"; STATUS=1
  fi
  say "$(tail -1 "$OUT_DIR/pytest_gpu.txt")"
fi

if [ "$RUN_BENCH" = 1 ]; then
  step "inference benchmark" 300 "$PY" benchmarks/bench_inference.py \
    --out "$OUT_DIR" "${BENCH_ARGS[@]}"
  step "training benchmark" 300 "$PY" benchmarks/bench_training.py \
    --out "$OUT_DIR" "${BENCH_ARGS[@]}"
fi

{
  echo "# gpu_check $( [ "$DRY" = 1 ] && echo '(dry run: tiny shapes on the CPU; no GPU figure)' )"
  echo
  echo "$(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), status $([ $STATUS = 0 ] && echo ok || echo FAILED)"
  echo
  [ -f "$OUT_DIR/pytest_gpu.txt" ] && echo "pytest -m gpu: $(tail -1 "$OUT_DIR/pytest_gpu.txt")" && echo
  for f in inference training; do
    [ -f "$OUT_DIR/$f.md" ] && { echo "## $f"; echo; cat "$OUT_DIR/$f.md"; echo; }
  done
} > "$OUT_DIR/summary.md"
cat "$OUT_DIR/summary.md"
say "done in $(( $(date +%s) - T0 ))s, status $STATUS"
exit $STATUS
