"""``ModelLoader``: a model in snapshot layout (lines of int32 words) -> rows of the model memory."""

from __future__ import annotations

from amaranth import Cat, Module, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from lowbit.contract.format import ROW_ALIGN

__all__ = ["ModelLoader"]


class ModelLoader(wiring.Component):
    """Takes the model's lines (``lowbit.contract.format``: word ``j`` = feature ``j``, ``W/32``
    words per line) and writes model row ``c`` (features ``32c .. 32c+31``) once its
    ``1024 / W`` lines are in: the lines shift into a row register (no multiplexer per word),
    and the row is written the cycle after its last line (``w_en`` is a register).

    Always ready, so it has no ``ready`` (the sequencer routes exactly the model's lines here,
    ``loading``).

    Attributes
    ----------
    start : In(1)
        Pulse: the next line is row 0's first.
    line_valid, line : In
        A model line this cycle, and the line.
    w_en, w_addr, w_data : Out
        A model memory write (``ModelMemory``).
    """

    def __init__(self, *, line_bits: int, depth: int):
        if (ROW_ALIGN * 32) % line_bits or line_bits > ROW_ALIGN * 32:
            raise ValueError(f"a model row of {ROW_ALIGN} words must be whole lines of {line_bits} bits")
        self.line_bits, self.depth = line_bits, depth
        self.per_row = ROW_ALIGN * 32 // line_bits
        super().__init__({
            "start": In(1), "line_valid": In(1), "line": In(line_bits),
            "w_en": Out(1), "w_addr": Out(range(depth)), "w_data": Out(data.ArrayLayout(signed(32), ROW_ALIGN)),
        })

    def elaborate(self, platform):
        m = Module()
        W, n = self.line_bits, self.per_row
        # The output port is the shift register itself: as a comb alias of an inner register it
        # made yosys 0.70's ABC9 fail an assertion on this module in the board synthesis.
        row = self.w_data.as_value()
        part = Signal(range(n))           # lines of the row taken so far
        addr = Signal(range(self.depth))  # the row being assembled
        m.d.sync += self.w_en.eq(0)
        fire = self.line_valid
        with m.If(self.start):
            m.d.sync += [part.eq(0), addr.eq(0)]
        with m.Elif(fire):
            # the newest line enters at the top: after n lines, line i holds words i*W/32 ...
            m.d.sync += [row.eq(Cat(row[W:], self.line) if n > 1 else self.line),
                         part.eq(part + 1)]
            with m.If(part == n - 1):
                m.d.sync += [part.eq(0), self.w_en.eq(1), self.w_addr.eq(addr), addr.eq(addr + 1)]
        return m
