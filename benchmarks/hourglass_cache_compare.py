"""Partial comparisons of the issue-15 hourglass runs read straight from the `mfif eval` cache (per-item
JSON), for items evaluated so far, against the committed first-wave numbers
(benchmarks/results/eval-learned/results.csv). `python benchmarks/hourglass_cache_compare.py` from the repo root."""
import csv
import glob
import json
import os

import numpy as np

old = {}
for r in csv.DictReader(open("benchmarks/results/eval-learned/results.csv")):
    for m in ("PSNR_GT","SSIM_GT","Q_G_yl","Q_CB"):
        if r.get(m): old[(r["dataset"], r["method"], r["item"], m)] = float(r[m])
def load(ds, m, metric):
    out = {}
    for f in glob.glob(f"scratch/eval-cache/{ds}/{m}/*.json"):
        v = json.load(open(f))["metrics"].get(metric)
        if v is not None: out[os.path.basename(f).rsplit(".",1)[0]] = v
    return out
def shipped(ds, m, metric):
    return {k[2]: v for k, v in old.items() if k[0]==ds and k[1]==m and k[3]==metric}
lines = []
def cmp(ds, metric, x, xname, y, yname):
    ks = sorted(set(x) & set(y))
    if not ks: return
    d = np.array([x[k]-y[k] for k in ks])
    lines.append(f"| {ds} | {metric} | {xname} vs {yname} | {len(ks)} | {np.mean([x[k] for k in ks]):.4f} | {np.mean([y[k] for k in ks]):.4f} | {d.mean():+.4f} | {(d<0).sum()} | {d.min():+.4f} ({ks[int(np.argmin(d))]}) |")
lines += ["| dataset | metric | X vs Y | items | mean X | mean Y | mean X - Y | items X < Y | worst X - Y |", "|---|---|---|---|---|---|---|---|---|"]
for metric in ("PSNR_GT", "SSIM_GT"):
    avg = load("pairs", "average", metric)
    seg_new = load("pairs", "hf-seg-new", metric)
    reg_new = load("pairs", "hf-reg-new", metric); regn_new = load("pairs", "hf-reg-new-near", metric)
    reg1 = load("pairs", "hf-reg-leg1", metric); reg1n = load("pairs", "hf-reg-leg1-near", metric)
    cmp("dev pairs", metric, seg_new, "hf-seg new", shipped("pairs","hf-seg",metric), "hf-seg shipped")
    cmp("dev pairs", metric, seg_new, "hf-seg new", shipped("pairs","sml",metric), "sml")
    cmp("dev pairs", metric, shipped("pairs","hf-seg",metric), "hf-seg shipped", shipped("pairs","sml",metric), "sml")
    cmp("dev pairs", metric, reg_new, "hf-reg new", shipped("pairs","hf-reg",metric), "hf-reg shipped")
    cmp("dev pairs", metric, reg_new, "hf-reg new", avg, "average")
    cmp("dev pairs", metric, shipped("pairs","hf-reg",metric), "hf-reg shipped", avg, "average")
    cmp("dev pairs", metric, reg1, "hf-reg leg 1", avg, "average")
    cmp("dev pairs", metric, reg_new, "hf-reg new", seg_new, "hf-seg new")
    cmp("dev pairs", metric, reg_new, "hf-reg new", shipped("pairs","hf-seg",metric), "hf-seg shipped")
    cmp("dev pairs", metric, regn_new, "hf-reg new + Near", seg_new, "hf-seg new")
    cmp("dev pairs", metric, regn_new, "hf-reg new + Near", shipped("pairs","hf-seg",metric), "hf-seg shipped")
    cmp("dev pairs", metric, regn_new, "hf-reg new + Near", avg, "average")
    cmp("dev pairs", metric, reg1n, "hf-reg leg 1 + Near", avg, "average")
for metric in ("Q_G_yl", "Q_CB"):
    cmp("mfifb", metric, load("mfifb","hf-seg-new",metric), "hf-seg new", shipped("mfifb","hf-seg",metric), "hf-seg shipped")
    cmp("mfifb", metric, load("mfifb","hf-seg-new",metric), "hf-seg new", shipped("mfifb","sml",metric), "sml")
    cmp("mfifb", metric, load("mfifb","hf-reg-new",metric), "hf-reg new", shipped("mfifb","hf-reg",metric), "hf-reg shipped")
    cmp("mfifb", metric, load("mfifb","hf-reg-new",metric), "hf-reg new", load("mfifb","average",metric), "average")
for ds in ("pairs40", "liu-grayscale", "sesf-extra"):
    for metric in (("PSNR_GT","SSIM_GT") if ds=="pairs40" else ("Q_G_yl","Q_CB")):
        g, t, s = (load(ds, m, metric) for m in ("seg-gaussian-data","seg-thinlens-data","sml"))
        cmp(ds, metric, t, "thinlens data", g, "Gaussian data")
        cmp(ds, metric, g, "Gaussian data", s, "sml")
        cmp(ds, metric, t, "thinlens data", s, "sml")
print("\n".join(lines))
