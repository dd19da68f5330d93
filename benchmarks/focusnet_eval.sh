#!/bin/bash
# Regenerates benchmarks/results/focusnet: focusnet next to sml, gff, laplacian, ba and the authors'
# cnn-slight and IFCNN-MAX weights on the dev sets and the real pairs, the boundary band, speed and
# the pcb crop sheet. Fused images are cached in $CACHE (a re-run only computes what is new; a
# retrained focusnet.safetensors invalidates only focusnet's entries). Needs ../shared and
#   mfif synth --devset --source ../shared/data/train/bsds500 -o scratch/devset
# runs/focusnet_init.safetensors: the untrained network (seed 0), e.g. from "python -m mfif.models.train_cli focusnet
#   --out runs/focusnet-init --steps 0 --export runs/focusnet_init.safetensors"
# see mfif/weights/focusnet.md. The learned baselines are slow on 2 shared cores: on the pairs and
# the real pairs focusnet_compare.py takes ba / cnn-slight / IFCNN-MAX from eval-learned/results.csv;
# IFCNN-MAX runs on the 3- and 8-frame stacks, ba and cnn-slight on the 3-frame stacks.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${SHARED:-../shared}
DEVSET=${DEVSET:-scratch/devset}
CACHE=${CACHE:-scratch/eval-cache}
OUT=${OUT:-benchmarks/results/focusnet}
CNN="cnn-slight-authors=cnn-slight:weights=$SHARED/reference/liu-cnn/cnnmodel-slight.mat"
IFCNN="ifcnn-max-authors=ifcnn-max:weights=$SHARED/reference/ifcnn/weights/IFCNN-MAX.pth"
EVAL="python -m mfif.cli eval --cache $CACHE"

INIT="focusnet-init=focusnet:weights=runs/focusnet_init.safetensors"  # the untrained network (ablation)
$EVAL --data "$DEVSET/pairs" --methods focusnet,sml,gff,laplacian --variant "$INIT" \
  --metrics PSNR_GT,SSIM_GT,Q_G_yl,Q_CB --grid pair_002 -o "$OUT/pairs"
$EVAL --data "$DEVSET/stacks" --data "$DEVSET/stacks8" --data "$DEVSET/sweeps" --methods focusnet,sml,gff,laplacian \
  --variant "$INIT" --metrics PSNR_GT,SSIM_GT --grid stack8_00,sweep_04 -o "$OUT/stacks"
$EVAL --data "$SHARED/data/mf-real/mfifb" --data "$SHARED/data/mf-real/liu-grayscale" --data "$SHARED/data/mf-real/sesf-extra" \
  --methods focusnet,sml,gff,laplacian --variant "$INIT" --metrics Q_G_yl,Q_CB --grid g_01,flower -o "$OUT/real"
$EVAL --data "$DEVSET/stacks" --data "$DEVSET/stacks8" --methods focusnet,sml --variant "$IFCNN" \
  --metrics PSNR_GT,SSIM_GT --grid-count 0 -o "$OUT/stacks-ifcnn"
$EVAL --data "$DEVSET/stacks" --methods focusnet,sml,ba --variant "$CNN" --metrics PSNR_GT,SSIM_GT --grid-count 0 \
  -o "$OUT/stacks3-learned"
python benchmarks/focusnet_compare.py "$OUT"/{pairs,real,stacks,stacks-ifcnn}/results.csv --out "$OUT/summary.md"
python benchmarks/boundary_band.py --devset "$DEVSET" --cache "$CACHE" \
  --labels focusnet,sml,gff,laplacian,ba,cnn-slight-authors,ifcnn-max-authors --out "$OUT/boundary_band.md"
# speed (in-process and whole process at 520, same run), 24 MP pair, pcb stack at 100 %
flock /tmp/mfif-heavy.lock python -m mfif.cli bench --methods sml,focusnet,gff,laplacian --sizes 520 --repeats 9 -o "$OUT/bench"
flock /tmp/mfif-heavy.lock python benchmarks/focusnet_cli_time.py --methods focusnet,sml | tee "$OUT/cli_time.txt"
flock /tmp/mfif-heavy.lock python benchmarks/huge_image.py --methods sml,focusnet | tee "$OUT/huge_image.txt"
python benchmarks/pcb_stack.py --methods laplacian,sml,focusnet --out scratch/pcb-focusnet
cp scratch/pcb-focusnet/crop_sheet.png "$OUT/pcb_crop_sheet.png"
