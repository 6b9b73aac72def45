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

Resumable runs (registers WARM_START, MODEL_IN_ADDR, START_MINIBATCH, MAX_MINIBATCHES; all zero is
the plain run above, bit for bit). With ``P = ceil(N / B)`` minibatches per epoch, minibatch ``g`` of
the whole schedule (``0 <= g < E * P``) is minibatch ``g mod P`` of epoch ``g // P`` (copy
``(g // P) mod K``, rows from ``(g mod P) * B``):

* The model starts at ``w = MODEL_IN`` (int32) if WARM_START, else at ``w = 0``.
* The run does minibatches ``S .. S + M - 1`` (``S`` = START_MINIBATCH, ``M`` = MAX_MINIBATCHES,
  clipped to ``E * P``; ``M = 0`` runs to the end of epoch ``E``). ``S >= E * P`` is BAD_START.
* A snapshot and loss record are written after every minibatch that ends an epoch, and once more
  after the last minibatch if it ends mid-epoch (a partial epoch); each record's loss sums only the
  minibatches of this run. So the last snapshot is always the final model, and a run cut in two
  (the second warm-started from the first's last snapshot at ``S + M``) gives the same models, and
  epoch losses that add up (saturating) to the uncut run's.

``e_ij * w0_j`` (at 2^-47, rounded onto the 2^-39 of ``m * r``) is the double-sampling correction: with ``m`` the mean of two independent
stochastic roundings and ``e`` a quarter of their squared difference, ``E[m_j m_k] = a_j a_k`` for
``j != k`` and ``E[m_j^2 - e_j] = a_j^2``, so the gradient is unbiased (docs/zipml.md).

Logistic and hinge loss (LOSS != 0; issue 13, docs/zipml.md). The squared loss above is LOSS = 0
and stays exactly as stated. For the others, with ``s_i = +1`` if ``y_i > 0`` else ``-1`` and
``M^(j)`` the decoded ``m`` of *factor* ``j``, which reads copy ``(e + j) mod K`` in epoch ``e``
(factor 0 is the copy squared loss reads; the Chebyshev estimator uses factors 0..d, d + 1 <= K
distinct, hence independent, copies):

  - ``t_i^(j) = sat32(s_i * sat32(rnd(sum_k M^(j)_ik * w0_k, 15)))``   margin at 2^-24
  - naive:  ``r_i = s_i * phi(t_i^(0))``, ``phi`` the loss's derivative (``_phi_naive``): logistic
    reads ``lowbit.contract.losses.PHI_TABLE`` with linear interpolation (``interp``), hinge is ``-2^24``
    if ``t < 2^24`` else 0
  - chebyshev: ``c^(j) = clamp(t_i^(j), -2^(24+RANGE), 2^(24+RANGE))``, ``h = POLY_d``, then for
    ``j = d-1 .. 0``: ``h = sat32(POLY_j + rnd(h * c^(j+1), 24 + RANGE))``; ``r_i = sat32(s_i * h)``.
    Each Horner step multiplies by its own copy's margin, read as ``u = c / 2^RANGE`` at 2^-24 (no
    rounding), so ``E[h] = P(u)`` exactly while the samples stay in the fitted range [-1, 1] of
    ``u`` (independence); the clamp keeps a sample beyond it from evaluating the polynomial where
    it approximates nothing (a cubic fitted to the sigmoid diverges there, and SGD with it)
  - ``loss += l(t_i^(0)) << 8``  (logistic: ``interp(LOSS_TABLE, t) + max(0, -2^27 - t)``, the
    table plus its slope -1 tail; hinge: ``max(0, 2^24 - t)``), uint64 saturating, at 2^-32
  - ``G_j += M^(0)_ij * r_i``  (no ``e`` correction: it belongs to the squared loss's ``x x^T``)

L2 (any loss, L2 != 0): at the end of each minibatch of ``n_b`` rows, before the update,
``G_j += n_b * rnd(L2 * w0_j, 17)`` (``L2 * w0`` at 2^-56 rounded onto G's 2^-39; |L2 * w0| < 2^63).

Pipelined SGD (MODEL_DELAY 1; issue 10, docs/architecture.md). With ``w^(p)`` the model before
minibatch ``p``'s update, counted from the start of each epoch or run segment, minibatch ``p``'s dot
products and margins (every factor's) use ``w^(p-1)``, the model one minibatch old (minibatch 0:
``w^(0)``), so an engine can take minibatch ``p``'s rows while minibatch ``p-1``'s update is still
being written. Everything else uses the current model ``w0 = w^(p)``: the double-sampling correction
``rnd(e_ij * w0_j, 8)``, L2, and the update itself. MODEL_DELAY 0 is the exact SGD above.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .fixed import (CODE_FRAC, CORR_BITS, CORR_SHIFT, INT32_MAX, INT32_MIN, LOSS_FRAC, LOSS_SHIFT, M_BITS, MODEL_FRAC,
                    STEP_FRAC, UINT64_MAX, rshift_round, sat32)
from .format import MAX_BITS
from .losses import (LOSS_TABLE, PHI_TABLE, SEG_SHIFT, TABLE_HI, TABLE_LO, TABLE_SEGMENTS, label_signs, loss_value,
                     phi)
from .registers import (BUILT_ALL, MAX_BATCH, MAX_COPIES, MAX_DEGREE, MAX_EPOCHS, MAX_RANGE_SHIFT, REG, Built, ErrorCode,
                        Estimator, Loss)


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
    # Issue 13; the defaults are least squares without regularisation (the registers' reset values).
    loss: int = 0          # LOSS: lowbit.contract.registers.Loss
    l2: int = 0            # L2: uint32 at 2^-32
    estimator: int = 0     # ESTIMATOR.KIND: lowbit.contract.registers.Estimator
    degree: int = 0        # ESTIMATOR.DEGREE
    margin_range: int = 0  # ESTIMATOR.RANGE
    poly: tuple = ()       # POLY_0..POLY_degree: int32 at 2^-24
    # Issue 14: resumable runs; all zero is the plain run from w = 0.
    warm_start: bool = False
    start_minibatch: int = 0
    max_minibatches: int = 0
    # Issue 10: pipelined SGD (MODEL_DELAY); 0 is exact minibatch SGD.
    model_delay: int = 0

    def factors(self) -> int:
        """Copies each row reads in an epoch: d + 1 for the Chebyshev estimator, else 1."""
        return self.degree + 1 if self.estimator == Estimator.CHEBYSHEV else 1

    @property
    def minibatches_per_epoch(self) -> int:
        """P = ceil(ROWS / BATCH)."""
        return -(-self.rows // self.batch)

    def span(self) -> tuple[int, int]:
        """The run's minibatches ``[first, end)`` of the whole schedule (see the module docstring)."""
        total = self.epochs * self.minibatches_per_epoch
        end = total if self.max_minibatches == 0 else min(total, self.start_minibatch + self.max_minibatches)
        return self.start_minibatch, end

    def snapshots(self) -> int:
        """Snapshots (and records) the run writes: epochs it ends, plus one if it stops mid-epoch."""
        first, end = self.span()
        p = self.minibatches_per_epoch
        return end // p - first // p + (1 if end % p else 0)

    def needs(self) -> Built:
        """The optional datapaths (BUILT) this run needs; ``Built.NONE`` for a plain least-squares run."""
        need = Built.NONE
        if self.loss:
            need |= Built.NONLINEAR
        if self.l2:
            need |= Built.L2
        if self.estimator == Estimator.CHEBYSHEV:
            need |= Built.CHEBYSHEV
        elif self.estimator or self.degree or self.margin_range:  # ESTIMATOR != 0, KIND not chebyshev
            need |= Built.NONLINEAR
        if self.warm_start or self.start_minibatch or self.max_minibatches:
            need |= Built.RESUME
        if self.model_delay:
            need |= Built.DELAYED
        return need

    def error(self, max_features: int, *, built: Built = BUILT_ALL) -> ErrorCode:
        """The error code an engine with ``max_features`` and the optional datapaths ``built``
        (its BUILT register) reports for this configuration at START.

        An engine without a datapath the run needs answers ``NOT_BUILT`` (right after the checks
        every engine makes) rather than ignore the registers that ask for it."""
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
        if self.needs() & ~Built(built):
            return ErrorCode.NOT_BUILT
        err = self._loss_error()
        if err is not ErrorCode.NONE:
            return err
        if not 0 <= self.start_minibatch < self.epochs * self.minibatches_per_epoch:
            return ErrorCode.BAD_START
        return ErrorCode.NONE

    def estimator_register(self) -> int:
        """The ESTIMATOR register's value (fields KIND, DEGREE, RANGE)."""
        return REG["ESTIMATOR"].encode(KIND=self.estimator, DEGREE=self.degree, RANGE=self.margin_range)

    def _loss_error(self) -> ErrorCode:
        if self.loss not in tuple(Loss):
            return ErrorCode.BAD_LOSS
        if self.estimator == Estimator.NAIVE:
            return ErrorCode.NONE
        if (self.estimator != Estimator.CHEBYSHEV or self.loss == Loss.SQUARED
                or not 1 <= self.degree <= MAX_DEGREE or self.copies < self.degree + 1
                or not 0 <= self.margin_range <= MAX_RANGE_SHIFT):
            return ErrorCode.BAD_ESTIMATOR
        return ErrorCode.NONE


@dataclass
class GoldenRun:
    """Result of :func:`run`.

    Attributes
    ----------
    models : ndarray, shape (snapshots, features), int32
        Model snapshot after each epoch (at 2^-24); a bounded run's last one may be mid-epoch.
    losses : list[int]
        Each snapshot's loss accumulator (uint64 at 2^-32; divide by rows for the mean).
    partial : bool
        Whether the last snapshot is mid-epoch (a bounded run that stopped inside an epoch).
    """

    models: np.ndarray
    losses: list[int]
    partial: bool = False


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
    if not 0 <= cfg.l2 < (1 << 32):
        raise ValueError("l2 must be a uint32 (the L2 register)")
    if cfg.model_delay not in (0, 1):
        raise ValueError(f"model_delay must be 0 or 1 (the MODEL_DELAY register), got {cfg.model_delay!r}")
    if cfg.factors() > 1 and (len(cfg.poly) != cfg.degree + 1
                              or any(not INT32_MIN <= int(a) <= INT32_MAX for a in cfg.poly)):
        raise ValueError(f"the Chebyshev estimator needs POLY_0..POLY_{cfg.degree}: {cfg.degree + 1} int32 coefficients")
    return codes, labels, table_m, table_e


def _start_model(cfg: EngineConfig, model_in) -> np.ndarray:
    """The model at START as int64: MODEL_IN if WARM_START, else zeros."""
    if not cfg.warm_start:
        return np.zeros(cfg.features, dtype=np.int64)
    if model_in is None:
        raise ValueError("warm_start needs model_in (the int32 model at MODEL_IN_ADDR)")
    w = np.asarray(model_in)
    if w.shape != (cfg.features,) or w.dtype.kind not in "iu":
        raise ValueError(f"model_in must be ({cfg.features},) integers, got {w.dtype} {w.shape}")
    if w.min() < INT32_MIN or w.max() > INT32_MAX:
        raise ValueError("model_in must be int32")
    return w.astype(np.int64)


def _segments(cfg: EngineConfig):
    """The run's span cut at epoch ends: ``(epoch, first minibatch, end minibatch)`` within the epoch."""
    first, end = cfg.span()
    p = cfg.minibatches_per_epoch
    g = first
    while g < end:
        epoch, lo = divmod(g, p)
        hi = min(p, lo + end - g)
        yield epoch, lo, hi
        g += hi - lo


def run(cfg: EngineConfig, codes, labels, table_m, table_e, *, model_in=None, progress=None) -> GoldenRun:
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
    model_in : array (features,) of int32, optional
        The model at MODEL_IN_ADDR; needed (only) with ``cfg.warm_start``.
    progress : callable(epoch) or None
        Called after each snapshot.
    """
    codes, y, tm, te = _check_inputs(cfg, codes, labels, table_m, table_e)
    b = cfg.batch
    w = _start_model(cfg, model_in)
    models = np.zeros((cfg.snapshots(), cfg.features), dtype=np.int32)
    losses: list[int] = []
    decoded = {}  # per copy and row range: (M, E) int64, decoded once (only the rows the run reads)
    segments = list(_segments(cfg))
    for i, (epoch, lo, hi) in enumerate(segments):
        ks = [(epoch + j) % cfg.copies for j in range(cfg.factors())]  # factor j reads copy (e + j) mod K
        rows = slice(lo * b, hi * b)
        for k in ks:
            if (k, lo, hi) not in decoded:
                decoded[k, lo, hi] = (tm[codes[k, rows]], te[codes[k, rows]])
        M, E = decoded[ks[0], lo, hi]
        yk = y[rows]
        loss = 0
        w_dot = w  # the model the dot products use: w, or with MODEL_DELAY the one before the last update
        for start in range(0, M.shape[0], b):  # minibatches are sequential by definition; rows inside are vectorised
            Mb, Eb, yb = M[start : start + b], E[start : start + b], yk[start : start + b]
            if cfg.loss == Loss.SQUARED:
                r = sat32(rshift_round(Mb @ w_dot, CODE_FRAC) - yb)
                loss += int(((r * r) >> LOSS_SHIFT).sum())
                G = Mb.T @ r - rshift_round(Eb * w, CORR_SHIFT).sum(axis=0)
            else:
                more = [decoded[k, lo, hi][0][start : start + b] for k in ks[1:]]
                r, row_loss = margin_residuals(cfg, Mb, more, w_dot, yb)
                loss += int(row_loss.sum())
                G = Mb.T @ r
            if cfg.l2:
                G = G + len(yb) * rshift_round(cfg.l2 * w, L2_SHIFT)
            gs = sat32(rshift_round(G, CODE_FRAC))
            w, w_dot = sat32(w - rshift_round(gs * cfg.step, STEP_FRAC)), w
            if not cfg.model_delay:
                w_dot = w
        models[i] = w
        losses.append(min(loss, UINT64_MAX))
        if progress is not None:
            progress(i)
    partial = bool(segments) and segments[-1][2] < cfg.minibatches_per_epoch
    return GoldenRun(models=models, losses=losses, partial=partial)


# ------------------------------------------------------------------- logistic and hinge (issue 13)
MODEL_ONE = 1 << MODEL_FRAC
#: L2 * w0 (2^-32 * 2^-24) is rounded by this much onto G's 2^-39.
L2_SHIFT = STEP_FRAC + MODEL_FRAC - (CODE_FRAC + MODEL_FRAC)


def interp(table, t):
    """A 257-entry table (``lowbit.contract.losses``) at margins ``t`` (int at 2^-24): ``t`` clamped to
    [-2^27, 2^27], ``u = t + 2^27``, ``i = min(u >> 20, 255)``, ``f = u - (i << 20)`` (0..2^20),
    ``table[i] + rnd((table[i+1] - table[i]) * f, 20)``."""
    table = np.asarray(table, dtype=np.int64)
    u = np.clip(t, TABLE_LO, TABLE_HI) - TABLE_LO
    i = np.minimum(u >> SEG_SHIFT, TABLE_SEGMENTS - 1)
    f = u - (i << SEG_SHIFT)
    return table[i] + rshift_round((table[i + 1] - table[i]) * f, SEG_SHIFT)


def margins(Mb, w, s):
    """``t = sat32(s * sat32(rnd(M w, 15)))``: each row's margin at 2^-24."""
    return sat32(s * sat32(rshift_round(Mb @ w, CODE_FRAC)))


def _phi_naive(loss: int, t):
    if loss == Loss.LOGISTIC:
        return interp(PHI_TABLE, t)
    return np.where(t < MODEL_ONE, -MODEL_ONE, 0)  # hinge: a subgradient of max(0, 1 - t)


def horner(poly, ts, range_shift: int):
    """``P(u)`` with one independent margin sample per Horner step: ``h = poly[d]``, then
    ``h = sat32(poly[j] + rnd(h * c_j, 24 + range_shift))`` for ``j = d-1 .. 0``, ``c_j`` = ``ts[j]``
    clamped to +-2^(24 + range_shift) (u in [-1, 1])."""
    lim = 1 << (MODEL_FRAC + range_shift)
    h = np.full(np.shape(ts[0]), int(poly[-1]), dtype=np.int64)
    for j in range(len(poly) - 2, -1, -1):  # d steps of a scalar pipeline, vectorised over rows
        h = sat32(int(poly[j]) + rshift_round(h * np.clip(ts[j], -lim, lim), MODEL_FRAC + range_shift))
    return h


def _row_loss(loss: int, t):
    """Each row's loss at 2^-32 (the accumulator's format)."""
    if loss == Loss.LOGISTIC:
        val = interp(LOSS_TABLE, t) + np.maximum(0, TABLE_LO - t)
    else:
        val = np.maximum(0, MODEL_ONE - t)
    return val << (LOSS_FRAC - MODEL_FRAC)


def margin_residuals(cfg: EngineConfig, Mb, more, w, yb):
    """``(r, row_loss)`` of a minibatch for LOSS logistic or hinge: ``Mb`` is factor 0's decoded
    ``m``, ``more`` the ``m`` of factors 1..d (Chebyshev only)."""
    s = np.where(yb > 0, 1, -1)
    t0 = margins(Mb, w, s)
    if cfg.estimator == Estimator.CHEBYSHEV:
        h = horner(cfg.poly, [margins(Mk, w, s) for Mk in more], cfg.margin_range)
    else:
        h = _phi_naive(cfg.loss, t0)
    return sat32(s * h), _row_loss(cfg.loss, t0)


def reference_sgd(X, y, *, step: float, batch: int, epochs: int, w0=None, loss: str = "squared", l2: float = 0.0):
    """Float64 minibatch SGD with the same semantics on unquantized data.

    ``w -= step * sum_{i in batch} a_i (a_i . w0 - y_i)`` per minibatch, ``w0`` the minibatch's start.
    Returns ``(models, losses)``: the model after each epoch and the epoch's mean squared residual
    as seen during the epoch (the engine's loss definition), both float64.

    ``loss="logistic"`` or ``"hinge"`` (issue 13) uses the exact derivative instead:
    ``w -= step * sum_i s_i phi(s_i a_i . w0) a_i`` (``lowbit.contract.losses.phi``, ``s_i`` the label's
    sign), and the epoch's loss is the mean of ``loss(t_i)``. ``l2`` adds ``l2 * w0`` per row, as
    the engine's L2 register does.
    """
    if loss != "squared":
        return _reference_margin_sgd(X, y, step=step, batch=batch, epochs=epochs, w0=w0, loss=Loss[loss.upper()],
                                     l2=l2)
    X = _float_rows(X)
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
            w = w - step * (A.T @ r + len(yb) * l2 * w) if l2 else w - step * (A.T @ r)
        models[epoch], losses[epoch] = w, loss / n
    return models, losses


def _float_rows(X):
    """``X`` as float32 or float64 without a copy (other types become float64). Each minibatch's
    rows are widened to float64 as they are used (``A @ w`` with ``w`` float64), so float32
    features give exactly the float64 SGD on their values, without a float64 copy of the data."""
    X = np.asarray(X)
    return X if X.dtype in (np.float32, np.float64) else X.astype(np.float64)


def _reference_margin_sgd(X, y, *, step, batch, epochs, w0, loss: Loss, l2: float):
    X = _float_rows(X)
    s = label_signs(y).astype(np.float64)
    n, f = X.shape
    w = np.zeros(f) if w0 is None else np.array(w0, dtype=np.float64)
    models, losses = np.zeros((epochs, f)), np.zeros(epochs)
    for epoch in range(epochs):
        total = 0.0
        for start in range(0, n, batch):
            A, sb = X[start : start + batch], s[start : start + batch]
            t = sb * (A @ w)
            total += float(loss_value(loss, t).sum())
            w = w - step * (A.T @ (sb * phi(loss, t)) + len(sb) * l2 * w)
        models[epoch], losses[epoch] = w, total / n
    return models, losses
