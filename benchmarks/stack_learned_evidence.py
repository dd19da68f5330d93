"""Experiment (issue #16): pairwise learned methods on stacks -- the champion fold (shipped) against
per-frame focus evidence used as the score of the N-frame rule.

    python benchmarks/stack_learned_evidence.py hf-seg|ba DATASET_DIR [DATASET_DIR ...]

Evidence of frame k: the network's p(frame k sharper than the stack mean) per pixel (N passes);
weights (p_k / max_j p_j)^8 in the sharpness-weighted pyramid blend of mfif.stack_rule. Items are
aligned as mfif eval does (mfif.evaluation.stack_items); prints PSNR_GT of laplacian, the champion
fold and the evidence blend per item.
"""
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
torch.set_num_threads(1)
from mfif.dataset_folders import discover
from mfif.io import read_stack, read_image
from mfif.evaluation.stack_items import align_item
from mfif.metrics import METRICS
from mfif.stack_rule import PyramidBlend, auto_levels, champion_decision, nframe_fusion_from_decision
from mfif.stacking import fuse_frames
psnr = METRICS['PSNR_GT'].function

def evidence_blend(frames, pair_score, power=8.0):
    ref = frames.mean(axis=0)
    scores = np.stack([np.asarray(pair_score(f, ref), np.float32) for f in frames])
    best = scores.max(axis=0)
    h, w = best.shape
    blend = PyramidBlend(auto_levels(h, w))
    for f, s in zip(frames, scores):
        blend.add(f, np.power(s / np.maximum(best, 1e-6), power).astype(np.float32))
    return blend.result(), scores

method = sys.argv[1]
items = [it for d in sys.argv[2:] for it in discover(d).items]
if method == 'hf-seg':
    from mfif.models.hourglass.pipeline import load_network, seg_pair_weight, HFSegOptions
    o = HFSegOptions(); net = load_network('seg', o.weights, 'cpu', o.init)
    pair_score = lambda a, b: seg_pair_weight(net, a, b, o.symmetrize)
else:
    from mfif.models.ba.pipeline import load_network, fuse_pair, BAOptions
    o = BAOptions(); inet = load_network('initial', o.weights, 'cpu', o.init)
    bnet = load_network('boundary', o.boundary_weights, 'cpu', o.init) if o.refine else None
    pair_score = lambda a, b: fuse_pair(np.stack([a, b]), o, inet, bnet)['refined']
for it in items:
    st = read_stack(it.sources); gt = read_image(it.ground_truth)
    frames, gtc, _ = align_item(st.images, gt)
    t = time.perf_counter(); lap = fuse_frames(frames, 'laplacian').fused; tl = time.perf_counter() - t
    t = time.perf_counter(); champ = nframe_fusion_from_decision(frames, champion_decision(frames, pair_score)).fused; tc = time.perf_counter() - t
    t = time.perf_counter(); ev, _ = evidence_blend(frames, pair_score); te = time.perf_counter() - t
    r = [psnr(list(frames), x, ground_truth=gtc) for x in (lap, champ, ev)]
    print(f'{it.name} N={len(frames)} laplacian {r[0]:.2f} champion {r[1]:.2f} ({tc:.0f}s) evidence {r[2]:.2f} ({te:.0f}s)', flush=True)
