"""Payloads passed between the woven core's blocks."""

from __future__ import annotations

from amaranth import signed
from amaranth.lib import data


def group_slots(delayed: bool) -> int:
    """Group-buffer slots of a build: 4 with pipelined SGD (the dot pass of group g+2 must not wait
    for the gradient pass of group g; docs/architecture.md, "Pipelined SGD"), else 2. The dot unit
    writes slot ``g mod slots``, the gradient unit reads it, the core sizes the buffer by it."""
    return 4 if delayed else 2


def residual_layout(samples: int) -> data.StructLayout:
    """One group's residuals as the gradient unit needs them.

    ``d[s] = delta * r_s`` (the per-plane operand, 0 for padding rows), ``m0r = m0 * sum_s r_s``
    (the constant part of ``m * r``, the same for every feature), ``valid`` the group's real rows
    and ``count`` how many there are.
    """
    return data.StructLayout({
        "d": data.ArrayLayout(signed(50), samples),
        "m0r": signed(56),
        "valid": samples,
        "count": range(samples + 1),
    })
