"""The golden model: exactly the integer arithmetic of the engine, in NumPy (no cocotb here).

The RTL, the simulator backend and the driver are held to :func:`run` bit for bit.

Arithmetic (formats in :mod:`lowbit.contract.fixed`; ``>>`` is an arithmetic shift, ``rnd(x, k)`` is
``(x + 2^(k-1)) >> k``, ``sat32`` clamps to int32):

* The model starts at ``w = 0``. Features ``j >= F`` (row padding) do not exist for the engine.
* Epoch ``e`` reads copy ``e mod K``. Rows are taken in order, in minibatches of ``B`` rows (the last
  minibatch of an epoch holds the remaining ``N mod B`` rows if that is not zero).
* For each row ``i`` of a minibatch, with ``w0`` the model as of the minibatch's start and
  ``(m_ij, e_ij)`` the code table entries of the row's codes:

  - ``dot_i = sum_j m_ij * w0_j``                      exact (|dot| <= F * 2^46 < 2^60 for F <= 2^14)
  - ``r_i   = sat32(rnd(dot_i, 15) - y_i)``            residual at 2^-24
  - ``loss += (r_i * r_i) >> 16``                      uint64, saturating, at 2^-32
  - ``G_j  += m_ij * r_i - rnd(e_ij * w0_j, 8)``       64-bit at 2^-39 (|G| < 2^60 for B <= 4096)

* At the end of the minibatch, for every feature: ``w_j = sat32(w0_j - rnd(sat32(rnd(G_j, 15)) *
  STEP, 32))``, then ``G = 0``.
* After each epoch the engine writes the model (a snapshot) and the epoch's loss accumulator.

``e_ij * w0_j`` (at 2^-47, rounded onto the 2^-39 of ``m * r``) is the double-sampling correction: with ``m`` the mean of two independent
stochastic roundings and ``e`` a quarter of their squared difference, ``E[m_j m_k] = a_j a_k`` for
``j != k`` and ``E[m_j^2 - e_j] = a_j^2``, so the gradient is unbiased (docs/zipml.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .fixed import (CODE_FRAC, CORR_BITS, CORR_SHIFT, INT32_MAX, INT32_MIN, LOSS_SHIFT, M_BITS, STEP_FRAC, UINT64_MAX,
                    rshift_round, sat32)
from .format import MAX_BITS
from .registers import MAX_BATCH, MAX_COPIES, MAX_EPOCHS, ErrorCode


@dataclass(frozen=True)
class EngineConfig:
    """The run parameters the driver writes to the engine's registers (same names).

    Parameters
    ----------
    rows, features, bits, batch, epochs, copies : int
        ROWS, FEATURES, BITS, BATCH, EPOCHS, COPIES.
    step : int
        STEP, the per-sample step as uint32 at 2^-32 (:func:`lowbit.contract.fixed.step_to_fixed`).
    """

    rows: int
    features: int
    bits: int
    batch: int
    epochs: int
    step: int
    copies: int = 1

    def error(self, max_features: int) -> ErrorCode:
        """The error code an engine with ``max_features`` reports for this configuration at START."""
        if not 1 <= self.rows < (1 << 32):
            return ErrorCode.BAD_ROWS
        if not 1 <= self.features <= max_features:
            return ErrorCode.BAD_FEATURES
        if not 1 <= self.bits <= MAX_BITS:
            return ErrorCode.BAD_BITS
        if not 1 <= self.batch <= MAX_BATCH:
            return ErrorCode.BAD_BATCH
        if not 1 <= self.epochs <= MAX_EPOCHS:
            return ErrorCode.BAD_EPOCHS
        if not 1 <= self.copies <= MAX_COPIES:
            return ErrorCode.BAD_COPIES
        if not 1 <= self.step < (1 << 32):
            return ErrorCode.BAD_STEP
        return ErrorCode.NONE


@dataclass
class GoldenRun:
    """Result of :func:`run`.

    Attributes
    ----------
    models : ndarray, shape (epochs, features), int32
        Model snapshot after each epoch (at 2^-24).
    losses : list[int]
        Each epoch's loss accumulator (uint64 at 2^-32; divide by rows for the mean).
    """

    models: np.ndarray
    losses: list[int]


def _check_inputs(cfg: EngineConfig, codes, labels, table_m, table_e):
    err = cfg.error(max_features=1 << 24)
    if err is not ErrorCode.NONE:
        raise ValueError(f"configuration rejected by the engine: {err.name}")
    codes = np.asarray(codes)
    if codes.ndim == 2:
        codes = codes[None]
    if codes.shape != (cfg.copies, cfg.rows, cfg.features):
        raise ValueError(f"codes must have shape (copies, rows, features) = "
                         f"{(cfg.copies, cfg.rows, cfg.features)}, got {codes.shape}")
    ncodes = (1 << (cfg.bits + 1)) - 1
    if codes.min() < 0 or codes.max() >= ncodes:
        raise ValueError(f"codes out of range for {cfg.bits}-bit double sampling (0..{ncodes - 1})")
    labels = np.asarray(labels, dtype=np.int64)
    if labels.shape != (cfg.rows,):
        raise ValueError(f"labels must have shape ({cfg.rows},), got {labels.shape}")
    if labels.min() < INT32_MIN or labels.max() > INT32_MAX:
        raise ValueError("labels must be int32")
    table_m = np.asarray(table_m, dtype=np.int64)
    table_e = np.asarray(table_e, dtype=np.int64)
    if table_m.shape[0] < ncodes or table_e.shape[0] < ncodes:
        raise ValueError(f"code table needs {ncodes} entries for {cfg.bits} bits")
    if np.abs(table_m).max() > (1 << (M_BITS - 1)) or table_e.min() < 0 or table_e.max() >= (1 << CORR_BITS):
        raise ValueError(f"code table entries out of range (m is int{M_BITS}, e is uint{CORR_BITS})")
    return codes, labels, table_m, table_e


def run(cfg: EngineConfig, codes, labels, table_m, table_e, *, progress=None) -> GoldenRun:
    """Train as the engine does.

    Parameters
    ----------
    cfg : EngineConfig
    codes : array, shape (copies, rows, features) or (rows, features)
        Double-sampling codes (``lowbit.contract.quant.double_sample``) of each copy.
    labels : array, shape (rows,)
        int32 labels at 2^-24.
    table_m, table_e : array
        The code table (``lowbit.contract.quant.code_table``).
    progress : callable(epoch) or None
        Called after each epoch.
    """
    codes, y, tm, te = _check_inputs(cfg, codes, labels, table_m, table_e)
    n, f, b = cfg.rows, cfg.features, cfg.batch
    w = np.zeros(f, dtype=np.int64)
    models = np.zeros((cfg.epochs, f), dtype=np.int32)
    losses: list[int] = []
    decoded = {}  # per copy: (M, E) int64, decoded once
    for epoch in range(cfg.epochs):
        k = epoch % cfg.copies
        if k not in decoded:
            decoded[k] = (tm[codes[k]], te[codes[k]])
        M, E = decoded[k]
        loss = 0
        for start in range(0, n, b):  # minibatches are sequential by definition; rows inside are vectorised
            Mb, Eb, yb = M[start : start + b], E[start : start + b], y[start : start + b]
            r = sat32(rshift_round(Mb @ w, CODE_FRAC) - yb)
            loss += int(((r * r) >> LOSS_SHIFT).sum())
            G = Mb.T @ r - rshift_round(Eb * w, CORR_SHIFT).sum(axis=0)
            gs = sat32(rshift_round(G, CODE_FRAC))
            w = sat32(w - rshift_round(gs * cfg.step, STEP_FRAC))
        models[epoch] = w
        losses.append(min(loss, UINT64_MAX))
        if progress is not None:
            progress(epoch)
    return GoldenRun(models=models, losses=losses)


def reference_sgd(X, y, *, step: float, batch: int, epochs: int, w0=None):
    """Float64 minibatch SGD with the same semantics on unquantized data.

    ``w -= step * sum_{i in batch} a_i (a_i . w0 - y_i)`` per minibatch, ``w0`` the minibatch's start.
    Returns ``(models, losses)``: the model after each epoch and the epoch's mean squared residual
    as seen during the epoch (the engine's loss definition), both float64.
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n, f = X.shape
    w = np.zeros(f) if w0 is None else np.array(w0, dtype=np.float64)
    models, losses = np.zeros((epochs, f)), np.zeros(epochs)
    for epoch in range(epochs):
        loss = 0.0
        for start in range(0, n, batch):
            A, yb = X[start : start + batch], y[start : start + batch]
            r = A @ w - yb
            loss += float(r @ r)
            w = w - step * (A.T @ r)
        models[epoch], losses[epoch] = w, loss / n
    return models, losses
