"""``RowBuffer``: the codes of the rows between their dot pass and their gradient pass."""

from __future__ import annotations

from amaranth import Module, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .params import CODE_BITS

__all__ = ["RowBuffer"]


class RowBuffer(wiring.Component):
    """A FIFO of beats (``lanes`` codes each), ``depth`` beats (a power of two).

    The dot pass writes a row's beats as it multiplies them; the gradient pass reads them back
    once the row's residual is known. With ``depth >= 2 * max row beats`` the dot pass of row
    ``i+1`` runs while the gradient pass of row ``i`` reads its beats, so neither waits for the
    other in steady state. Storing codes (9 bits a lane) rather than decoded ``(m, e)`` (33 bits)
    costs a second code-table port and saves 3.7x the buffer.

    It is driven by enables, not streams: the dot pass writes only when ``space`` is high, and the
    gradient pass reads (``r_en``) only beats that were written (it starts a row after the row's
    residual, which comes after its last beat). ``r_data`` is valid the cycle after ``r_en``.

    Attributes
    ----------
    w_en, w_data : In
    space : Out(1)
        Fewer than ``depth`` beats stored (registered level).
    r_en : In(1)
    r_data : Out(beat)
    """

    def __init__(self, *, lanes: int, depth: int):
        if not isinstance(depth, int) or depth < 2 or depth & (depth - 1):
            raise ValueError(f"depth must be a power of two >= 2, got {depth!r}")
        self.lanes, self.depth = lanes, depth
        beat = data.ArrayLayout(unsigned(CODE_BITS), lanes)
        super().__init__({"w_en": In(1), "w_data": In(beat), "space": Out(1),
                          "r_en": In(1), "r_data": Out(beat)})

    def elaborate(self, platform):
        m = Module()
        D = self.depth
        mem = Memory(shape=data.ArrayLayout(unsigned(CODE_BITS), self.lanes), depth=D, init=[])
        m.submodules.mem = mem
        wp, rp = mem.write_port(), mem.read_port()
        wr = Signal(range(D))
        rd = Signal(range(D))
        level = Signal(range(D + 1))
        m.d.comb += [wp.en.eq(self.w_en), wp.addr.eq(wr), wp.data.eq(self.w_data),
                     rp.addr.eq(rd), self.r_data.eq(rp.data), self.space.eq(level < D)]
        m.d.sync += [wr.eq(wr + self.w_en), rd.eq(rd + self.r_en), level.eq(level + self.w_en - self.r_en)]
        return m
