"""Arithmetic helpers that spell out the golden model's operators in Amaranth (its rounding shift,
``lowbit.contract.fixed.rshift_round``, is one adder and a shift, and serves the RTL as it is)."""

from __future__ import annotations

from amaranth import Mux

__all__ = ["sat", "tree_sum"]


def sat(x, bits: int = 32):
    """Clamp a signed value to ``bits`` bits (``lowbit.contract.fixed.sat32`` for 32)."""
    hi, lo = (1 << (bits - 1)) - 1, -(1 << (bits - 1))
    return Mux(x > hi, hi, Mux(x < lo, lo, x))[:bits].as_signed()


def tree_sum(values):
    """Balanced adder tree (log2(n) adder levels rather than a chain of n-1)."""
    values = list(values)
    if not values:
        raise ValueError("tree_sum of nothing")
    while len(values) > 1:
        values = [values[i] + values[i + 1] if i + 1 < len(values) else values[i] for i in range(0, len(values), 2)]
    return values[0]
