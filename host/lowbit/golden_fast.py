"""The golden model compiled: :func:`lowbit_sim.golden.run`'s arithmetic, bit for bit, on packed lines.

:mod:`lowbit_sim.golden` states the engine's integer arithmetic in NumPy and stays the spec;
:func:`run_packed` does the same operations in the same int64 / saturating-uint64 types with numba,
reading the copies as the engine does, from their packed lines. Codes are decoded a row group at
a time (:func:`lowbit.fastquant.unpack_rows`, through the one layout function) into a buffer of
about 64K codes and looked up in the code table per use, so memory is the packed copies plus
O(features): no int64 matrix of the data set is ever built. tests/test_golden_fast.py holds it
equal to :func:`lowbit_sim.golden.run` on random configurations (b = 1..8, batch 1..N and > N,
copies, saturating models, residuals and loss).

Why the results are identical and not merely close: every sum is exact in int64 (the bounds are
in docs/golden.md), the roundings (``rnd``), clamps (``sat32``) and the loss's ``>> 16`` and
saturation are the spec's, applied at the same points; integer addition is associative, so the
order of the loops does not matter.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from lowbit.fastquant import geometry, rows_per_group, unpack_rows
from lowbit.contract.fixed import CODE_FRAC, CORR_BITS, CORR_SHIFT, INT32_MAX, INT32_MIN, LOSS_SHIFT, STEP_FRAC
from lowbit.contract.format import LineFormat

from .contract.golden import EngineConfig, GoldenRun

_UINT64_MAX = np.uint64(0xFFFFFFFFFFFFFFFF)
#: Codes decoded at a time (a whole number of row groups).
_GROUP_VALUES = 1 << 16


@njit(inline="always", cache=True)
def _rnd(x, k):
    return (x + (1 << (k - 1))) >> k


@njit(inline="always", cache=True)
def _sat32(x):
    return min(max(x, INT32_MIN), INT32_MAX)


@njit(cache=True)
def _epoch(lines, rows, features, geom, group_rows, tm, te, ncodes, y, batch, step, w, buf, codes, g):
    """One epoch over one copy's ``lines``; updates ``w`` (int64) in place.

    Returns ``(loss, bad)``: the saturated uint64 loss accumulator, and the first out-of-range
    code seen (-1 if none; then the caller raises).
    """
    loss = np.uint64(0)
    lo = 0
    hi = 0  # rows lo .. hi are decoded in ``codes``
    for start in range(0, rows, batch):
        end = min(rows, start + batch)
        g[:] = 0
        for r in range(start, end):
            if r >= hi:
                lo = r
                hi = min(rows, r + group_rows)
                unpack_rows(lines, lo, hi, features, geom, buf, codes)
                for i in range(hi - lo):
                    for j in range(features):
                        if codes[i, j] >= ncodes:
                            return loss, np.int64(codes[i, j])
            c = codes[r - lo]
            dot = np.int64(0)
            for j in range(features):
                dot += tm[c[j]] * w[j]
            res = _sat32(_rnd(dot, CODE_FRAC) - y[r])
            term = np.uint64((res * res) >> LOSS_SHIFT)
            loss = _UINT64_MAX if loss > _UINT64_MAX - term else loss + term
            for j in range(features):
                g[j] += tm[c[j]] * res - _rnd(te[c[j]] * w[j], CORR_SHIFT)
        for j in range(features):
            gs = _sat32(_rnd(g[j], CODE_FRAC))
            w[j] = _sat32(w[j] - _rnd(gs * step, STEP_FRAC))
    return loss, np.int64(-1)


def run_packed(cfg: EngineConfig, lines, labels, table_m, table_e, fmt: LineFormat, *, progress=None) -> GoldenRun:
    """:func:`lowbit_sim.golden.run` on packed copies (what the engine reads); the same result.

    Parameters
    ----------
    cfg : EngineConfig
    lines : ndarray (copies * fmt.lines_per_copy(rows), line_bytes) uint8
        The copies' packed lines, copy ``k`` at line ``k * lines_per_copy`` (``QuantizedDataset.data_lines()``).
    labels : array (rows,)
        int32 labels at 2^-24.
    table_m, table_e : array
        The code table (``lowbit.quant.code_table``).
    fmt : LineFormat
        The lines' format; its bits and features must be the configuration's.
    progress : callable(epoch) or None
        Called after each epoch.

    Raises
    ------
    ValueError
        What ``golden.run`` rejects (configuration, shapes, labels, table, out-of-range codes),
        and lines that do not hold ``cfg.copies`` copies of ``fmt``.
    """
    err = cfg.error(max_features=1 << 24)
    if err.value:
        raise ValueError(f"configuration rejected by the engine: {err.name}")
    if fmt.bits != cfg.bits or fmt.features != cfg.features:
        raise ValueError(f"lines are packed for b={fmt.bits}, F={fmt.features}; the run has b={cfg.bits}, F={cfg.features}")
    per = fmt.lines_per_copy(cfg.rows)
    lines = np.asarray(lines)
    if lines.dtype != np.uint8 or lines.shape != (cfg.copies * per, fmt.line_bytes):
        raise ValueError(f"lines must be ({cfg.copies * per}, {fmt.line_bytes}) uint8 for {cfg.copies} copies "
                         f"of {cfg.rows} rows, got {lines.shape} {lines.dtype}")
    y = np.asarray(labels)
    if y.shape != (cfg.rows,):
        raise ValueError(f"labels must have shape ({cfg.rows},), got {y.shape}")
    y = y.astype(np.int64)
    if y.min() < INT32_MIN or y.max() > INT32_MAX:
        raise ValueError("labels must be int32")
    ncodes = (1 << (cfg.bits + 1)) - 1
    tm = np.asarray(table_m, dtype=np.int64)
    te = np.asarray(table_e, dtype=np.int64)
    if tm.shape[0] < ncodes or te.shape[0] < ncodes:
        raise ValueError(f"code table needs {ncodes} entries for {cfg.bits} bits")
    if np.abs(tm).max() > (1 << 16) or te.min() < 0 or te.max() >= (1 << CORR_BITS):
        raise ValueError(f"code table entries out of range (m is int17, e is uint{CORR_BITS})")
    # Tables padded to every (b+1)-bit value, so a corrupt code indexes in bounds before it is reported.
    tm_full = np.zeros(1 << (cfg.bits + 1), dtype=np.int64)
    te_full = np.zeros_like(tm_full)
    tm_full[:ncodes], te_full[:ncodes] = tm[:ncodes], te[:ncodes]

    geom = geometry(fmt)
    grp = rows_per_group(fmt)
    group_rows = grp * max(1, _GROUP_VALUES // (grp * fmt.padded_features))
    buf = np.empty((fmt.blocks(group_rows) + 1) * fmt.line_bits, dtype=np.uint16)
    codes = np.empty((group_rows, cfg.features), dtype=np.uint16)
    g = np.empty(cfg.features, dtype=np.int64)
    w = np.zeros(cfg.features, dtype=np.int64)
    models = np.zeros((cfg.epochs, cfg.features), dtype=np.int32)
    losses: list[int] = []
    for epoch in range(cfg.epochs):
        k = epoch % cfg.copies
        loss, bad = _epoch(lines[k * per : (k + 1) * per], cfg.rows, cfg.features, geom, group_rows, tm_full,
                           te_full, ncodes, y, cfg.batch, cfg.step, w, buf, codes, g)
        if bad >= 0:
            raise ValueError(f"codes out of range for {cfg.bits}-bit double sampling (0..{ncodes - 1}): "
                             f"copy {k} holds code {bad}")
        models[epoch] = w
        losses.append(int(loss))
        if progress is not None:
            progress(epoch)
    return GoldenRun(models=models, losses=losses)
