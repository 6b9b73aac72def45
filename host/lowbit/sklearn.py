"""lowbit as scikit-learn estimators: low-precision training inside ``Pipeline`` / ``GridSearchCV``.

>>> from lowbit.sklearn import LowbitRegressor
>>> from sklearn.model_selection import cross_val_score
>>> cross_val_score(LowbitRegressor(bits=2, levels="optimal"), X, y, cv=5)   # doctest: +SKIP

:class:`LowbitRegressor` and :class:`LowbitClassifier` do what ``lowbit train`` does, one fit at a
time: normalise with :class:`lowbit.data.Normalizer` (features to [-1, 1], labels by max |y|, an
intercept column), double-sample ``copies`` quantized copies (:class:`lowbit.dataset.QuantizedDataset`)
and train on a backend through :func:`lowbit.experiment.run_engine` / ``run_float``:

``"golden"``  the golden model (the engine's exact integer arithmetic in NumPy), the default;
``"sim"``     the Verilated engine in a simulator process (:func:`lowbit.driver.open_device`), which
              also reports engine cycles and the modelled time at the measured clock
              :data:`lowbit.experiment.MEASURED_FMAX_MHZ`;
``"float"``   float64 SGD on the unquantized normalised data (the full-precision reference).

The sim and golden backends give bit-identical models, hence identical ``coef_``. The classifier
is least squares on +-1 labels (as the ZipML FPGA trained), one-vs-rest for more than two classes.

Warm start: the engine always starts from ``w = 0``, so ``warm_start=True`` trains the *residual*
``v`` on labels ``y - X w0`` (``w0`` the previous fit, mapped into this fit's normalised units) and
keeps ``w0 + v``. ``||X v - (y - X w0)||^2 = ||X (w0 + v) - y||^2``, so the engine descends the very
same objective from ``w0`` (float64 SGD exactly so; the engine with the same unbiased-gradient
guarantee as any run). Residual labels beyond [-1, 1] are scaled into it and ``v`` scaled back.
"""

from __future__ import annotations

import numbers
import time

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils import check_random_state
from sklearn.utils.extmath import safe_sparse_dot
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from . import experiment as ex
from .experiment import auto_step
from .data import Normalizer
from .dataset import QuantizedDataset
from .experiment import MEASURED_FMAX_MHZ
from .contract.fixed import labels_to_fixed
from .contract.format import check_bits
from .contract.registers import MAX_BATCH, MAX_COPIES, MAX_EPOCHS

#: Training backends an estimator accepts (``backend=``).
BACKENDS = ("golden", "sim", "float")
#: Level placements (``levels=``): see docs/quantization.md.
LEVELS = ("uniform", "optimal")
#: Copies when ``copies=None``: one per epoch, up to this many (the CLI's default too).
DEFAULT_MAX_COPIES = 8
#: The sparse layouts fit/predict take; they are densified, the engine streams every feature.
SPARSE_FORMATS = ("csr", "csc", "coo")


# --------------------------------------------------------------------------- parameter checks
def _int_in(name, value, lo, hi):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not lo <= value <= hi:
        raise ValueError(f"{name} must be an integer in {lo}..{hi}, got {value!r}")
    return int(value)


def _choice(name, value, options):
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{name} must be one of {options}, got {value!r}")
    return value


def _check_step(step):
    if isinstance(step, str) and step == "auto":
        return step
    if isinstance(step, bool) or not isinstance(step, numbers.Real) or not 0 < float(step) < 1:
        raise ValueError(f"step must be 'auto' or a number in (0, 1), got {step!r}")
    return float(step)


def _with_labels(qds: QuantizedDataset, y) -> QuantizedDataset:
    """The same quantized copies of X with other (normalised) labels: quantize X once per fit."""
    return QuantizedDataset(fmt=qds.fmt, levels=qds.levels, levels_q=qds.levels_q, codes=qds.codes,
                            labels_q=labels_to_fixed(y), seed=qds.seed, level_kind=qds.level_kind)


def model_from_original(norm: Normalizer, coef, intercept) -> np.ndarray:
    """The normalised-units model that :meth:`Normalizer.model_to_original` maps to ``(coef, intercept)``.

    Exact on the normaliser's training range; a feature constant there (``half_range == 0``) has no
    weight, its ``coef * value`` moves into the intercept.
    """
    coef = np.asarray(coef, dtype=np.float64).ravel()
    if coef.size != norm.features_in:
        raise ValueError(f"model has {coef.size} coefficients, the data {norm.features_in} features")
    w = np.zeros(norm.features_out)
    w[: norm.features_in] = coef * norm.half_range / norm.y_scale
    if norm.intercept:
        w[-1] = (float(intercept) + float(coef @ norm.center)) / norm.y_scale
    return w


# --------------------------------------------------------------------------------- the base
class _LowbitLinear(BaseEstimator):
    """Shared parameters, validation and training of the two estimators (not public)."""

    def __init__(self, *, bits=4, levels="uniform", epochs=10, batch_size=16, step="auto", copies=None,
                 backend="golden", shuffle=True, warm_start=False, random_state=None, device_options=None):
        self.bits = bits
        self.levels = levels
        self.epochs = epochs
        self.batch_size = batch_size
        self.step = step
        self.copies = copies
        self.backend = backend
        self.shuffle = shuffle
        self.warm_start = warm_start
        self.random_state = random_state
        self.device_options = device_options

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True  # accepted and densified (the engine streams dense rows)
        return tags

    def _validated_params(self) -> dict:
        """Every parameter checked (scikit-learn checks in fit, never in __init__); ValueError on the first bad one."""
        bits = check_bits(self.bits)
        epochs = _int_in("epochs", self.epochs, 1, MAX_EPOCHS)
        copies = (min(epochs, DEFAULT_MAX_COPIES) if self.copies is None
                  else _int_in("copies", self.copies, 1, MAX_COPIES))
        if self.device_options is not None and not isinstance(self.device_options, dict):
            raise ValueError(f"device_options must be a dict of open_device options or None, got {self.device_options!r}")
        if not isinstance(self.shuffle, (bool, np.bool_)) or not isinstance(self.warm_start, (bool, np.bool_)):
            raise ValueError(f"shuffle and warm_start must be booleans, got {self.shuffle!r}, {self.warm_start!r}")
        return dict(bits=bits, levels=_choice("levels", self.levels, LEVELS), epochs=epochs,
                    batch=_int_in("batch_size", self.batch_size, 1, MAX_BATCH), step=_check_step(self.step),
                    copies=copies, backend=_choice("backend", self.backend, BACKENDS))

    def _decision(self, X) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, accept_sparse=SPARSE_FORMATS, dtype=np.float64, reset=False)
        return safe_sparse_dot(X, self.coef_.T) + self.intercept_

    def _warm_models(self, norm: Normalizer, targets: int) -> np.ndarray:
        """The previous fit as ``(targets, F + 1)`` normalised-units models, or zeros for a cold start."""
        zeros = np.zeros((targets, norm.features_out))
        if not self.warm_start or not hasattr(self, "coef_"):
            return zeros
        coef = np.atleast_2d(self.coef_)
        if coef.shape != (targets, norm.features_in):
            raise ValueError(f"warm_start: the previous fit has {coef.shape[0]} model(s) of {coef.shape[1]} "
                             f"features, this data needs {targets} of {norm.features_in}")
        intercept = np.atleast_1d(self.intercept_)
        return np.stack([model_from_original(norm, coef[k], intercept[k]) for k in range(targets)])

    def _train(self, X: np.ndarray, Y: np.ndarray, norm: Normalizer, params: dict) -> np.ndarray:
        """Train one model per column of ``Y`` (targets in original units); set the fitted attributes.

        Returns the ``(targets, F + 1)`` models in normalised units. ``norm`` is fitted to ``X`` and
        to a label scale valid for every column.
        """
        n = X.shape[0]
        rng = check_random_state(self.random_state)
        seed = int(rng.randint(np.iinfo(np.int32).max))
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        Xn = norm.transform_X(X)[order]
        Yn = np.stack([norm.transform_y(Y[:, k]) for k in range(Y.shape[1])], axis=1)[order]
        W0 = self._warm_models(norm, Y.shape[1])
        R = Yn - Xn @ W0.T  # residual labels: W0 == 0 on a cold start, so R == Yn
        scale = np.maximum(1.0, np.max(np.abs(R), axis=0))  # keep the engine's labels inside [-1, 1]
        R = R / scale
        batch = min(params["batch"], n)  # a minibatch larger than the data is the full batch
        step = auto_step(Xn, batch) if params["step"] == "auto" else params["step"]
        backend = params["backend"]

        def run(device, line_bits, max_features):
            qds = None
            t0 = time.perf_counter()
            if backend != "float":
                from .driver.train import engine_layout

                # Packed in the engine's layout in the same pass, so host_time_s_ is all of the host's work.
                qds = QuantizedDataset.build(Xn, R[:, 0], bits=params["bits"], levels=params["levels"],
                                             copies=params["copies"], seed=seed, line_bits=line_bits,
                                             max_features=max_features, progress=False,
                                             layout=engine_layout(device.caps) if device is not None else "planes")
            self.host_time_s_ = time.perf_counter() - t0 if backend != "float" else None
            out = []
            for k in range(R.shape[1]):
                p = ex.Prepared(name="fit", X=Xn, y=R[:, k], task="regression", normalizer=norm)
                if backend == "float":
                    out.append(ex.run_float(p, step=step, batch=batch, epochs=params["epochs"]))
                else:
                    out.append(ex.run_engine(p, qds if k == 0 else _with_labels(qds, R[:, k]), backend=backend,
                                             step=step, batch=batch, epochs=params["epochs"], device=device,
                                             fmax_mhz=MEASURED_FMAX_MHZ, levels_name=params["levels"]))
            return out

        if backend == "sim":
            from .driver import open_device

            with open_device("sim", **(self.device_options or {})) as dev:
                runs = run(dev, dev.caps["LINE_BITS"], dev.caps["MAX_FEATURES"])
        else:
            runs = run(None, 512, None)

        W = W0 + scale[:, None] * np.stack([r.model for r in runs])
        self.step_ = float(step)
        self.n_iter_ = params["epochs"]
        # Loss of w0 + v on the normalised data = scale^2 x the loss of v on the scaled residuals.
        self.loss_curve_ = list(np.mean([s * s * np.asarray(r.train_loss) for s, r in zip(scale, runs)], axis=0))
        self.engine_cycles_ = sum(r.cycles for r in runs) if backend == "sim" else None
        # The whole run (start-up and the last snapshot included), not just its epochs' cycles.
        self.modelled_time_s_ = self.engine_cycles_ / (MEASURED_FMAX_MHZ * 1e6) if backend == "sim" else None
        self.normalizer_ = norm
        return W


# ---------------------------------------------------------------------------- the estimators
_PARAMS_DOC = """
    Parameters
    ----------
    bits : int, default=4
        Bits per quantized value, 1..8 (each value is stored as a (bits+1)-bit double-sample code).
    levels : {"uniform", "optimal"}, default="uniform"
        Level placement: uniform on [-1, 1], or ZipML's variance-minimising levels fitted to X.
    epochs : int, default=10
        Passes over the data (1..65535).
    batch_size : int, default=16
        Minibatch size (1..4096); larger than the data means full batch.
    step : "auto" or float in (0, 1), default="auto"
        Per-sample step: ``w -= step * sum over the minibatch of the gradients``. ``"auto"`` is
        ``lowbit train``'s: half the largest stable step, ``0.5 / (batch * mean ||x||^2)``.
    copies : int or None, default=None
        Independently quantized copies cycled over epochs (1..255); None is one per epoch, up to 8.
    backend : {"golden", "sim", "float"}, default="golden"
        Where training runs (module docstring). ``"float"`` ignores ``bits``/``levels``/``copies``.
    shuffle : bool, default=True
        Permute the rows once before quantizing (the engine then reads them in that order every epoch).
    warm_start : bool, default=False
        Continue from the previous fit's ``coef_``/``intercept_`` (module docstring: residual training).
    random_state : int, RandomState or None, default=None
        Seeds the shuffle, the level sample and the double sampling.
    device_options : dict or None, default=None
        Keyword arguments of ``lowbit.driver.open_device("sim", ...)`` (e.g. ``{"socket": path}`` to
        attach to ``make sim-server``, ``{"server": path}`` for another engine build).
"""

_FITTED_DOC = """
    loss_curve_ : list of float
        Per epoch, the mean squared residual of that epoch's model on the normalised, unquantized
        training data (features in [-1, 1], labels / max |y|), the ruler ``lowbit train`` uses.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when X has string column names.
    n_iter_ : int
        Epochs run.
    step_ : float
        The step used (``step="auto"`` resolved).
    normalizer_ : lowbit.data.Normalizer
        The fitted normaliser (the same class the CLI uses).
    engine_cycles_ : int or None
        Engine clock cycles of the fit (backend ``"sim"``; None otherwise).
    modelled_time_s_ : float or None
        ``engine_cycles_`` at the measured engine clock ``lowbit.experiment.MEASURED_FMAX_MHZ``.
    host_time_s_ : float or None
        Seconds this CPU spent quantizing and packing ``X`` for the fit (golden and sim backends;
        None for float): the host's share, to set beside ``modelled_time_s_``.
"""


class LowbitRegressor(RegressorMixin, _LowbitLinear):
    __doc__ = ("Least-squares linear regression trained at low precision on the lowbit engine.\n"
               + _PARAMS_DOC + """
    Attributes
    ----------
    coef_ : ndarray of shape (n_features,)
        In the original units of X and y.
    intercept_ : float
""" + _FITTED_DOC)

    def fit(self, X, y):
        """Normalise, quantize and train on ``backend``; returns self.

        Parameters
        ----------
        X : array-like or scipy sparse matrix of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        """
        params = self._validated_params()
        X, y = validate_data(self, X, y, accept_sparse=SPARSE_FORMATS, dtype=np.float64, y_numeric=True)
        X = X.toarray() if sparse.issparse(X) else X
        norm = Normalizer().fit(X, y)
        W = self._train(X, y[:, None], norm, params)
        self.coef_, self.intercept_ = norm.model_to_original(W[0])
        return self

    def predict(self, X):
        """``X @ coef_ + intercept_``; shape (n_samples,)."""
        return self._decision(X)


class LowbitClassifier(ClassifierMixin, _LowbitLinear):
    __doc__ = ("Linear classifier trained at low precision on the lowbit engine: least squares on +-1\n"
               "    labels (one-vs-rest for more than two classes). No predict_proba: least-squares scores\n"
               "    are not probabilities.\n" + _PARAMS_DOC + """
    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    coef_ : ndarray of shape (1, n_features) for two classes, else (n_classes, n_features)
        In the original units of X; the score is +1 for the positive class, -1 for the rest.
    intercept_ : ndarray of shape (1,) or (n_classes,)
""" + _FITTED_DOC + """        (Summed over the one-vs-rest runs; ``loss_curve_`` is their mean.)
""")

    def fit(self, X, y):
        """Normalise, quantize and train one +-1 least-squares model per class (one for two); returns self.

        Parameters
        ----------
        X : array-like or scipy sparse matrix of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
            Class labels (any hashable values with at least two distinct ones).
        """
        params = self._validated_params()
        X, y = validate_data(self, X, y, accept_sparse=SPARSE_FORMATS, dtype=np.float64)
        X = X.toarray() if sparse.issparse(X) else X
        check_classification_targets(y)
        classes, index = np.unique(y, return_inverse=True)
        if classes.size < 2:
            raise ValueError(f"LowbitClassifier needs samples of at least 2 classes, got 1 class ({classes[0]!r})")
        if self.warm_start and hasattr(self, "classes_") and not np.array_equal(classes, self.classes_):
            raise ValueError(f"warm_start: classes {classes.tolist()} differ from the previous fit's "
                             f"{self.classes_.tolist()}")
        if classes.size == 2:
            Y = np.where(index == 1, 1.0, -1.0)[:, None]
        else:
            Y = np.where(index[:, None] == np.arange(classes.size), 1.0, -1.0)
        norm = Normalizer().fit(X, np.ones(X.shape[0]))  # +-1 targets: label scale exactly 1
        W = self._train(X, Y, norm, params)
        coefs = [norm.model_to_original(w) for w in W]
        self.classes_ = classes
        self.coef_ = np.stack([c for c, _ in coefs])
        self.intercept_ = np.array([b for _, b in coefs])
        return self

    def decision_function(self, X):
        """Least-squares scores: shape (n_samples,) for two classes (> 0 means ``classes_[1]``), else (n_samples, n_classes)."""
        scores = self._decision(X)
        return scores.ravel() if scores.shape[1] == 1 else scores

    def predict(self, X):
        """The class with the highest score (for two classes: ``classes_[1]`` where the score is > 0)."""
        scores = self.decision_function(X)
        index = (scores > 0).astype(int) if scores.ndim == 1 else np.argmax(scores, axis=1)
        return self.classes_[index]


__all__ = ["LowbitRegressor", "LowbitClassifier", "BACKENDS", "LEVELS", "model_from_original"]
