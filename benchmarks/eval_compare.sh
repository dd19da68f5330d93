#!/bin/bash
# The comparison harness of issue #17: one `mfif eval` run of METHODS over every dev set with ground
# truth (the 100 dev pairs, the 3-frame `stacks`, the 8-frame `stacks8`, the focal `sweeps`, the
# `halo` set) and the real pairs (mfifb, liu-grayscale, sesf-extra), with PSNR_GT, SSIM_GT, the
# boundary-band metrics (8 px), Q_G_yl and Q_CB; per-item wins are in the report's cells. Writes
# the report to $OUT and a one-table summary (summary.md: mean per method and set, wins) beside it.
#
# Fused images and scores are cached in $CACHE: a re-run computes only what is new, so adding a
# method to the same comparison is one command, e.g.
#   METHODS=sml,gff,laplacian,ba,cnn-slight-authors,ifcnn-max-authors,NEW benchmarks/eval_compare.sh
# Entries of METHODS are method names (`mfif list`), the authors'-weights labels below, or
# LABEL=METHOD[:KEY=VALUE...] (an `mfif eval --variant`); with no plain method name, sml is added.
# DATASETS picks sets (default: all); DEVSET, CACHE, OUT, SHARED, METRICS, GRID as below.
# CACHED_ONLY=1: report only what the cache holds (while slow methods still run elsewhere).
# Needs ../shared and the dev set (with halo/):
#   python -m mfif.cli synth --devset --source ../shared/data/train/bsds500 -o scratch/devset
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${SHARED:-../shared}
DEVSET=${DEVSET:-scratch/devset}
CACHE=${CACHE:-scratch/eval-cache}
OUT=${OUT:-benchmarks/results/eval-compare}
METHODS=${METHODS:-sml,gff,laplacian,ba,cnn-slight-authors,ifcnn-max-authors}
DATASETS=${DATASETS:-pairs stacks stacks8 sweeps halo mfifb liu-grayscale sesf-extra}
METRICS=${METRICS:-PSNR_GT,SSIM_GT,PSNR_band,SSIM_band,Q_G_yl,Q_CB}
GRID=${GRID:-pair_002,halo_00,halo_01,halo_stack_02,flower}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # this checkout's mfif, not an installed one

# the authors' released weights, as named in benchmarks/eval_learned.sh
declare -A AUTHORS=(
  [cnn-slight-authors]="cnn-slight:weights=$SHARED/reference/liu-cnn/cnnmodel-slight.mat"
  [ifcnn-max-authors]="ifcnn-max:weights=$SHARED/reference/ifcnn/weights/IFCNN-MAX.pth"
  [ifcnn-mean-authors]="ifcnn-mean:weights=$SHARED/reference/ifcnn/weights/IFCNN-MEAN.pth"
  [ba-initial]="ba:refine=false"
)
methods=() variants=()
IFS=, read -ra entries <<< "$METHODS"
for m in "${entries[@]}"; do
  if [[ -n "${AUTHORS[$m]:-}" ]]; then variants+=(--variant "$m=${AUTHORS[$m]}")
  elif [[ "$m" == *=* ]]; then variants+=(--variant "$m")
  else methods+=("$m"); fi
done
data=()
for d in $DATASETS; do
  case "$d" in
    mfifb|liu-grayscale|sesf-extra) data+=(--data "$SHARED/data/mf-real/$d") ;;
    *) data+=(--data "$DEVSET/$d") ;;
  esac
done
((${#methods[@]})) || methods=(sml)  # (without --methods, mfif eval would run every classical method)

nice python -m mfif.cli eval "${data[@]}" --methods "$(IFS=,; echo "${methods[*]}")" "${variants[@]}" --metrics "$METRICS" \
  --grid "$GRID" -o "$OUT" --cache "$CACHE" ${CACHED_ONLY:+--cached-only}
python benchmarks/eval_compare_summary.py "$OUT/results.csv" --out "$OUT/summary.md"
# the grids as JPEG (a fifth of the PNG size) to keep the repository small
python - "$OUT" <<'PY'
import sys
from pathlib import Path
import cv2
for png in Path(sys.argv[1]).glob("grid_*.png"):
    cv2.imwrite(str(png.with_suffix(".jpg")), cv2.imread(str(png)), [cv2.IMWRITE_JPEG_QUALITY, 85])
    png.unlink()
PY
