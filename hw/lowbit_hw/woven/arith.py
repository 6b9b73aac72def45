"""Small arithmetic helpers shared by the woven core's blocks: ``sat32`` as gates, pipeline registers,
adder-tree levels. (Rounding shifts use ``lowbit.contract.fixed.rshift_round`` itself: it is plain
operators, so the golden model's definition elaborates to the RTL's adder and shift.)"""

from __future__ import annotations

from amaranth import Mux, Signal, signed
from amaranth.hdl import Value

from lowbit.contract.fixed import INT32_MAX, INT32_MIN


def sat32(x: Value) -> Value:
    """Clamp to int32 (``lowbit.contract.fixed.sat32``) by looking at the bits above 31 (all equal: in range)
    rather than comparing against the limits, which would take two carry chains."""
    x = x.as_signed()
    if len(x) <= 32:
        return x
    top = x[31:]
    fits = (top == 0) | (top == (1 << len(top)) - 1)
    return Mux(fits, x[:32], Mux(x[-1], INT32_MIN, INT32_MAX)).as_signed()[:32].as_signed()


def delay(m, value, n: int, name: str, reset_less: bool = True):
    """``value`` ``n`` cycles later, through ``n`` registers (data: ``reset_less``)."""
    for i in range(n):
        r = Signal.like(value, name=f"{name}_d{i + 1}", reset_less=reset_less)
        m.d.sync += r.eq(value)
        value = r
    return value


def add_levels(values, levels: int):
    """``levels`` levels of a balanced adder tree (pairs summed, an odd one passed on)."""
    values = list(values)
    for _ in range(levels):
        if len(values) == 1:
            break
        values = [values[i] + values[i + 1] if i + 1 < len(values) else values[i] for i in range(0, len(values), 2)]
    return values


def register_all(m, values, name: str):
    """One register per value, each as wide as the value's own expression (no reset: data)."""
    out = []
    for i, v in enumerate(values):
        r = Signal(v.shape(), name=f"{name}_{i}", reset_less=True)
        m.d.sync += r.eq(v)
        out.append(r)
    return out
