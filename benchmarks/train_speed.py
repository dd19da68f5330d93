"""Training speed on this CPU: fp32 vs bf16 autocast vs channels-last, against the matmul peak.

For the IFCNN (fuse rule max) and the hourglass (HF-Seg) networks, one training step =
forward + loss + backward + Adam update on a fixed batch of thin-lens pairs
(``mfif.synth`` recipe ``thinlens``). Four ways to run it:

- ``fp32``: NCHW float32 (what the trainers do today);
- ``fp32+cl``: the network and its input in channels-last memory format;
- ``bf16``: ``torch.autocast("cpu", dtype=torch.bfloat16)`` around forward and loss (weights,
  gradients and the optimizer stay float32);
- ``bf16+cl``: both.

Printed per network and way: samples/s (best of ``--repeats`` timings of ``--steps`` steps
after ``--warmup`` steps, the median beside it; the repeats of the four ways are interleaved, so a change in the load
of a shared machine hits them alike), the step's FLOPs (``torch.utils.flop_counter``, forward + backward),
achieved GFLOP/s, and that as a share of the machine's matmul peak measured in the same process
(``torch.mm`` of two N x N matrices, fp32 and bf16, best of several at the start and at the
end of the run; ``2 N^3`` FLOPs). Speed-ups
are ratios against ``fp32`` from the same run.

bf16 loss check: on fixed weights (the shipped ones when present) and a fixed batch, the loss
under autocast vs fp32, next to the spread of the fp32 loss over ``--noise-batches`` other
batches of the same data (the noise any validation number carries), and the cosine similarity of
the two gradients.

Run on a quiet machine::

    flock /tmp/mfif-heavy.lock nice python benchmarks/train_speed.py --out benchmarks/results/train_speed
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mfif.models.device import matmul_gflops  # noqa: E402
from mfif.models.hourglass.network import HourglassConfig, HourglassNet, build_hourglass  # noqa: E402
from mfif.models.ifcnn.network import IMAGENET_MEAN, IMAGENET_STD, build_ifcnn  # noqa: E402

SHARED_TRAIN = REPO.parent / "shared" / "data" / "train"
WEIGHTS = REPO / "mfif" / "weights"
WAYS = ("fp32", "fp32+cl", "bf16", "bf16+cl")


# ----------------------------------------------------------------------------------------------
# data


def thinlens_batches(count: int, batch: int, size: int, seed: int = 0) -> list[dict]:
    """``count`` batches of thin-lens pairs (photos from ../shared when present, else procedural scenes)."""
    from mfif.synth import recipes as R

    n = count * batch
    if SHARED_TRAIN.is_dir():
        from mfif.synth.datasets import PairDataset

        ds = PairDataset(SHARED_TRAIN, R.ThinLensRecipe(size=size), seed=seed, length=n)
        samples = [ds.sample(i) for i in range(n)]
        frames = np.stack([s.frames for s in samples])
        gt = np.stack([s.gt for s in samples])
        focus = np.stack([s.focus for s in samples])
        source = f"thinlens recipe on {SHARED_TRAIN}"
    else:
        from mfif.synth.thinlens import ThinLens, focal_sweep, random_scene

        fr, g, fo = [], [], []
        for i in range(n):
            scene = random_scene(size, size, seed=seed * 100000 + i, layers=2)
            st = focal_sweep(scene, ThinLens(0.05, 2.8, 2e-5), scene.depths)
            fr.append(st.frames)
            g.append(st.gt)
            fo.append(np.argmin(st.radius, axis=0)[None] == np.arange(2)[:, None, None])
        frames, gt, focus = np.stack(fr), np.stack(g), np.stack(fo).astype(np.float32)
        source = "procedural thin-lens scenes (no ../shared)"
    out = []
    for b in range(count):
        sl = slice(b * batch, (b + 1) * batch)
        out.append({"frames": torch.from_numpy(frames[sl]), "gt": torch.from_numpy(gt[sl]),
                    "focus": torch.from_numpy(focus[sl, 0]), "source": source})
    return out


# ----------------------------------------------------------------------------------------------
# networks and their losses (the trainers' phase-1 losses: IFCNN MSE, HF-Seg 2-class BCE)


class IfcnnTask:
    name = "ifcnn-max"

    def __init__(self):
        path = WEIGHTS / "ifcnn-max.safetensors"
        self.weights = str(path.relative_to(REPO)) if path.is_file() else "random init"
        self.net = build_ifcnn("max", str(path) if path.is_file() else None)
        self.mean = torch.tensor(IMAGENET_MEAN).view(1, 1, 3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD).view(1, 1, 3, 1, 1)

    def inputs(self, batch, channels_last: bool):
        x = (batch["frames"] - self.mean) / self.std
        if channels_last:  # (B, N, 3, H, W) whose (B*N, 3, H, W) view is channels-last
            x = x.flatten(0, 1).contiguous(memory_format=torch.channels_last).view(x.shape)
        return x

    def loss(self, out, batch):
        pred = out * self.std[:, 0] + self.mean[:, 0]
        return F.mse_loss(pred.float(), batch["gt"])


class HourglassTask:
    name = "hf-seg"

    def __init__(self):
        path = WEIGHTS / "hf_seg.safetensors"
        self.weights = str(path.relative_to(REPO)) if path.is_file() else "random init"
        self.net = build_hourglass("seg", str(path)) if path.is_file() else HourglassNet(HourglassConfig("seg"))

    def inputs(self, batch, channels_last: bool):
        x = batch["frames"].flatten(1, 2)  # (B, 6, H, W): A then B
        return x.contiguous(memory_format=torch.channels_last) if channels_last else x

    def loss(self, out, batch):
        logp = F.log_softmax(out.float(), dim=1)
        g = batch["focus"]
        return -(g * logp[:, 0] + (1.0 - g) * logp[:, 1]).mean()


def _step(task, net, opt, x, batch, bf16: bool):
    opt.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        out = net(x)
        loss = task.loss(out, batch)
    loss.backward()
    opt.step()
    return loss


def prepare_way(task, batch, way: str, *, warmup: int) -> dict:
    """A copy of the network set up for ``way``, warmed up, with the FLOPs of one step."""
    import copy

    bf16, cl = way.startswith("bf16"), way.endswith("+cl")
    net = copy.deepcopy(task.net).train()
    if cl:
        net = net.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters(), lr=1e-5)
    x = task.inputs(batch, cl)
    for _ in range(warmup):
        _step(task, net, opt, x, batch, bf16)
    with FlopCounterMode(display=False) as counter:
        _step(task, net, opt, x, batch, bf16)
    return {"net": net, "opt": opt, "x": x, "bf16": bf16, "flops": counter.get_total_flops(), "times": []}


def time_ways(task, batch, *, steps: int, warmup: int, repeats: int) -> dict:
    """Best (and median) step time of every way; the repeats are interleaved (fp32, fp32+cl,
    bf16, bf16+cl, fp32, ...) so a change in machine load hits all ways alike. On a shared machine
    the best time is the one least disturbed by other processes."""
    prepared = {way: prepare_way(task, batch, way, warmup=warmup) for way in WAYS}
    for _ in range(repeats):
        for way, p in prepared.items():
            t0 = time.perf_counter()
            for _ in range(steps):
                _step(task, p["net"], p["opt"], p["x"], batch, p["bf16"])
            p["times"].append((time.perf_counter() - t0) / steps)
    rows = {}
    for way, p in prepared.items():
        t = min(p["times"])
        rows[way] = {"step_s": t, "step_s_median": statistics.median(p["times"]), "step_s_all": p["times"],
                     "samples_per_s": batch["frames"].shape[0] / t,
                     "gflop_per_step": p["flops"] / 1e9, "gflop_per_s": p["flops"] / t / 1e9}
    return rows


def loss_check(task, batches: list[dict]) -> dict:
    """bf16-autocast vs fp32 loss and gradient on batch 0, and the fp32 loss spread over batches."""
    net = task.net.train()

    def loss_and_grad(batch, bf16):
        net.zero_grad(set_to_none=True)
        state = {k: v.clone() for k, v in net.state_dict().items()}  # BatchNorm running stats move in train()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = task.loss(net(task.inputs(batch, False)), batch)
        loss.backward()
        grad = torch.cat([p.grad.flatten() for p in net.parameters() if p.grad is not None])
        net.load_state_dict(state)
        return float(loss.detach()), grad

    l32, g32 = loss_and_grad(batches[0], False)
    l16, g16 = loss_and_grad(batches[0], True)
    others = [loss_and_grad(b, False)[0] for b in batches[1:]]
    spread = statistics.stdev(others) if len(others) > 1 else float("nan")
    return {"loss_fp32": l32, "loss_bf16": l16, "abs_diff": abs(l16 - l32), "rel_diff": abs(l16 - l32) / abs(l32),
            "fp32_loss_std_over_batches": spread, "batches_for_std": len(others),
            "grad_cosine": float(F.cosine_similarity(g32, g16, dim=0))}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--matmul-n", type=int, default=2048)
    p.add_argument("--noise-batches", type=int, default=8)
    p.add_argument("--nets", default="ifcnn,hourglass")
    p.add_argument("--out", default=None, help="write OUT.md and OUT.json")
    args = p.parse_args(argv)
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    batches = thinlens_batches(1 + args.noise_batches, args.batch, args.size)
    peaks = {name: matmul_gflops(args.matmul_n, dtype, repeats=7)
             for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16))}
    print(f"matmul peak ({args.matmul_n}^2, {args.threads} threads): fp32 {peaks['fp32']:.1f} GFLOP/s, "
          f"bf16 {peaks['bf16']:.1f} GFLOP/s", flush=True)
    tasks = {"ifcnn": IfcnnTask, "hourglass": HourglassTask}
    results = {}
    for key in args.nets.split(","):
        task = tasks[key]()
        rows = time_ways(task, batches[0], steps=args.steps, warmup=args.warmup, repeats=args.repeats)
        for way in WAYS:
            r = rows[way]
            r["speedup_vs_fp32"] = rows["fp32"]["step_s"] / r["step_s"]
            r["share_of_peak"] = r["gflop_per_s"] / peaks["bf16" if way.startswith("bf16") else "fp32"]
            print(f"{task.name:10s} {way:8s} {r['samples_per_s']:7.2f} samples/s  {r['gflop_per_s']:7.1f} GFLOP/s "
                  f"({100 * r['share_of_peak']:.0f}% of peak)  x{r['speedup_vs_fp32']:.2f} vs fp32", flush=True)
        check = loss_check(task, batches)
        print(f"{task.name:10s} loss fp32 {check['loss_fp32']:.6f} bf16 {check['loss_bf16']:.6f} "
              f"|diff| {check['abs_diff']:.2e} vs fp32 spread over batches {check['fp32_loss_std_over_batches']:.2e}; "
              f"grad cosine {check['grad_cosine']:.4f}", flush=True)
        results[task.name] = {"weights": task.weights, "ways": rows, "bf16_loss_check": check}
    # the peak again at the end (the load of a shared machine changes): keep the higher of the two
    again = {name: matmul_gflops(args.matmul_n, dtype, repeats=7)
             for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16))}
    print(f"matmul peak at the end: fp32 {again['fp32']:.1f} GFLOP/s, bf16 {again['bf16']:.1f} GFLOP/s", flush=True)
    for k in peaks:
        if again[k] > peaks[k]:
            peaks[k] = again[k]
            for res in results.values():
                for way, r in res["ways"].items():
                    if way.startswith(k):
                        r["share_of_peak"] = r["gflop_per_s"] / peaks[k]
    env = {"torch": torch.__version__, "threads": args.threads, "load_average": list(os.getloadavg()), "cpu": platform.processor() or platform.machine(),
           "batch": args.batch, "size": args.size, "data": batches[0]["source"],
           "command": "python benchmarks/train_speed.py " + " ".join(sys.argv[1:] if argv is None else argv)}
    payload = {"env": env, "matmul_peak_gflops": peaks, "nets": results}
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".json").write_text(json.dumps(payload, indent=2) + "\n")
        out.with_suffix(".md").write_text(render_md(payload))
        print(f"wrote {out.with_suffix('.md')} and .json")
    return 0


def render_md(payload: dict) -> str:
    env, peaks = payload["env"], payload["matmul_peak_gflops"]
    lines = ["# Training step speed: fp32 vs bf16 autocast vs channels-last", "",
             f"`{env['command']}` (under `flock /tmp/mfif-heavy.lock nice`); torch {env['torch']}, "
             f"{env['threads']} threads; batch {env['batch']} x 2 frames, {env['size']}x{env['size']} px; "
             f"data: {env['data']}. Load average at the end (other engineers share the 2 cores): "
             f"{', '.join(f'{v:.1f}' for v in env['load_average'])}.", "",
             f"Matmul peak measured in the same run (best of start and end): fp32 **{peaks['fp32']:.1f}** GFLOP/s, "
             f"bf16 **{peaks['bf16']:.1f}** GFLOP/s.", "",
             "Times: best of the interleaved repeats (median in brackets). The share of peak compares "
             "with the fp32 peak for fp32 ways and the bf16 peak for bf16 ways.", "",
             "| network | way | samples/s | speed-up vs fp32 | GFLOP/step | GFLOP/s | share of matmul peak | step s, all repeats |",
             "|---|---|---|---|---|---|---|---|"]
    for name, res in payload["nets"].items():
        fp32 = res["ways"]["fp32"]
        for way, r in res["ways"].items():
            med = fp32["step_s_median"] / r["step_s_median"]
            lines.append(f"| {name} | {way} | {r['samples_per_s']:.2f} | {r['speedup_vs_fp32']:.2f} ({med:.2f}) | "
                         f"{r['gflop_per_step']:.1f} | {r['gflop_per_s']:.1f} | {100 * r['share_of_peak']:.0f}% | "
                         f"{' '.join(f'{t:.2f}' for t in r['step_s_all'])} |")
    lines += ["", "bf16 loss check (fixed weights and batch; noise = std of the fp32 loss over other batches):", "",
              "| network | weights | loss fp32 | loss bf16 | abs diff | rel diff | fp32 loss std over batches | grad cosine |",
              "|---|---|---|---|---|---|---|---|"]
    for name, res in payload["nets"].items():
        c = res["bf16_loss_check"]
        lines.append(f"| {name} | {res['weights']} | {c['loss_fp32']:.6f} | {c['loss_bf16']:.6f} | {c['abs_diff']:.2e} | "
                     f"{100 * c['rel_diff']:.2f}% | {c['fp32_loss_std_over_batches']:.2e} (n={c['batches_for_std']}) | "
                     f"{c['grad_cosine']:.4f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
