"""CPU contestants for the engine, timed per epoch on this machine.

``numpy_sgd``    minibatch SGD in NumPy (float32 by default) with the engine's update,
                 ``w -= step * A.T @ (A @ w - y)`` per minibatch ``A`` (the semantics of
                 :func:`lowbit.contract.golden.reference_sgd`).
``sklearn_sgd``  scikit-learn's ``SGDRegressor`` configured as close to that as it allows.

Both return a :class:`CpuRun`: the model after each epoch and the seconds each epoch's updates
took (the loss is evaluated by the caller, outside the timed region). Wall times on a shared
machine are noisy: callers take the best of several repeats (:func:`best_of`).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import numpy as np


@dataclass
class CpuRun:
    """One timed CPU training run.

    Attributes
    ----------
    label : str
        What ran, e.g. ``"NumPy float32"``.
    models : ndarray (epochs, features) float64
        The model after each epoch.
    epoch_s : ndarray (epochs,) float64
        Seconds spent in each epoch's updates (not in loss evaluation).
    """

    label: str
    models: np.ndarray
    epoch_s: np.ndarray

    @property
    def s_per_epoch(self) -> float:
        return float(np.mean(self.epoch_s))


def _check(X, y, step, batch, epochs):
    X = np.asarray(X)
    y = np.asarray(y)
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"X must be a non-empty 2-D array, got shape {X.shape}")
    if y.shape != (X.shape[0],):
        raise ValueError(f"y must have shape ({X.shape[0]},), got {y.shape}")
    if not (isinstance(step, (int, float, np.floating)) and step > 0 and np.isfinite(step)):
        raise ValueError(f"step must be a positive finite number, got {step!r}")
    for name, v in (("batch", batch), ("epochs", epochs)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    return X, y


def numpy_sgd(X, y, *, step: float, batch: int, epochs: int, dtype=np.float32) -> CpuRun:
    """Minibatch SGD with the engine's update, in NumPy at ``dtype``.

    Per minibatch ``A`` (rows ``s .. s+batch``, in order, no shuffling):
    ``w -= step * A.T @ (A @ w - y_A)``, ``w`` starting at zero. The data is cast to ``dtype``
    once, before the clock starts (the cast is a one-off, like the engine's quantization, but
    cheap enough that it is not reported). At float64 the models equal
    :func:`lowbit.contract.golden.reference_sgd`'s bit for bit.
    """
    X, y = _check(X, y, step, batch, epochs)
    dtype = np.dtype(dtype).type
    Xd = np.ascontiguousarray(X, dtype=dtype)
    yd = np.ascontiguousarray(y, dtype=dtype)
    w = np.zeros(X.shape[1], dtype=dtype)
    s = dtype(step)
    models = np.empty((epochs, X.shape[1]))
    epoch_s = np.empty(epochs)
    for e in range(epochs):
        t0 = time.perf_counter()
        for start in range(0, Xd.shape[0], batch):  # per minibatch; the work inside is BLAS
            A = Xd[start : start + batch]
            w -= s * (A.T @ (A @ w - yd[start : start + batch]))
        epoch_s[e] = time.perf_counter() - t0
        models[e] = w
    return CpuRun(label=f"NumPy {np.dtype(dtype).name}", models=models, epoch_s=epoch_s)


#: How ``sklearn_sgd`` differs from the engine's SGD (printed next to its figures).
SKLEARN_DIFFERENCES = ("batch 1 (SGDRegressor has no minibatches; same per-sample step, so it "
                       "updates B times as often), float64, Cython loop")


def sklearn_sgd(X, y, *, step: float, epochs: int) -> CpuRun:
    """scikit-learn ``SGDRegressor``, as close to the engine's SGD as it allows.

    Squared loss, no penalty, constant learning rate ``eta0 = step``, no intercept (the data
    carries its own intercept column), no shuffling, no averaging, one ``partial_fit`` per epoch.
    Its update is per sample, ``w -= step * x (x . w - y)``: :func:`numpy_sgd` at batch 1 (what
    differs from the engine: :data:`SKLEARN_DIFFERENCES`).
    """
    from sklearn.linear_model import SGDRegressor

    X, y = _check(X, y, step, 1, epochs)
    X = np.ascontiguousarray(X, dtype=np.float64)
    y = np.ascontiguousarray(y, dtype=np.float64)
    reg = SGDRegressor(loss="squared_error", penalty=None, alpha=0.0, fit_intercept=False,
                       learning_rate="constant", eta0=float(step), shuffle=False, average=False,
                       max_iter=1, tol=None)
    models = np.empty((epochs, X.shape[1]))
    epoch_s = np.empty(epochs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: one epoch per call is the point
        for e in range(epochs):
            t0 = time.perf_counter()
            reg.partial_fit(X, y)
            epoch_s[e] = time.perf_counter() - t0
            models[e] = reg.coef_
    return CpuRun(label="scikit-learn SGDRegressor", models=models, epoch_s=epoch_s)


def best_of(repeats: int, fn, *args, **kwargs) -> CpuRun:
    """Run ``fn`` ``repeats`` times; the run whose mean epoch time is lowest (models are deterministic)."""
    if isinstance(repeats, bool) or not isinstance(repeats, (int, np.integer)) or repeats < 1:
        raise ValueError(f"repeats must be a positive integer, got {repeats!r}")
    return min((fn(*args, **kwargs) for _ in range(repeats)), key=lambda r: r.s_per_epoch)
