"""``LabelUnpacker``: label lines (``W/32`` little-endian int32 words) -> one label per row."""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["LabelUnpacker"]


class LabelUnpacker(wiring.Component):
    """Splits label lines into int32 labels, word ``i`` at line bits ``[32i, 32i+32)``.

    ``load`` sets the epoch's label count ``N``: the unpacker delivers exactly ``N`` labels, takes
    exactly ``ceil(N * 32 / W)`` lines for them and drops the unused words of the last line, so
    the next epoch starts on a fresh line.

    Attributes
    ----------
    lines : In(stream.Signature(line_bits))
    labels : Out(stream.Signature(signed(32)))
    load : In(1)
    count : In(32)
    """

    def __init__(self, *, line_bits: int):
        if line_bits % 32:
            raise ValueError(f"line_bits must be a multiple of 32, got {line_bits!r}")
        self.line_bits = line_bits
        super().__init__({"lines": In(stream.Signature(line_bits)), "labels": Out(stream.Signature(signed(32))),
                          "load": In(1), "count": In(32)})

    def elaborate(self, platform):
        m = Module()
        words = self.line_bits // 32
        buf = Signal(self.line_bits)
        avail = Signal(range(words + 1))  # words of buf not yet delivered
        left = Signal(32)  # labels still to deliver in this epoch (including those in buf)
        m.d.comb += [self.labels.valid.eq(avail != 0), self.labels.payload.eq(buf[:32]),
                     self.lines.ready.eq((avail == 0) & (left != 0))]
        pop = self.labels.valid & self.labels.ready
        with m.If(self.lines.valid & self.lines.ready):
            m.d.sync += [buf.eq(self.lines.payload), avail.eq(words)]
        with m.Elif(pop):
            m.d.sync += [buf.eq(buf >> 32), left.eq(left - 1)]
            # The epoch's last label: drop the rest of the line.
            m.d.sync += avail.eq(Mux(left == 1, 0, avail - 1))
        with m.If(self.load):
            m.d.sync += left.eq(self.count)
        return m
