#!/bin/bash
# Issue 15, HF-Seg / HF-Reg: the measurements of benchmarks/results/hourglass_retrain/ (see its
# README.md). Needs ../shared and the dev set (mfif synth --devset --source ../shared/data/train/bsds500
# -o scratch/devset). Weights: the shipped files and the candidates of the training runs
# (training/checkpoints/<run>/, scratch/ablation/<run>/); set SEG_NEW / REG_NEW / ABL_* to others.
# Every step caches its items: a rerun only computes what is new.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${SHARED:-../shared}
DEVSET=${DEVSET:-scratch/devset}
CACHE=${CACHE:-scratch/eval-cache}
OUT=${OUT:-benchmarks/results/hourglass_retrain}
SEG_NEW=${SEG_NEW:-training/checkpoints/hf-seg-thinlens/hf_seg.safetensors}
REG_NEW=${REG_NEW:-training/checkpoints/hf-reg-thinlens/hf_reg.safetensors}
ABL_GAUSS=${ABL_GAUSS:-scratch/ablation/hf-seg-hourglass/hf_seg.safetensors}
ABL_THIN=${ABL_THIN:-scratch/ablation/hf-seg-thinlens/hf_seg.safetensors}
ABL_PAIRS=${ABL_PAIRS:-40}
mkdir -p "$OUT" scratch/devset-sub
MFIF="python -m mfif.cli"

# 1. dev GT pairs: shipped vs new weights next to average and sml
$MFIF eval --data "$DEVSET/pairs" --methods average,sml,hf-seg,hf-reg \
  --variant hf-reg-near=hf-reg:near=true \
  --variant hf-seg-new=hf-seg:weights=$SEG_NEW \
  --variant hf-reg-new=hf-reg:weights=$REG_NEW --variant hf-reg-new-near=hf-reg:weights=$REG_NEW:near=true \
  --metrics PSNR_GT,SSIM_GT -o scratch/eval-hg-dev --cache "$CACHE"

# 2. real pairs (mfifb): Q_G_yl / Q_CB of the new weights (shipped and sml: benchmarks/results/eval-learned)
$MFIF eval --data $SHARED/data/mf-real/mfifb --methods hf-seg \
  --variant hf-seg-new=hf-seg:weights=$SEG_NEW --variant hf-reg-new=hf-reg:weights=$REG_NEW \
  --variant hf-reg-new-near=hf-reg:weights=$REG_NEW:near=true \
  --metrics Q_G_yl,Q_CB -o scratch/eval-hg-real --cache "$CACHE"

# 3. commutativity on the 109 real pairs, without symmetrize
python benchmarks/hourglass_commutativity.py --weights shipped=seg:mfif/weights/hf_seg.safetensors \
  --weights new=seg:$SEG_NEW --jsonl scratch/comm.jsonl --md "$OUT/commutativity.md"

# 4. data ablation: the same net and schedule on the first wave's Gaussian data vs thinlens data,
#    scored on the first $ABL_PAIRS dev pairs and the liu-grayscale + sesf-extra real pairs
rm -rf scratch/devset-sub/pairs$ABL_PAIRS && mkdir -p scratch/devset-sub/pairs$ABL_PAIRS
for i in $(seq -f "%03g" 0 $((ABL_PAIRS - 1))); do for t in A B GT; do
  ln -sf "$(realpath "$DEVSET")/pairs/pair_${i}_$t.png" scratch/devset-sub/pairs$ABL_PAIRS/pair_${i}_$t.png; done; done
$MFIF eval --data scratch/devset-sub/pairs$ABL_PAIRS --data $SHARED/data/mf-real/liu-grayscale \
  --data $SHARED/data/mf-real/sesf-extra --methods sml \
  --variant seg-gaussian-data=hf-seg:weights=$ABL_GAUSS --variant seg-thinlens-data=hf-seg:weights=$ABL_THIN \
  --metrics PSNR_GT,SSIM_GT,Q_G_yl,Q_CB -o scratch/eval-hg-ablation --cache "$CACHE"

python benchmarks/hourglass_report.py --eval benchmarks/results/eval-learned/results.csv \
  --eval scratch/eval-hg-dev/results.csv --eval scratch/eval-hg-real/results.csv \
  --run hf-seg=training/checkpoints/hf-seg-thinlens --run hf-reg=training/checkpoints/hf-reg-thinlens \
  > "$OUT/dev_and_real.md"
python benchmarks/hourglass_report.py --eval scratch/eval-hg-ablation/results.csv --pairs-dataset pairs$ABL_PAIRS \
  --real liu-grayscale --real sesf-extra --compare seg-thinlens-data:seg-gaussian-data --compare seg-gaussian-data:sml \
  --compare seg-thinlens-data:sml --run gaussian=scratch/ablation/hf-seg-hourglass \
  --run thinlens=scratch/ablation/hf-seg-thinlens > "$OUT/ablation.md"
