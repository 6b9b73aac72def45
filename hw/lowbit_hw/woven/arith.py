"""Small arithmetic helpers shared by the woven core's blocks (the golden model's ``rnd``/``sat32``)."""

from __future__ import annotations

from amaranth import Mux, signed
from amaranth.hdl import Value

from lowbit.fixed import INT32_MAX, INT32_MIN


def rnd(x: Value, k: int) -> Value:
    """``(x + 2^(k-1)) >> k`` with an arithmetic shift, as ``lowbit.fixed.rshift_round``."""
    return (x + (1 << (k - 1))) >> k


def sat32(x: Value) -> Value:
    """Clamp to int32 (``lowbit.fixed.sat32``)."""
    return Mux(x > INT32_MAX, INT32_MAX, Mux(x < INT32_MIN, INT32_MIN, x)).as_signed()[:32].as_signed()


def tree_sum(values):
    """Balanced sum of a list of values (one level of adders per halving)."""
    values = list(values)
    while len(values) > 1:
        values = [values[i] + values[i + 1] if i + 1 < len(values) else values[i] for i in range(0, len(values), 2)]
    return values[0]
