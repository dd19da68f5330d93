"""Patch-pair accuracy of Liu CNN weights on patches cut from the synthetic dev set (a different
blur model from training: thin-lens disk PSFs, depth-threshold and segment Gaussians, occlusion-aware
compositing; photos from the BSDS500 test split). Closer to the paper's validation on real
multi-focus patches than the held-apart Gaussian-blur patches of the training recipe.

A 16x16 window is a labelled example when frame A's focus map is 1 on the whole window and frame B's
is 0 (or the reverse) and the sharp patch has variance > 25 on 0..255; both orders are scored.

Run (heavy: take the shared lock)::

    flock /tmp/mfif-heavy.lock python benchmarks/liu_cnn_patch_accuracy.py --data runs/devset/pairs \
        --mat ../shared/reference/liu-cnn/cnnmodel-slight.mat
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def dev_patches(folder: Path, per_pair: int, seed: int):
    from mfif.decision import luminance
    from mfif.io import read_image, read_stack
    from mfif.synth.liu_patches import window_variance

    rng = np.random.default_rng(seed)
    a_list, b_list, labels = [], [], []
    for fa in sorted(folder.glob("*_A.png")):
        name = fa.name[:-6]
        fb = folder / f"{name}_B.png"
        ma, mb = folder / "focus" / f"{name}_A.png", folder / "focus" / f"{name}_B.png"
        if not (fb.is_file() and ma.is_file() and mb.is_file()):
            continue
        grey = luminance(read_stack([fa, fb]).images) * 255.0
        fa_map, fb_map = read_image(ma)[0] > 0.5, read_image(mb)[0] > 0.5

        def full(m):
            c = np.zeros((m.shape[0] + 1, m.shape[1] + 1))
            c[1:, 1:] = m.cumsum(0).cumsum(1)
            return (c[16:, 16:] - c[:-16, 16:] - c[16:, :-16] + c[:-16, :-16]) == 256

        a_sharp = full(fa_map) & full(~fb_map) & (window_variance(grey[0]) > 25)
        b_sharp = full(fb_map) & full(~fa_map) & (window_variance(grey[1]) > 25)
        for ok, label in ((a_sharp, 1), (b_sharp, 0)):
            pos = np.argwhere(ok)
            if len(pos) == 0:
                continue
            pos = pos[rng.choice(len(pos), min(per_pair, len(pos)), replace=False)]
            for y, x in pos:
                a_list.append(grey[0, y:y + 16, x:x + 16])
                b_list.append(grey[1, y:y + 16, x:x + 16])
                labels.append(label)
    return np.stack(a_list), np.stack(b_list), np.array(labels)


def accuracy(net, a, b, labels) -> float:
    import torch

    correct = 0
    with torch.inference_mode():
        for s in range(0, len(a), 1024):
            ta = torch.from_numpy(a[s:s + 1024] / 255.0).float()[:, None]
            tb = torch.from_numpy(b[s:s + 1024] / 255.0).float()[:, None]
            y = torch.from_numpy(labels[s:s + 1024])
            correct += int((net(ta, tb).argmax(1) == y).sum()) + int((net(tb, ta).argmax(1) == 1 - y).sum())
    return correct / (2 * len(a))


def main(argv=None) -> int:
    from mfif.models.liu_cnn.network import build_liu_cnn

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--mat")
    p.add_argument("--per-pair", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json")
    args = p.parse_args(argv)
    a, b, labels = dev_patches(Path(args.data), args.per_pair, args.seed)
    nets = {"cnn-slight (ours)": build_liu_cnn("slight", pretrained=True),
            "cnn (ours)": build_liu_cnn("original", pretrained=True)}
    if args.mat:
        nets = {"cnn-slight (authors)": build_liu_cnn("slight", args.mat), **nets}
    out = {"examples": 2 * len(a)}
    for name, net in nets.items():
        out[name] = accuracy(net.eval(), a, b, labels)
        print(f"{name}: {out[name]:.4f} on {2 * len(a)} examples", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
