"""Fixed-point formats shared by the quantizer, the golden model, the RTL and the driver.

Every integer the engine sees has one of the formats below; the golden model
(:mod:`lowbit.contract.golden`) states the arithmetic done with them. Values are two's complement.

========  =======  ======================  =============================================
quantity  width    scale (value = int/2^k)  notes
========  =======  ======================  =============================================
level     int16    2^-14 (LEVEL_FRAC)      normalised features live in [-1, 1]
m (mean)  int17    2^-15 (CODE_FRAC)       ``lo + hi`` of the two level indices: exact
e (corr)  uint24   2^-23 (CORR_FRAC)       ``(hi - lo)^2 / 4`` rounded half up; <= 1
model w   int32    2^-24 (MODEL_FRAC)      saturating, range [-128, 128)
label y   int32    2^-24 (MODEL_FRAC)
step      uint32   2^-32 (STEP_FRAC)       per-sample step; the batch sum is scaled by it
loss acc  uint64   2^-32 (LOSS_FRAC)       sum of ``r*r >> 16``, saturating
========  =======  ======================  =============================================
"""

from __future__ import annotations

import numpy as np

LEVEL_FRAC = 14
LEVEL_ONE = 1 << LEVEL_FRAC
CODE_FRAC = 15
# m = l_lo + l_hi of two int16 levels at 2^-14, read at 2^-15: |m| <= 2, so int17.
M_BITS = CODE_FRAC + 2
# The correction e = (d/2)^2 needs more fractional bits than m: at b = 8 (uniform levels 2/255 apart)
# it is 1.5e-5, half an LSB at 2^-15, which would round to twice its value. At 2^-23 it is 129 LSBs.
CORR_FRAC = 23
CORR_BITS = 24                      # e <= 1 (two levels 2 apart): 2^23 needs 24 bits unsigned
CORR_SHIFT = CORR_FRAC - CODE_FRAC  # e*w (2^-47) is rounded by this much onto m*r's 2^-39
MODEL_FRAC = 24
STEP_FRAC = 32
LOSS_SHIFT = 16
LOSS_FRAC = 2 * MODEL_FRAC - LOSS_SHIFT  # 32

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1
UINT64_MAX = (1 << 64) - 1


def rshift_round(x, k: int):
    """Arithmetic right shift by ``k`` rounding half up: ``(x + 2^(k-1)) >> k``.

    This is what the RTL does (one adder, then a shift), so the golden model uses it verbatim.
    """
    return (x + (1 << (k - 1))) >> k


def sat32(x):
    """Saturate to int32 (the engine clamps, it never wraps)."""
    return np.clip(x, INT32_MIN, INT32_MAX)


def to_fixed(x, frac: int, *, what: str = "value", lo: int = INT32_MIN, hi: int = INT32_MAX) -> np.ndarray:
    """Round floats to fixed point with ``frac`` fractional bits, refusing values out of range."""
    a = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{what} contains NaN or inf")
    q = np.rint(a * (1 << frac))
    if q.size and (q.min() < lo or q.max() > hi):
        raise ValueError(
            f"{what} out of range for fixed point with {frac} fractional bits: "
            f"[{a.min():.6g}, {a.max():.6g}] not within [{lo / (1 << frac):.6g}, {hi / (1 << frac):.6g}]"
        )
    return q.astype(np.int64)


def model_to_float(w) -> np.ndarray:
    return np.asarray(w, dtype=np.float64) / (1 << MODEL_FRAC)


def labels_to_fixed(y) -> np.ndarray:
    """Normalised labels (|y| <= 1 after :class:`lowbit.data.Normalizer`) to int32 at MODEL_FRAC."""
    return to_fixed(y, MODEL_FRAC, what="labels").astype(np.int32)


def step_to_fixed(step: float) -> int:
    """The engine's STEP register from a per-sample step size in (0, 1)."""
    if not np.isfinite(step) or step <= 0:
        raise ValueError(f"step must be a positive finite number, got {step!r}")
    q = int(round(step * (1 << STEP_FRAC)))
    if q < 1 or q >= (1 << 32):
        raise ValueError(f"step {step!r} is not representable as uint32 at 2^-{STEP_FRAC}: need 2^-32 <= step < 1")
    return q


def loss_to_float(acc: int, rows: int) -> float:
    """Mean squared residual (normalised units) from an epoch's loss accumulator."""
    return float(acc) / (1 << LOSS_FRAC) / rows
