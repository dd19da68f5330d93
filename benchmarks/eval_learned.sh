#!/bin/bash
# Regenerates benchmarks/results/eval-learned (every learned method with our shipped weights, the
# authors' released weights where they exist, next to gff and sml), eval-cnn-original (the
# original Liu CNN, slow on CPU, on a subset) and eval-hourglass-stacks (the hourglass N-frame
# strategies on the dev set's three-frame stacks). Results are cached in $CACHE: a re-run only computes
# what is new. Needs ../shared and the synthetic dev set:
#   mfif synth --devset --source ../shared/data/train/bsds500 -o scratch/devset
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${SHARED:-../shared}
DEVSET=${DEVSET:-scratch/devset}
CACHE=${CACHE:-scratch/eval-cache}
OUT=${OUT:-benchmarks/results}
METRICS=Q_MI,Q_G_yl,Q_Y_yl,Q_CB,SSIM,EN,SF,PSNR_GT,SSIM_GT
REAL="--data $SHARED/data/mf-real/liu-grayscale --data $SHARED/data/mf-real/mfifb --data $SHARED/data/mf-real/sesf-extra"

mfif eval $REAL --data "$DEVSET/pairs" \
  --methods gff,sml,cnn-slight,ba,hf-seg,hf-reg,ifcnn-max,ifcnn-mean \
  --variant ba-initial=ba:refine=false \
  --variant hf-reg-near=hf-reg:near=true \
  --variant cnn-slight-authors=cnn-slight:weights=$SHARED/reference/liu-cnn/cnnmodel-slight.mat \
  --variant ifcnn-max-authors=ifcnn-max:weights=$SHARED/reference/ifcnn/weights/IFCNN-MAX.pth \
  --variant ifcnn-mean-authors=ifcnn-mean:weights=$SHARED/reference/ifcnn/weights/IFCNN-MEAN.pth \
  --metrics $METRICS --grid g_01,flower,pair_002 -o "$OUT/eval-learned" --cache "$CACHE"

# the original Liu CNN (~11 s per 520x520 pair on 2 cores): liu-grayscale, sesf-extra and the first 40 dev pairs
mkdir -p scratch/devset-sub/devset-pairs40
for i in $(seq -f "%03g" 0 39); do for t in A B GT; do
  ln -sf "$(realpath "$DEVSET")/pairs/pair_${i}_$t.png" scratch/devset-sub/devset-pairs40/pair_${i}_$t.png; done; done
mfif eval --data $SHARED/data/mf-real/liu-grayscale --data $SHARED/data/mf-real/sesf-extra \
  --data scratch/devset-sub/devset-pairs40 --methods gff,cnn-slight,cnn,ba --variant ba-initial=ba:refine=false \
  --metrics $METRICS --grid g_01,pair_002 -o "$OUT/eval-cnn-original" --cache "$CACHE"

# the dev set's 20 three-frame stacks: each hourglass N-frame strategy as a variant, next to gff
# (hf-seg alone is its default, champion; the order dependence is benchmarks/hourglass_dev.py)
mfif eval --data "$DEVSET/stacks" --methods gff,hf-seg,hf-reg \
  --variant hf-seg-series=hf-seg:nframe_strategy=series --variant hf-seg-nway=hf-seg:nframe_strategy=nway \
  --variant hf-reg-near=hf-reg:near=true \
  --metrics PSNR_GT,SSIM_GT --grid stack_00 -o "$OUT/eval-hourglass-stacks" --cache "$CACHE"

python benchmarks/boundary_band.py --devset "$DEVSET" --cache "$CACHE" \
  --labels gff,sml,cnn-slight,cnn-slight-authors,ba,ba-initial,hf-seg,hf-reg,hf-reg-near,ifcnn-max,ifcnn-max-authors \
  --out "$OUT/boundary_band.md"
{ echo; echo 'The original `cnn` on the first 40 dev pairs (`--dataset devset-pairs40`):'; echo;
  python benchmarks/boundary_band.py --devset "$DEVSET" --cache "$CACHE" --dataset devset-pairs40 \
    --labels gff,cnn-slight,cnn,ba,ba-initial | sed -n '/^| method/,$p'; } >> "$OUT/boundary_band.md"
