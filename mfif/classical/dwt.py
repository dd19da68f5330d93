"""Discrete-wavelet-transform fusion (Li, Manjunath, Mitra 1995, with the simple choose-max rule).

Each channel of each frame is decomposed with PyWavelets ``wavedec2``; every detail coefficient is
taken from the frame whose coefficient has the largest absolute value (summed over channels, so
all channels come from one frame); the approximation band is averaged.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pywt

from mfif.errors import InputError
from mfif.result import FusionResult


@dataclass
class WaveletOptions:
    """wavelet: PyWavelets name; levels: decomposition levels (0 = automatic, at most 4);
    border: how the signal is extended past the image border (a PyWavelets signal extension mode:
    ``symmetric``, ``periodization``, ``zero``, ...; the old name ``mode`` still works)."""

    RENAMED_OPTIONS: ClassVar[dict[str, str]] = {"mode": "border"}

    wavelet: str = "db2"
    levels: int = 0
    border: str = "symmetric"


def wavelet_fusion(stack: np.ndarray, options: WaveletOptions | None = None) -> FusionResult:
    """Fuse (N, C, H, W) frames in the wavelet domain; returns fused (C, H, W)."""
    options = options or WaveletOptions()
    n, c, h, w = stack.shape
    try:
        wavelet = pywt.Wavelet(options.wavelet)
    except ValueError:
        raise InputError(f"unknown wavelet '{options.wavelet}' (see pywt.wavelist())") from None
    max_level = pywt.dwt_max_level(min(h, w), wavelet.dec_len)
    levels = options.levels or min(4, max_level)
    levels = max(1, min(levels, max(max_level, 1)))
    # coeffs[frame][channel] = [cA, (cH, cV, cD) per level coarse->fine]
    coeffs = [[pywt.wavedec2(frame[ch].astype(np.float64), wavelet, mode=options.border, level=levels)
               for ch in range(c)] for frame in stack]
    fused_channels = [[np.mean([coeffs[i][ch][0] for i in range(n)], axis=0)] for ch in range(c)]
    finest_activity = None
    for lvl in range(1, levels + 1):
        for band in range(3):
            bands = np.stack([np.stack([coeffs[i][ch][lvl][band] for ch in range(c)]) for i in range(n)])
            activity = np.abs(bands).sum(axis=1)
            choice = np.argmax(activity, axis=0)
            if lvl == levels:
                finest_activity = activity if finest_activity is None else finest_activity + activity
            picked = np.take_along_axis(bands, choice[None, None], axis=0)[0]
            for ch in range(c):
                if band == 0:
                    fused_channels[ch].append([])
                fused_channels[ch][lvl].append(picked[ch])
    fused = np.stack([
        pywt.waverec2([fc[0]] + [tuple(b) for b in fc[1:]], wavelet, mode=options.border)[:h, :w]
        for fc in fused_channels])
    # Decision map for display: which frame has the most finest-level detail energy, at full size.
    decision = np.argmax(finest_activity, axis=0)
    decision = np.repeat(np.repeat(decision, 2, axis=0), 2, axis=1)
    decision = np.pad(decision, ((0, max(0, h - decision.shape[0])), (0, max(0, w - decision.shape[1]))), mode="edge")[:h, :w]
    return FusionResult(fused=np.clip(fused, 0.0, 1.0).astype(np.float32), decision=decision.astype(np.int64),
                        info={"levels": levels})


def wavelet_stream(frames, options: WaveletOptions | None = None) -> FusionResult:
    """Running-reduction form of :func:`wavelet_fusion` (equal up to float rounding): one pass that
    keeps, per detail coefficient, the largest activity and its coefficients, and the sum of the
    approximation bands. ``frames``: ``len`` and ``frames[i]`` -> (C, H, W)."""
    options = options or WaveletOptions()
    n = len(frames)
    try:
        wavelet = pywt.Wavelet(options.wavelet)
    except ValueError:
        raise InputError(f"unknown wavelet '{options.wavelet}' (see pywt.wavelist())") from None
    approx = None
    best: list[list[np.ndarray]] = []
    picked: list[list[np.ndarray]] = []
    finest_best = finest_choice = None
    h = w = c = levels = None
    for i in range(n):
        frame = frames[i]
        if levels is None:
            c, h, w = frame.shape
            max_level = pywt.dwt_max_level(min(h, w), wavelet.dec_len)
            levels = options.levels or min(4, max_level)
            levels = max(1, min(levels, max(max_level, 1)))
        coeffs = [pywt.wavedec2(frame[ch].astype(np.float64), wavelet, mode=options.border, level=levels)
                  for ch in range(c)]
        a = np.stack([coeffs[ch][0] for ch in range(c)])
        approx = a if approx is None else approx + a
        finest = None
        for lvl in range(1, levels + 1):
            if i == 0:
                best.append([])
                picked.append([])
            for band in range(3):
                bands = np.stack([coeffs[ch][lvl][band] for ch in range(c)])
                activity = np.abs(bands).sum(axis=0)
                if lvl == levels:
                    finest = activity if finest is None else finest + activity
                if i == 0:
                    best[lvl - 1].append(activity)
                    picked[lvl - 1].append(bands)
                else:
                    better = activity > best[lvl - 1][band]
                    best[lvl - 1][band][better] = activity[better]
                    picked[lvl - 1][band][:, better] = bands[:, better]
        if finest_best is None:
            finest_best, finest_choice = finest, np.zeros(finest.shape, np.int32)
        else:
            better = finest > finest_best
            finest_best[better] = finest[better]
            finest_choice[better] = i
        del coeffs, frame
    approx /= n
    fused = np.stack([
        pywt.waverec2([approx[ch]] + [tuple(picked[lvl][band][ch] for band in range(3)) for lvl in range(levels)],
                      wavelet, mode=options.border)[:h, :w]
        for ch in range(c)])
    decision = np.repeat(np.repeat(finest_choice, 2, axis=0), 2, axis=1)
    decision = np.pad(decision, ((0, max(0, h - decision.shape[0])), (0, max(0, w - decision.shape[1]))), mode="edge")[:h, :w]
    return FusionResult(fused=np.clip(fused, 0.0, 1.0).astype(np.float32), decision=decision.astype(np.int64),
                        info={"levels": levels})


def wavelet_tile_plan(options: WaveletOptions, shape: tuple[int, ...]):
    """Tile plan (:mod:`mfif.tiling`): ~2 * dec_len * 2^levels on the 2^levels grid; automatic
    levels fixed from the full image."""
    import dataclasses

    from mfif.tiling import TilePlan

    wavelet = pywt.Wavelet(options.wavelet)
    max_level = pywt.dwt_max_level(min(shape[-2:]), wavelet.dec_len)
    levels = options.levels or min(4, max_level)
    levels = max(1, min(levels, max(max_level, 1)))
    return TilePlan(halo=2 * wavelet.dec_len * 2 ** levels, grid=2 ** levels,
                    options=dataclasses.replace(options, levels=levels))
