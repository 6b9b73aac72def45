"""Logistic and hinge loss for the engine (issue 13): the constants the golden model's arithmetic
uses, and their float64 counterparts for the reference SGD.

Pure NumPy, no engine state: the engine's per-row arithmetic itself is stated in
:mod:`lowbit_sim.golden` (the spec); docs/zipml.md derives the estimators.

Both losses are functions of the *margin* ``t = s z`` with ``z = x.w`` and ``s = +-1`` the label's
sign (a label ``y > 0`` is class +1, ``y <= 0`` class -1, so LIBSVM's {-1, +1} and {0, 1} both
work). The gradient of ``loss(t)`` for one row is ``s phi(t) x`` with

* logistic: ``loss(t) = log(1 + exp(-t))``, ``phi(t) = -1 / (1 + exp(t))``, in [-1, 0];
* hinge:    ``loss(t) = max(0, 1 - t)``,   ``phi(t) = -1 if t < 1 else 0`` (a subgradient).

The engine's naive estimator reads ``phi`` (logistic) from :data:`PHI_TABLE`, a 257-entry table of
``phi`` on [-8, 8] with linear interpolation between entries (worst error 4.7e-5 inside the
range, ``h^2/8 max|phi''|`` for h = 1/16, and 3.4e-4 beyond it, where the margin is clamped: far
below the noise of a b <= 8 quantized margin); the hinge's ``phi`` is one comparison. The Chebyshev estimator evaluates a polynomial whose coefficients
:func:`chebyshev_poly` computes on the host (the engine reads them from POLY_0..POLY_d).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .fixed import INT32_MAX, INT32_MIN, MODEL_FRAC, STEP_FRAC
from .registers import MAX_DEGREE, MAX_RANGE_SHIFT, Estimator, Loss

#: Names on the command line and in the JSON, in LOSS register order.
LOSS_NAMES = tuple(n.name.lower() for n in Loss)
ESTIMATOR_NAMES = tuple(n.name.lower() for n in Estimator)

#: The tables cover margins [-TABLE_SPAN, TABLE_SPAN] in TABLE_SEGMENTS segments of 2^SEG_SHIFT
#: LSBs (1/16): beyond +-8 the logistic derivative is within 3.4e-4 of its limit, and one
#: comparison-free clamp is all the saturation needs.
TABLE_SPAN = 8
SEG_SHIFT = 20
TABLE_SEGMENTS = (2 * TABLE_SPAN) << (MODEL_FRAC - SEG_SHIFT)  # 256
TABLE_LO = -TABLE_SPAN << MODEL_FRAC
TABLE_HI = TABLE_SPAN << MODEL_FRAC
ONE = 1 << MODEL_FRAC


def _grid() -> np.ndarray:
    return (TABLE_LO + (np.arange(TABLE_SEGMENTS + 1, dtype=np.int64) << SEG_SHIFT)) / ONE


def phi(loss: Loss, t) -> np.ndarray:
    """The loss's derivative in the margin (float64)."""
    t = np.asarray(t, dtype=np.float64)
    if loss is Loss.LOGISTIC:
        return -0.5 * (1.0 - np.tanh(t / 2))  # -1/(1+e^t) without overflow for large |t|
    if loss is Loss.HINGE:
        return np.where(t < 1.0, -1.0, 0.0)
    raise ValueError(f"phi is defined for logistic and hinge, not {loss.name}")


def loss_value(loss: Loss, t) -> np.ndarray:
    """The loss of a margin (float64)."""
    t = np.asarray(t, dtype=np.float64)
    if loss is Loss.LOGISTIC:
        return np.logaddexp(0.0, -t)
    if loss is Loss.HINGE:
        return np.maximum(0.0, 1.0 - t)
    raise ValueError(f"loss_value is defined for logistic and hinge, not {loss.name}")


def _table(values: np.ndarray) -> np.ndarray:
    q = np.rint(values * ONE).astype(np.int64)
    q.setflags(write=False)
    return q


#: ``phi_logistic`` at the 257 grid points -8, -8 + 1/16, ..., 8, int at 2^-24 (a ROM in hardware).
PHI_TABLE = _table(phi(Loss.LOGISTIC, _grid()))
#: ``log(1 + exp(-t))`` at the same points, for the engine's loss accumulator.
LOSS_TABLE = _table(loss_value(Loss.LOGISTIC, _grid()))


def label_signs(labels) -> np.ndarray:
    """``+1`` for labels > 0, ``-1`` otherwise (int64): the class the engine reads from a label."""
    return np.where(np.asarray(labels) > 0, 1, -1).astype(np.int64)


# ------------------------------------------------------------------------------- the polynomial
def chebyshev_poly(loss: Loss, degree: int, range_shift: int) -> tuple[int, ...]:
    """POLY_0..POLY_d: ``phi(2^range_shift u)`` interpolated at the ``degree + 1`` Chebyshev nodes
    of [-1, 1], as monomial coefficients of ``u`` in int32 at 2^-24.

    Interpolation at Chebyshev nodes is within a factor ``2 + (2/pi) log(d + 1)`` of the best
    uniform approximation of degree d, and its monomial coefficients stay small on [-1, 1] (the
    variable is the margin divided by 2^RANGE, so they do not scale with the margin's range).
    """
    if not 1 <= degree <= MAX_DEGREE:
        raise ValueError(f"degree must be in 1..{MAX_DEGREE}, got {degree}")
    if not 0 <= range_shift <= MAX_RANGE_SHIFT:
        raise ValueError(f"range_shift must be in 0..{MAX_RANGE_SHIFT}, got {range_shift}")
    span = float(1 << range_shift)
    cheb = np.polynomial.chebyshev.chebinterpolate(lambda u: phi(loss, span * u), degree)
    mono = np.polynomial.chebyshev.cheb2poly(cheb)
    q = np.rint(mono * ONE)
    if q.min() < INT32_MIN or q.max() > INT32_MAX:
        raise ValueError(f"degree {degree} on +-{span:g}: coefficients beyond int32 at 2^-{MODEL_FRAC}")
    return tuple(int(v) for v in q)


# ------------------------------------------------------------------------------- a run's choice
@dataclass(frozen=True)
class LossConfig:
    """What a run asks of the loss registers, in host units.

    Parameters
    ----------
    loss, estimator : str
        One of :data:`LOSS_NAMES` / :data:`ESTIMATOR_NAMES`.
    degree : int
        The Chebyshev polynomial's degree (ignored by the naive estimator).
    margin_range : int
        The polynomial is fitted on margins in [-margin_range, margin_range]; a power of two.
    l2 : float
        L2 regularisation per row (``lambda``): each row adds ``lambda w`` to the gradient.
    """

    loss: str = "squared"
    estimator: str = "naive"
    degree: int = 3
    margin_range: int = 4
    l2: float = 0.0

    def __post_init__(self):
        if self.loss not in LOSS_NAMES:
            raise ValueError(f"loss must be one of {LOSS_NAMES}, got {self.loss!r}")
        if self.estimator not in ESTIMATOR_NAMES:
            raise ValueError(f"estimator must be one of {ESTIMATOR_NAMES}, got {self.estimator!r}")
        if self.loss == "squared" and self.estimator != "naive":
            raise ValueError("the squared loss has its own unbiased estimator (double sampling); "
                             "--estimator chebyshev is for --loss logistic or hinge")
        if not 1 <= self.degree <= MAX_DEGREE:
            raise ValueError(f"degree must be in 1..{MAX_DEGREE}, got {self.degree}")
        r = self.margin_range
        if not (isinstance(r, int) and r >= 1 and r & (r - 1) == 0 and r.bit_length() - 1 <= MAX_RANGE_SHIFT):
            raise ValueError(f"margin range must be a power of two in 1..{1 << MAX_RANGE_SHIFT}, got {r!r}")
        if not (np.isfinite(self.l2) and 0 <= self.l2 < 1):
            raise ValueError(f"l2 must be in [0, 1), got {self.l2!r}")
        if self.l2 and l2_to_fixed(self.l2) == 0:
            raise ValueError(f"l2 {self.l2!r} is below the L2 register's resolution 2^-{STEP_FRAC}")

    @property
    def code(self) -> Loss:
        return Loss[self.loss.upper()]

    @property
    def kind(self) -> Estimator:
        return Estimator[self.estimator.upper()]

    @property
    def chebyshev(self) -> bool:
        return self.kind is Estimator.CHEBYSHEV

    @property
    def range_shift(self) -> int:
        return self.margin_range.bit_length() - 1

    def samples(self) -> int:
        """Independent copies one row reads: d + 1 for Chebyshev, 1 otherwise."""
        return self.degree + 1 if self.chebyshev else 1

    def registers(self) -> dict:
        """The EngineConfig fields (lowbit_sim.golden) for this choice."""
        d = self.degree if self.chebyshev else 0
        return dict(loss=int(self.code), l2=l2_to_fixed(self.l2), estimator=int(self.kind), degree=d,
                    margin_range=self.range_shift if self.chebyshev else 0,
                    poly=chebyshev_poly(self.code, d, self.range_shift) if self.chebyshev else ())

    def describe(self) -> str:
        """Label suffix of a run: empty for plain least squares."""
        if self.loss == "squared":
            return f"l2={self.l2:g}" if self.l2 else ""
        est = f"chebyshev{self.degree}" if self.chebyshev else "naive"
        return f"{self.loss} {est}" + (f" l2={self.l2:g}" if self.l2 else "")


def l2_to_fixed(l2: float) -> int:
    """The L2 register (uint32 at 2^-32) for ``lambda``."""
    return int(round(float(l2) * (1 << STEP_FRAC)))
