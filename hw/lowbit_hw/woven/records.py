"""Payloads passed between the woven core's blocks."""

from __future__ import annotations

from amaranth import signed
from amaranth.lib import data


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
