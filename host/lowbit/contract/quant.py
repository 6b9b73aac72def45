"""Stochastic rounding and double sampling (ZipML): the code semantics every layer shares.

A value ``x`` in ``[l_k, l_{k+1}]`` rounds stochastically to ``l_{k+1}`` with probability
``(x - l_k) / (l_{k+1} - l_k)`` and to ``l_k`` otherwise, so ``E[q] = x``. Double sampling draws two
such roundings independently, with level indices ``i1, i2`` in ``{k, k+1}``. The unordered pair is
stored as the single code ``c = i1 + i2`` in ``b + 1`` bits: ``c = 2k`` is the pair ``(l_k, l_k)``,
``c = 2k + 1`` the pair ``(l_k, l_{k+1})``. Hence ``lo = c >> 1``, ``hi = (c + 1) >> 1``, and with
``2^b`` levels there are ``2^(b+1) - 1`` codes.

From a code the engine needs ``m = (l_lo + l_hi) / 2`` and ``e = (l_hi - l_lo)^2 / 4``; the unbiased
least-squares gradient from one code per feature is ``g = m (m.w - y) - e * w`` (docs/zipml.md).
"""

from __future__ import annotations

import numpy as np

from .fixed import CODE_FRAC, CORR_FRAC, LEVEL_FRAC, LEVEL_ONE, rshift_round
from .format import check_bits


def check_finite(x: np.ndarray, what: str = "data") -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0:
        raise ValueError(f"{what} is empty")
    bad = ~np.isfinite(x)
    if bad.any():
        where = np.argwhere(bad)[0]
        raise ValueError(f"{what} contains NaN or inf (first at index {tuple(int(i) for i in where)})")
    return x


def uniform_levels(bits: int) -> np.ndarray:
    """``2^b`` evenly spaced levels down from 1, covering [-1, 1] (float64), exactly representable.

    The spacing is a whole number of the engine's level LSBs (2^-14), ``ceil(2^15 / (2^b - 1))``,
    so the fixed-point levels are *exactly* evenly spaced. That makes the code table affine
    (``m = m0 + c * delta``, ``e`` the same on every odd code), which the bit-serial engine relies
    on; levels rounded from ``linspace(-1, 1)`` would be off by an LSB here and there.

    The set is anchored at +1, so the bottom level is -1 or just below it (at most 127 LSBs, at
    b = 8). +1 must be a level: it is the intercept column's value in every row, and a value that
    is a level is stored exactly. Anchored at -1 instead, the intercept was double-sampled between
    two levels, and its (large) weight turned that variance into a 10x higher loss floor at b = 8
    (``tests/test_sklearn.py``).
    """
    n = 1 << check_bits(bits)
    step = -(-(2 * LEVEL_ONE) // (n - 1))
    return (LEVEL_ONE - step * np.arange(n - 1, -1, -1)) / LEVEL_ONE


def levels_to_fixed(levels: np.ndarray) -> np.ndarray:
    """Levels covering [-1, 1] to the engine's int16 at 2^-14 (an end point within rounding of -1
    or 1 is pinned to it).

    The level set must be sorted (non-decreasing), have a power-of-two length of 2..256, and span
    [-1, 1] so that every normalised value lies between two levels (it may reach past -1 or 1, as
    :func:`uniform_levels` does, by less than 1).
    """
    lv = check_finite(levels, "levels")
    n = lv.size
    if n < 2 or n > 256 or n & (n - 1):
        raise ValueError(f"a level set has 2^b entries (b = 1..8), got {n}")
    if np.any(np.diff(lv) < 0):
        raise ValueError("levels must be sorted in increasing order")
    if lv[0] > -1 + 1e-9 or lv[-1] < 1 - 1e-9 or lv[0] < -2 or lv[-1] > 2 - 1.0 / LEVEL_ONE:
        raise ValueError(f"levels must span [-1, 1] (and stay within int16 at 2^-14), got [{lv[0]}, {lv[-1]}]")
    q = np.rint(lv * LEVEL_ONE).astype(np.int64)
    # An end point within rounding of -1 or 1 is pinned to it, so [-1, 1] stays covered.
    q[0] = min(q[0], -LEVEL_ONE)
    q[-1] = max(q[-1], LEVEL_ONE)
    return q.astype(np.int16)


def fixed_levels_value(levels_q: np.ndarray) -> np.ndarray:
    """The exact values the engine's levels stand for."""
    return np.asarray(levels_q, dtype=np.float64) / LEVEL_ONE


def code_table(levels_q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-code ``(m, e)`` in the engine's fixed point: m at 2^-15 (CODE_FRAC), e at 2^-23 (CORR_FRAC).

    ``m = l_lo + l_hi`` (levels are at 2^-14, so this *is* their mean at 2^-15, exactly) and
    ``e = round_half_up((l_hi - l_lo)^2 / 2^7)`` = ``(hi - lo)^2 / 4`` at 2^-23.
    """
    lq = np.asarray(levels_q, dtype=np.int64)
    c = np.arange(2 * lq.size - 1)
    lo, hi = lq[c >> 1], lq[(c + 1) >> 1]
    m = lo + hi
    d = hi - lo
    e = rshift_round(d * d, 2 * LEVEL_FRAC + 2 - CORR_FRAC)  # (d/2^14)^2 / 4 at 2^-23
    return m, e


def decode_codes(codes: np.ndarray, levels_q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Float ``(m, e)`` per code, from the exact fixed-point tables (for float-side estimators)."""
    m, e = code_table(levels_q)
    return m[codes] / float(1 << CODE_FRAC), e[codes] / float(1 << CORR_FRAC)


def _interval(x: np.ndarray, lv: np.ndarray):
    k = np.clip(np.searchsorted(lv, x, side="right") - 1, 0, lv.size - 2)
    lo, hi = lv[k], lv[k + 1]
    width = hi - lo
    p = np.divide(x - lo, width, out=np.zeros_like(x), where=width > 0)
    return k, np.clip(p, 0.0, 1.0)


def stochastic_round(x: np.ndarray, levels_q: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One unbiased stochastic rounding: level *indices* (int64) of ``x`` in [-1, 1]."""
    lv = fixed_levels_value(levels_q)
    x = np.clip(check_finite(x), -1.0, 1.0)
    k, p = _interval(x, lv)
    return k + (rng.random(x.shape) < p)


def double_sample(x: np.ndarray, levels_q: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Two independent stochastic roundings of each value, as codes ``i1 + i2`` (uint16)."""
    lv = fixed_levels_value(levels_q)
    x = np.clip(check_finite(x), -1.0, 1.0)
    k, p = _interval(x, lv)
    u = rng.random((2,) + x.shape)
    return (2 * k + (u[0] < p) + (u[1] < p)).astype(np.uint16)


def nearest_codes(x: np.ndarray, levels_q: np.ndarray) -> np.ndarray:
    """Deterministic nearest rounding written as codes (both samples equal): the biased baseline."""
    lv = fixed_levels_value(levels_q)
    x = np.clip(check_finite(x), -1.0, 1.0)
    k, p = _interval(x, lv)
    return (2 * (k + (p >= 0.5))).astype(np.uint16)
