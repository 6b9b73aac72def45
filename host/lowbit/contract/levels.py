"""Level sets for stochastic rounding: uniform, and ZipML's variance-minimising optimal levels.

A value ``a`` between adjacent levels ``l < u`` rounds stochastically to ``u`` with probability
``(a - l) / (u - l)``; the rounding is unbiased and its variance is ``(u - a)(a - l)``. The optimal
level set for a data set minimises the *total* variance ``sum_i (u_i - a_i)(a_i - l_i)`` over its
values (ZipML, "optimal quantization"), which is what :func:`optimal_levels` computes.

Why the optimum lies on data points: with the set of values inside every interval held fixed, the
total variance is *linear* in each level's position (each term is linear in ``l`` and in ``u``). So a
level between two consecutive distinct values can move to one of them without increasing the
variance, and the exact optimum over all real level positions is attained with every level at a
data value or at the endpoints -1 and 1. A dynamic program over the sorted distinct values is
therefore exact; for large data we restrict it to a bounded candidate set (quantiles).

All level sets here are float64, sorted, ``2^b`` long, with first level -1.0 and last level 1.0 (the
engine's level range; :func:`lowbit.contract.quant.levels_to_fixed` turns them into int16).
"""

from __future__ import annotations

import numpy as np

from .format import check_bits
from .quant import check_finite, uniform_levels

#: Values normalised to [-1, 1] may exceed it by float rounding; beyond this it is a caller bug.
_RANGE_TOL = 1e-9


def _check_values(values) -> np.ndarray:
    v = check_finite(values, "values").ravel()
    lo, hi = float(v.min()), float(v.max())
    if lo < -1 - _RANGE_TOL or hi > 1 + _RANGE_TOL:
        raise ValueError(f"values must be normalised to [-1, 1] (lowbit.data.Normalizer), got [{lo:.6g}, {hi:.6g}]")
    return np.clip(v, -1.0, 1.0)


def rounding_variance(values, levels) -> float:
    """Total stochastic-rounding variance ``sum (u - a)(a - l)`` of ``values`` over ``levels``.

    Parameters
    ----------
    values : array_like
        Values in [-1, 1] (any shape).
    levels : array_like
        Sorted levels spanning [-1, 1].

    Returns
    -------
    float
        The sum over all values of ``(u - a)(a - l)``, ``l <= a <= u`` the enclosing levels. Values
        on a level contribute 0.
    """
    v = _check_values(values)
    lv = check_finite(levels, "levels").ravel()
    if lv.size < 2 or np.any(np.diff(lv) < 0) or lv[0] > -1 + _RANGE_TOL or lv[-1] < 1 - _RANGE_TOL:
        raise ValueError("levels must be sorted, at least 2 long, and span [-1, 1]")
    k = np.clip(np.searchsorted(lv, v, side="right") - 1, 0, lv.size - 2)
    return float(np.sum((lv[k + 1] - v) * (v - lv[k])))


def _candidates(v_sorted: np.ndarray, n_levels: int, max_candidates: int) -> np.ndarray:
    """Sorted distinct candidate positions, always including -1 and 1, at most ``max_candidates``."""
    distinct = np.unique(v_sorted)
    if distinct.size + 2 > max_candidates:
        # Quantiles that are data points ("inverted_cdf"), evenly spaced in probability, put the
        # candidates where the data is dense; the uniform grid keeps the sparse tails covered and
        # makes the uniform level set feasible, so the result is never worse than uniform.
        probs = np.linspace(0.0, 1.0, max_candidates - n_levels)
        quant = np.quantile(v_sorted, probs, method="inverted_cdf")
        return np.union1d(quant, uniform_levels(n_levels.bit_length() - 1))
    cand = np.union1d(distinct, [-1.0, 1.0])
    if cand.size < n_levels:
        # Fewer distinct values than levels: every value can sit on a level (zero variance); the
        # spare levels go to grid points so the set keeps 2^b distinct entries.
        grid = np.linspace(-1.0, 1.0, 2 * n_levels)
        spare = np.setdiff1d(grid, cand)[: n_levels - cand.size]
        cand = np.union1d(cand, spare)
    return cand


def optimal_levels(values, bits: int, *, max_candidates: int = 1024) -> np.ndarray:
    """Levels minimising the total stochastic-rounding variance of ``values`` (ZipML's DP).

    Exact dynamic program over sorted candidate positions ``c_0 = -1 < ... < c_{C-1} = 1``: with
    ``cost(i, j) = sum_{c_i <= a <= c_j} (c_j - a)(a - c_i)``, which prefix sums of the count,
    sum and sum of squares of the sorted values give in O(1) per pair as
    ``n (-c_i c_j) + S1 (c_i + c_j) - S2``, ``D_l(j) = min_{i < j} D_{l-1}(i) + cost(i, j)`` is the
    least variance with level ``l`` at ``c_j``, and ``D_{L-1}(C-1)`` the optimum.

    Complexity: O(n log n) to sort the ``n`` values, O(C^2) time and memory for the cost matrix, and
    O(L C^2) time for the DP with ``L = 2^b`` levels (each level one vectorised min over a C x C
    array), O(L C) memory for the back pointers. The candidates are the distinct values (plus -1
    and 1) when there are at most ``max_candidates`` of them -- then the result is the exact
    optimum over *all* real level positions (module docstring) -- else ``max_candidates - 2^b``
    quantiles of the data together with the ``2^b`` uniform levels, which bounds the DP's cost
    independently of ``n`` and guarantees a total variance no larger than the uniform levels'.

    Parameters
    ----------
    values : array_like
        Data already normalised to [-1, 1] (any shape; flattened).
    bits : int
        1..8: ``2^bits`` levels.
    max_candidates : int
        Bound ``C`` on candidate positions (>= 2 * 2^bits).

    Returns
    -------
    ndarray, float64, shape (2^bits,)
        Strictly increasing levels, first -1.0, last 1.0.
    """
    n_levels = 1 << check_bits(bits)
    if isinstance(max_candidates, bool) or not isinstance(max_candidates, (int, np.integer)):
        raise ValueError(f"max_candidates must be an integer, got {max_candidates!r}")
    if max_candidates < 2 * n_levels:
        raise ValueError(f"max_candidates must be at least 2 * 2^bits = {2 * n_levels}, got {max_candidates}")
    v = np.sort(_check_values(values))
    if n_levels == 2:
        return np.array([-1.0, 1.0])
    cand = _candidates(v, n_levels, int(max_candidates))
    C = cand.size
    # Prefix sums at each candidate: statistics of the values <= c_j. Values on a candidate
    # contribute 0 to either adjacent interval, so which side they are counted on does not matter.
    idx = np.searchsorted(v, cand, side="right")
    p0 = idx.astype(np.float64)
    p1 = np.concatenate([[0.0], np.cumsum(v)])[idx]
    p2 = np.concatenate([[0.0], np.cumsum(v * v)])[idx]
    n = p0[None, :] - p0[:, None]
    s1 = p1[None, :] - p1[:, None]
    s2 = p2[None, :] - p2[:, None]
    ci, cj = cand[:, None], cand[None, :]
    cost = -ci * cj * n + (ci + cj) * s1 - s2
    np.maximum(cost, 0.0, out=cost)  # cancellation in the prefix sums can go a hair below 0
    cost[np.tril_indices(C)] = np.inf  # interval (i, j) needs i < j

    D = np.full(C, np.inf)
    D[0] = 0.0  # level 0 at -1
    back = np.zeros((n_levels, C), dtype=np.int32)
    for level in range(1, n_levels):  # a loop over <= 255 levels, each a vectorised C x C min
        M = D[:, None] + cost
        back[level] = np.argmin(M, axis=0)
        D = M[back[level], np.arange(C)]
        # Level `level` can sit no lower than candidate `level` and must leave room above it.
        D[: level] = np.inf
        if level < n_levels - 1:
            D[C - (n_levels - 1 - level):] = np.inf
    j = C - 1
    out = np.empty(n_levels)
    for level in range(n_levels - 1, -1, -1):
        out[level] = cand[j]
        j = back[level, j]
    out[0], out[-1] = -1.0, 1.0
    return out


def make_levels(kind, bits: int, values=None, *, max_candidates: int = 1024) -> np.ndarray:
    """A level set by name: ``"uniform"`` (2^b evenly spaced) or ``"optimal"`` (needs ``values``).

    An array is accepted too and checked (sorted, 2^b long, spanning [-1, 1]).
    """
    bits = check_bits(bits)
    if isinstance(kind, str):
        if kind == "uniform":
            return uniform_levels(bits)
        if kind == "optimal":
            if values is None:
                raise ValueError("optimal levels need the (normalised) data values")
            return optimal_levels(values, bits, max_candidates=max_candidates)
        raise ValueError(f"unknown level kind {kind!r}: expected 'uniform', 'optimal' or an array of levels")
    lv = check_finite(kind, "levels").ravel()
    if lv.size != 1 << bits:
        raise ValueError(f"{bits}-bit levels need {1 << bits} entries, got {lv.size}")
    if np.any(np.diff(lv) < 0):
        raise ValueError("levels must be sorted in increasing order")
    if abs(lv[0] + 1) > _RANGE_TOL or abs(lv[-1] - 1) > _RANGE_TOL:
        raise ValueError(f"levels must span [-1, 1], got [{lv[0]}, {lv[-1]}]")
    return lv.copy()
