#!/usr/bin/env bash
# Create or refresh the project virtual environment (.venv) with the tested
# stack. Idempotent: a second run with unchanged requirements only checks.
#
# Environment:
#   VENV=.venv               where the environment lives
#   PYTHON=python3           interpreter used to create it (>= 3.9)
#   IMDD_SKIP_TORCH=1        keep the torch already in the venv (e.g. CUDA)
#   IMDD_SKIP_APT=1          do not apt-get install chromium (report browser test)
#   IMDD_WHEEL_CACHE=DIR     where the compiled mmcv wheel is kept
#                            (default ~/.cache/imdd-mm/wheels)
set -euo pipefail

cd "$(dirname "$0")/../.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
CACHE=$(realpath -m "${IMDD_WHEEL_CACHE:-$HOME/.cache/imdd-mm/wheels}")
MMCV_VERSION=2.1.0
STEP="start"

fail() {
  echo "" >&2
  echo "setup_env: step '$STEP' failed." >&2
  case "$STEP" in
    venv) echo "  fix: install Python >= 3.9 with venv support (Debian: apt-get install python3-venv), or set PYTHON=/path/to/python3." >&2 ;;
    chromium) echo "  fix: apt-get install chromium (or set IMDD_SKIP_APT=1 to skip; the browser test then skips)." >&2 ;;
    torch) echo "  fix: check that pip reaches PyPI (pip index versions torch); for a CUDA build install torch yourself and rerun with IMDD_SKIP_TORCH=1." >&2 ;;
    mmcv-*) echo "  fix: mmcv $MMCV_VERSION is compiled from source and needs a C++20 compiler (Debian: apt-get install build-essential) and ~10 minutes on 2 cores; see the log above. Delete $CACHE to force a rebuild." >&2 ;;
    *) echo "  fix: see the pip output above; rerun 'make install' once the cause is fixed (the step is idempotent)." >&2 ;;
  esac
  exit 1
}
trap fail ERR

STEP=venv
if [ ! -x "$VENV/bin/python" ]; then
  echo "==> creating $VENV with $PYTHON"
  "$PYTHON" -c 'import sys; assert sys.version_info >= (3, 9), sys.version'
  "$PYTHON" -m venv "$VENV"
fi
PY="$(cd "$VENV" && pwd)/bin/python"   # absolute: the mmcv build changes directory
PIP=("$PY" -m pip --disable-pip-version-check -q)

STEP=chromium
# The HTML report is checked in a real headless browser (Debian's chromium).
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && [ "${IMDD_SKIP_APT:-0}" != "1" ]; then
    echo "==> chromium (for the HTML report's browser check)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "note: no chromium found; the report's browser test will be skipped (apt-get install chromium)"
  fi
fi

STAMP="$VENV/.imdd_mm_stamp"
HASH=$(cat requirements/*.txt setup.py tools/misc/setup_env.sh | sha256sum | cut -c1-16)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$HASH" ] && \
   "$PY" -c 'import imdd_mm, mmcv.ops' >/dev/null 2>&1; then
  echo "==> $VENV is up to date"
  exit 0
fi

STEP=build-tools
echo "==> build tools"
"${PIP[@]}" install -r requirements/build.txt

STEP=torch
if [ "${IMDD_SKIP_TORCH:-0}" != "1" ]; then
  echo "==> torch"
  "${PIP[@]}" install -r requirements/torch.txt
fi

STEP=mmcv-check
have_mmcv() {
  "$PY" - <<PYEOF >/dev/null 2>&1
import mmcv, mmcv.ops
assert mmcv.__version__ == "$MMCV_VERSION"
PYEOF
}
if ! have_mmcv; then
  TORCH_TAG=$("$PY" -c 'import torch; print(torch.__version__.replace("+", "_"))')
  WHEEL_DIR="$CACHE/mmcv-$MMCV_VERSION-torch$TORCH_TAG"
  if ! ls "$WHEEL_DIR"/mmcv-*.whl >/dev/null 2>&1; then
    STEP=mmcv-download
    echo "==> building mmcv $MMCV_VERSION with ops for torch $TORCH_TAG (about 10 minutes on 2 cores)"
    SRC=$(mktemp -d)
    "${PIP[@]}" download --no-deps --no-binary :all: "mmcv==$MMCV_VERSION" -d "$SRC"
    tar -xzf "$SRC"/mmcv-$MMCV_VERSION.tar.gz -C "$SRC"
    STEP=mmcv-patch
    # torch >= 2.10 headers need C++20; mmcv 2.1.0 hard-codes c++17.
    sed -i 's/c++17/c++20/g' "$SRC/mmcv-$MMCV_VERSION/setup.py"
    STEP=mmcv-build
    if command -v nvcc >/dev/null 2>&1 && "$PY" -c 'import torch,sys; sys.exit(0 if torch.cuda.is_available() else 1)'; then
      export FORCE_CUDA=1
    fi
    mkdir -p "$WHEEL_DIR.tmp"
    (cd "$SRC/mmcv-$MMCV_VERSION" && MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} \
      "$PY" -m pip --disable-pip-version-check -q wheel --no-build-isolation --no-deps -w "$WHEEL_DIR.tmp" .)
    rm -rf "$WHEEL_DIR" && mv "$WHEEL_DIR.tmp" "$WHEEL_DIR"   # atomic: no half-built cache
    rm -rf "$SRC"
  fi
  STEP=mmcv-install
  echo "==> installing mmcv from $WHEEL_DIR"
  "${PIP[@]}" install --no-deps --force-reinstall "$WHEEL_DIR"/mmcv-*.whl
  "${PIP[@]}" install addict mmengine==0.10.7 "opencv-python-headless>=4.8" pyyaml yapf packaging
fi

STEP=openmmlab
echo "==> OpenMMLab stack and runtime requirements"
"${PIP[@]}" install -r requirements/mminstall.txt -r requirements/runtime.txt -r requirements/tests.txt

STEP=imdd_mm
echo "==> imdd_mm (editable)"
"${PIP[@]}" install --no-deps --no-build-isolation -e .

STEP=import-check
"$PY" -c 'import imdd_mm, mmcv.ops; print("imdd_mm", imdd_mm.__version__, "ready")'
echo "$HASH" > "$STAMP"
