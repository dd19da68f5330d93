"""Phase congruency (Kovesi's ``phasecong3``, as modified by Zheng Liu in ``myphasecong3.m``).

Used by the ``Q_P`` fusion metric (Zhao et al. 2007, ZL ``metricZhao``). The computation follows
the modified MATLAB code number for number:

* log-Gabor filters in the frequency domain: ``nscale`` = 4 scales, ``norient`` = 6 orientations,
  minimum wavelength 3, ``mult`` = 2.1, ``sigmaOnf`` = 0.55, angular spread
  ``thetaSigma = pi / norient / dThetaOnSigma`` (1.2), times Kovesi's low-pass (radius 0.45,
  order 15; its coordinates and ``fftshift`` differ from the main grid on odd sizes, as coded);
* per orientation: weighted mean phase, energy ``sum(E MeanE + O MeanO - |E MeanO - O MeanE|)``,
  noise threshold from the median of the smallest-scale energy, ``T = (mu + k sigma) / 1.7``
  (``k`` = 2), computed with *this orientation's* filters (ZL commented out Kovesi's
  ``if o == 1``), frequency-spread weighting (``cutOff`` = 0.5, ``g`` = 10);
* ``PC = sum_o W_o Energy_o / (sum_o sum_s An + eps)``, and the maximum / minimum moments M, m
  of the phase-congruency covariance (``PC_o = W_o Energy_o / sum_s An``), epsilon = 1e-4.

Differences from the MATLAB code: where a pixel has no filter response at all
(``sum_s An == 0``, e.g. a constant image) the per-orientation ``PC_o`` is 0 instead of NaN.
Two rearrangements change only round-off (Q_P agrees with the Octave run to ~1e-11): the noise
model's sums of products of ``real(ifft2(filter))`` are taken in the frequency domain (Parseval),
and the linear part of the energy sum is summed over scales before the product.

The radial filters and the image-independent noise sums depend only on the image size; they are
built once per size (the last size is cached, up to ~4 MP) and shared by the images of one call.
Memory: about 48 bytes per pixel for the bank plus ~10 planes per image being filtered.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.fft

from mfif.errors import InputError

_EPSILON = 1e-4


@dataclass(frozen=True)
class PhaseCongruencyParams:
    """Parameters of ``myphasecong3`` (its defaults, as ``metricZhao`` calls it)."""

    nscale: int = 4
    norient: int = 6
    min_wavelength: float = 3.0
    mult: float = 2.1
    sigma_onf: float = 0.55
    d_theta_on_sigma: float = 1.2
    k: float = 2.0
    cutoff: float = 0.5
    g: float = 10.0


@dataclass(frozen=True)
class _FilterBank:
    """Size-dependent parts of the filter bank. The (nscale, H, W) radial log-Gabor components and
    the angle grid are kept; each orientation's filters are rebuilt from them when used, so the
    bank costs 48 bytes per pixel instead of 8 * nscale * norient = 192."""

    log_gabor: np.ndarray  # (nscale, rows, cols), 0 frequency at [0, 0]
    sintheta: np.ndarray
    costheta: np.ndarray
    em_n: np.ndarray  # (norient,) sum of the squared smallest-scale filter
    sum_an2: np.ndarray  # (norient,) sum over pixels of sum_s ifftFilt_s^2
    sum_aiaj: np.ndarray  # (norient,) sum over pixels of sum_{si<sj} ifftFilt_si ifftFilt_sj

    def filters(self, o: int, params: PhaseCongruencyParams) -> np.ndarray:
        """(nscale, rows, cols) log-Gabor filters of orientation ``o`` (radial x angular)."""
        angl = o * np.pi / params.norient
        theta_sigma = np.pi / params.norient / params.d_theta_on_sigma
        ds = self.sintheta * np.cos(angl) - self.costheta * np.sin(angl)
        dc = self.costheta * np.cos(angl) + self.sintheta * np.sin(angl)
        dtheta = np.abs(np.arctan2(ds, dc))
        spread = np.exp((-dtheta**2) / (2 * theta_sigma**2))
        return self.log_gabor * spread


def _centred_range(n: int) -> np.ndarray:
    """``phasecong3``'s normalised frequency coordinates (+-0.5) for one axis."""
    if n % 2:
        return np.arange(-(n - 1) / 2, (n - 1) / 2 + 1) / (n - 1)
    return np.arange(-n / 2, n / 2) / n


def _lowpass(rows: int, cols: int, cutoff: float, order: int) -> np.ndarray:
    """Kovesi's ``lowpassfilter``: Butterworth ``1 / (1 + (r / cutoff)^(2n))``, ``fftshift``-ed."""
    x = (np.arange(1, cols + 1) - (cols // 2 + 1)) / cols
    y = (np.arange(1, rows + 1) - (rows // 2 + 1)) / rows
    radius = np.sqrt(x[None, :] ** 2 + y[:, None] ** 2)
    return np.fft.fftshift(1.0 / (1.0 + (radius / cutoff) ** (2 * order)))


_CACHE_MAX_PIXELS = 1 << 22  # keep the bank of images up to ~4 MP (<= 200 MB) for the next call


def _filter_bank(rows: int, cols: int, params: PhaseCongruencyParams) -> _FilterBank:
    if rows < 2 or cols < 2:
        raise InputError(f"phase congruency needs an image of at least 2x2 pixels, got {cols}x{rows}")
    if rows * cols <= _CACHE_MAX_PIXELS:
        return _cached_filter_bank(rows, cols, params)
    return _build_filter_bank(rows, cols, params)


def _build_filter_bank(rows: int, cols: int, params: PhaseCongruencyParams) -> _FilterBank:
    p = params
    x = _centred_range(cols)[None, :]
    y = _centred_range(rows)[:, None]
    radius = np.sqrt(x**2 + y**2)
    radius[rows // 2, cols // 2] = 1.0  # avoid log(0); undone below
    theta = np.arctan2(-y, x)
    radius = np.fft.ifftshift(radius)
    theta = np.fft.ifftshift(theta)

    lp = _lowpass(rows, cols, 0.45, 15)
    log_gabor = np.empty((p.nscale, rows, cols))
    for s in range(p.nscale):
        fo = 1.0 / (p.min_wavelength * p.mult**s)
        lg = np.exp((-(np.log(radius / fo)) ** 2) / (2 * np.log(p.sigma_onf) ** 2))
        lg *= lp
        lg[0, 0] = 0.0
        log_gabor[s] = lg

    bank = _FilterBank(log_gabor, np.sin(theta), np.cos(theta),
                       np.empty(p.norient), np.empty(p.norient), np.empty(p.norient))
    for o in range(p.norient):
        filters = bank.filters(o, p)
        bank.em_n[o] = np.sum(filters[0] ** 2)
        # Noise model: sums over pixels of ifftFilt_si * ifftFilt_sj with
        # ifftFilt = real(ifft2(filter)) * sqrt(rows * cols). real(ifft2(H)) = ifft2(H_sym) with
        # H_sym(k) = (H(k) + H(-k)) / 2, so by Parseval sum_x ifftFilt_i ifftFilt_j
        # = sum_k H_sym_i(k) H_sym_j(k): no FFT needed.
        sym = 0.5 * (filters + np.roll(filters[:, ::-1, ::-1], 1, axis=(-2, -1)))
        gram = np.einsum("ixy,jxy->ij", sym, sym)
        bank.sum_an2[o] = np.trace(gram)
        bank.sum_aiaj[o] = np.sum(np.triu(gram, 1))
    for arr in (bank.log_gabor, bank.sintheta, bank.costheta, bank.em_n, bank.sum_an2, bank.sum_aiaj):
        arr.setflags(write=False)
    return bank


_cached_filter_bank = lru_cache(maxsize=1)(_build_filter_bank)


def _median_of_squares(values: np.ndarray) -> np.ndarray:
    """Row-wise MATLAB ``median(values.^2)`` of non-negative values, selecting before squaring
    (squaring keeps the order; an even count averages the two middle squares)."""
    n = values.shape[1]
    if n % 2:
        mid = np.partition(values, n // 2, axis=1)[:, n // 2]
        return mid**2
    part = np.partition(values, (n // 2 - 1, n // 2), axis=1)
    return (part[:, n // 2 - 1] ** 2 + part[:, n // 2] ** 2) / 2


def _orientation_energy(eo: np.ndarray, bank: _FilterBank, o: int, p: PhaseCongruencyParams):
    """Noise-compensated, spread-weighted energy of one image at one orientation.

    ``eo``: (nscale, H, W) complex filter responses (even + i odd). Returns
    (weight * max(Energy - T, 0), sum_s An)."""
    amp = np.abs(eo)
    sum_an = amp.sum(axis=0)
    max_an = amp.max(axis=0)
    sum_eo = eo.sum(axis=0)
    sum_e, sum_o = sum_eo.real, sum_eo.imag
    x_energy = np.sqrt(sum_e**2 + sum_o**2) + _EPSILON
    mean_e = sum_e / x_energy
    mean_o = sum_o / x_energy
    # Energy = sum_s (E_s MeanE + O_s MeanO - |E_s MeanO - O_s MeanE|); the first two terms are
    # linear in (E_s, O_s), so they sum to sumE MeanE + sumO MeanO.
    energy = sum_e * mean_e + sum_o * mean_o
    for sc in range(p.nscale):
        cross = eo[sc].real * mean_o
        cross -= eo[sc].imag * mean_e
        energy -= np.abs(cross, out=cross)

    # noise threshold: Rayleigh model from the median smallest-scale energy
    median_e2n = _median_of_squares(amp[0].reshape(1, -1))[0]
    mean_e2n = -median_e2n / np.log(0.5)
    noise_power = mean_e2n / bank.em_n[o]
    est_noise_energy2 = 2 * noise_power * bank.sum_an2[o] + 4 * noise_power * bank.sum_aiaj[o]
    tau = np.sqrt(est_noise_energy2 / 2)
    est_noise_energy = tau * np.sqrt(np.pi / 2)
    est_noise_sigma = np.sqrt((2 - np.pi / 2) * tau**2)
    threshold = (est_noise_energy + p.k * est_noise_sigma) / 1.7
    energy = np.maximum(energy - threshold, 0.0)

    # penalise narrow frequency spreads
    width = sum_an / (max_an + _EPSILON) / p.nscale
    weight = 1.0 / (1 + np.exp((p.cutoff - width) * p.g))
    return weight * energy, sum_an


def phase_congruency(images, params: PhaseCongruencyParams = PhaseCongruencyParams()):
    """Phase congruency and its covariance moments of one image or a stack of same-size images.

    Args:
        images: (H, W) or (K, H, W) float array (the metric passes grey levels in [0, 255]).
        params: filter-bank parameters (default: those of ``myphasecong3`` / ``metricZhao``).

    Returns:
        ``(pc, M, m)``, each (H, W) or (K, H, W): phase congruency in [0, 1], maximum moment
        (edge strength) and minimum moment (corner strength).
    """
    arr = np.asarray(images, dtype=np.float64)
    single = arr.ndim == 2
    if single:
        arr = arr[None]
    if arr.ndim != 3:
        raise InputError(f"phase_congruency expects (H, W) or (K, H, W) images, got shape {arr.shape}")
    n_img, rows, cols = arr.shape
    p = params
    bank = _filter_bank(rows, cols, p)
    workers = -1  # scipy.fft threads: all cores

    total_energy = np.zeros((n_img, rows, cols))
    total_sum_an = np.zeros((n_img, rows, cols))
    covx2 = np.zeros((n_img, rows, cols))
    covy2 = np.zeros((n_img, rows, cols))
    covxy = np.zeros((n_img, rows, cols))
    image_fft = scipy.fft.fft2(arr, axes=(-2, -1), workers=workers)

    for o in range(p.norient):
        angl = o * np.pi / p.norient
        filters = bank.filters(o, p)  # (S, H, W)
        for i in range(n_img):  # one image at a time: memory ~ nscale complex planes
            eo = scipy.fft.ifft2(image_fft[i] * filters, axes=(-2, -1), workers=workers,
                                 overwrite_x=True)
            energy_o, sum_an = _orientation_energy(eo, bank, o, p)
            total_sum_an[i] += sum_an
            total_energy[i] += energy_o
            # PC_o = W Energy / sum_s An: 0 (not NaN) where there is no response at all
            pc_o = np.divide(energy_o, sum_an, out=np.zeros_like(sum_an), where=sum_an != 0)
            covx = pc_o * np.cos(angl)
            covy = pc_o * np.sin(angl)
            covx2[i] += covx**2
            covy2[i] += covy**2
            covxy[i] += covx * covy

    pc = total_energy / (total_sum_an + _EPSILON)
    covx2 /= p.norient / 2
    covy2 /= p.norient / 2
    covxy /= p.norient
    denom = np.sqrt(covxy**2 + (covx2 - covy2) ** 2) + _EPSILON
    big_m = (covy2 + covx2 + denom) / 2
    small_m = (covy2 + covx2 - denom) / 2
    if single:
        return pc[0], big_m[0], small_m[0]
    return pc, big_m, small_m
