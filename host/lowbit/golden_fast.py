"""The golden model compiled: :func:`lowbit.contract.golden.run`'s arithmetic, bit for bit, on packed lines.

:mod:`lowbit.contract.golden` states the engine's integer arithmetic in NumPy and stays the spec;
:func:`run_packed` does the same operations in exact integers with numba, reading the copies as
the engine does, from their packed lines. Each row is decoded from its bit planes when it is used
(:func:`lowbit.fastquant.decode_row`, through the one layout function, either layout) into two
byte buffers, so memory is the packed copies plus O(features): no matrix of the data set is ever
built. tests/test_golden_fast.py holds it equal to :func:`lowbit.contract.golden.run` on random
configurations (b = 1..8, batch 1..N and > N, copies, both layouts, uniform and random levels,
saturating models, residuals and loss).

Why the results are identical and not merely close: every sum is exact in int64 (the bounds are
in docs/golden.md), the roundings (``rnd``), clamps (``sat32``) and the loss's ``>> 16`` and
saturation are the spec's, applied at the same points; integer addition is associative, so the
order of the loops, and splitting a sum into parts, does not matter.

Speed: the products are int32 x int32 -> int64 (``m``, ``e``, ``w`` and the residual all fit in
32 bits), which the compiler vectorises. A table lookup per value does not vectorise, so an
*affine* code table (``m_c = m_0 + c dm``, ``e_c = e_1 [c odd]``: every evenly spaced level set,
``uniform_levels``) is computed instead of looked up, with the same integers: its corrections of a
minibatch are ``#odd codes_j * rnd(e_1 w_j, 8)`` per feature.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from lowbit.fastquant import decode_row, geometry
from lowbit.contract.fixed import CODE_FRAC, CORR_BITS, CORR_SHIFT, INT32_MAX, INT32_MIN, LOSS_SHIFT, STEP_FRAC
from lowbit.contract.format import LineFormat

from .contract.golden import EngineConfig, GoldenRun

_UINT64_MAX = np.uint64(0xFFFFFFFFFFFFFFFF)


@njit(inline="always", cache=True)
def _rnd(x, k):
    return (x + (1 << (k - 1))) >> k


@njit(inline="always", cache=True)
def _sat32(x):
    return min(max(x, INT32_MIN), INT32_MAX)


@njit(inline="always", cache=True)
def _row_table(lo, hi, features, tm, te, wd, w, m, e, gc):
    """One row through the code table: ``(dot, top)`` with ``dot = sum_j m_j wd_j`` and ``top`` the
    row's largest code; keeps ``m_j`` for the gradient and adds ``rnd(e_j w_j, 8)`` to ``gc``
    (``wd`` is ``w``, or with MODEL_DELAY the model one minibatch old)."""
    top = np.int64(0)
    for j in range(features):  # the lookups (scalar), apart from the arithmetic (vectorised)
        c = np.int64(lo[j]) | (np.int64(hi[j]) << 8)
        top = max(top, c)
        m[j] = tm[c]
        e[j] = te[c]
    dot = np.int64(0)
    for j in range(features):
        dot += np.int64(m[j]) * np.int64(wd[j])
        gc[j] += _rnd(np.int64(e[j]) * np.int64(w[j]), CORR_SHIFT)
    return dot, top


@njit(inline="always", cache=True)
def _row_affine(lo, hi, features, m0, dm, w, m, odd):
    """:func:`_row_table` for an affine table: ``m_c = m0 + c dm``; counts odd codes in ``odd``
    (their correction is added per minibatch)."""
    top = np.int32(0)
    dot = np.int64(0)
    for j in range(features):
        c = np.int32(lo[j]) | (np.int32(hi[j]) << 8)
        top = max(top, c)
        mj = m0 + c * dm  # |c dm| < 2^25: int32
        m[j] = mj
        dot += np.int64(mj) * np.int64(w[j])
        odd[j] += c & 1
    return dot, np.int64(top)


@njit(cache=True)
def _epoch(lines, rows, features, geom, tm, te, affine, ncodes, y, batch, step, w, lo, hi, m, e, g, gc, delay, wd,
           prev):
    """One epoch over one copy's ``lines``; updates ``w`` (int32) in place.

    The dot products use ``wd``: with ``delay`` (MODEL_DELAY 1) the model before the previous
    minibatch's update (``prev`` keeps it), ``w`` itself otherwise (the caller passes ``w`` as
    ``wd``; nothing is copied).

    ``G_j = sum_i m_ij r_i - sum_i rnd(e_ij w0_j, 8)`` is kept as its two sums, ``g`` and ``gc``.
    With ``affine`` the table is ``m_c = tm[0] + c (tm[1] - tm[0])``, ``e_c = te[1] [c odd]``,
    and ``e`` counts each feature's odd codes. Returns ``(loss, bad)``: the saturated uint64
    loss accumulator, and the largest code seen if it is out of range (-1 if none; then the caller
    raises and the epoch's result is discarded).
    """
    loss = np.uint64(0)
    top = np.int64(0)
    m0, dm, e1 = tm[0], tm[1] - tm[0], np.int64(te[1])
    if delay:
        wd[:] = w
    for start in range(0, rows, batch):
        end = min(rows, start + batch)
        g[:] = 0
        gc[:] = 0
        e[:] = 0
        for r in range(start, end):
            decode_row(lines, r, geom, lo, hi)
            if affine:
                dot, t = _row_affine(lo, hi, features, m0, dm, wd, m, e)
            else:
                dot, t = _row_table(lo, hi, features, tm, te, wd, w, m, e, gc)
            top = max(top, t)
            res = np.int32(_sat32(_rnd(dot, CODE_FRAC) - y[r]))  # int32, so m * res is a 32 x 32 product
            term = np.uint64((np.int64(res) * np.int64(res)) >> LOSS_SHIFT)
            loss = _UINT64_MAX if loss > _UINT64_MAX - term else loss + term
            for j in range(features):
                g[j] += np.int64(m[j]) * np.int64(res)
        if affine:  # every odd code of feature j adds the same rnd(e_1 w0_j, 8); even codes add rnd(0) = 0
            for j in range(features):
                gc[j] = np.int64(e[j]) * _rnd(e1 * np.int64(w[j]), CORR_SHIFT)
        if delay:
            prev[:] = w
        for j in range(features):
            gs = _sat32(_rnd(g[j] - gc[j], CODE_FRAC))
            w[j] = _sat32(np.int64(w[j]) - _rnd(gs * step, STEP_FRAC))
        if delay:
            wd[:] = prev
    return loss, (top if top >= ncodes else np.int64(-1))


def affine_table(tm, te) -> bool:
    """Whether a code table is affine (``m_c = m_0 + c dm``, ``e_c = e_1`` for odd c, 0 for even),
    as every evenly spaced level set's is: :func:`_epoch` then computes it instead of looking it up."""
    c = np.arange(tm.size)
    return bool(np.array_equal(tm, tm[0] + c * (tm[1] - tm[0])) and np.array_equal(te, (c & 1) * te[1]))


def run_packed(cfg: EngineConfig, lines, labels, table_m, table_e, fmt: LineFormat, *, progress=None) -> GoldenRun:
    """:func:`lowbit.contract.golden.run` on packed copies (what the engine reads); the same result.

    Parameters
    ----------
    cfg : EngineConfig
    lines : ndarray (copies * fmt.lines_per_copy(rows), line_bytes) uint8
        The copies' packed lines, copy ``k`` at line ``k * lines_per_copy`` (``QuantizedDataset.data_lines()``).
    labels : array (rows,)
        int32 labels at 2^-24.
    table_m, table_e : array
        The code table (``lowbit.contract.quant.code_table``).
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
    lines = np.ascontiguousarray(lines)  # the decoder reads it as one flat byte array
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
    tm_full = np.zeros(1 << (cfg.bits + 1), dtype=np.int32)
    te_full = np.zeros_like(tm_full)
    tm_full[:ncodes], te_full[:ncodes] = tm[:ncodes], te[:ncodes]

    affine = affine_table(tm[:ncodes], te[:ncodes])
    geom = geometry(fmt)
    lo = np.zeros(fmt.padded_features, dtype=np.uint8)
    hi = np.zeros(fmt.padded_features, dtype=np.uint8)  # bit 8 of the codes: stays 0 below b = 8
    m = np.empty(cfg.features, dtype=np.int32)
    e = np.empty(cfg.features, dtype=np.int32)
    g = np.empty(cfg.features, dtype=np.int64)
    gc = np.empty(cfg.features, dtype=np.int64)
    w = np.zeros(cfg.features, dtype=np.int32)
    delay = bool(cfg.model_delay)
    wd = np.zeros_like(w) if delay else w
    prev = np.zeros_like(w)
    models = np.zeros((cfg.epochs, cfg.features), dtype=np.int32)
    losses: list[int] = []
    for epoch in range(cfg.epochs):
        k = epoch % cfg.copies
        loss, bad = _epoch(lines[k * per : (k + 1) * per], cfg.rows, cfg.features, geom, tm_full, te_full, affine,
                           ncodes, y, cfg.batch, cfg.step, w, lo, hi, m, e, g, gc, delay, wd, prev)
        if bad >= 0:
            raise ValueError(f"codes out of range for {cfg.bits}-bit double sampling (0..{ncodes - 1}): "
                             f"copy {k} holds code {bad}")
        models[epoch] = w
        losses.append(int(loss))
        if progress is not None:
            progress(epoch)
    return GoldenRun(models=models, losses=losses)
