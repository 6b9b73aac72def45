"""``BitPlaneDecoder``: bit-plane blocks of ``b+1`` lines -> beats of ``lanes`` codes."""

from __future__ import annotations

from amaranth import Cat, Const, Module, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from lowbit.contract.format import MAX_BITS

from .params import CODE_BITS, check_lanes

__all__ = ["BitPlaneDecoder", "beat_layout"]


def beat_layout(lanes: int) -> data.ArrayLayout:
    """A beat: ``lanes`` codes of :data:`CODE_BITS` bits (lane ``l`` is code ``s + l`` of the stream)."""
    return data.ArrayLayout(unsigned(CODE_BITS), lanes)


class BitPlaneDecoder(wiring.Component):
    """Collects the ``b+1`` plane lines of a block and emits its ``line_bits / lanes`` beats.

    A block of ``W`` codes arrives as ``b+1`` lines, line ``k`` holding bit ``k`` of every code
    (``lowbit.contract.format``). The decoder writes line ``k`` into plane register ``k`` of a *fill* buffer;
    when the block is complete it moves the planes to a *drain* shift register in one cycle, and
    beat ``s`` is then bit ``s*lanes + l`` of every plane for lane ``l``. Shifting the drain planes
    right by ``lanes`` per beat means every lane always reads the same bit position: no runtime
    barrel shifter or wide multiplexer, for every ``b`` (planes above ``b`` are masked to 0).
    Fill and drain double-buffer the block, so the next block arrives while this one is decoded,
    and a line is accepted in the very cycle the drain takes over the fill buffer (no bubble when
    memory is the bottleneck).

    ``load`` sets the number of lines to accept (one epoch's ``lines_per_copy``): the decoder stops
    taking lines after that many, so the line counters of an epoch record are exact even while the
    shell already holds the next epoch's lines.

    Parameters
    ----------
    line_bits : int
        Line width ``W``.
    lanes : int
        Codes per beat; a power of two dividing ``W`` and at most ``ROW_ALIGN``.

    Attributes
    ----------
    lines : In(stream.Signature(line_bits))
    beats : Out(stream.Signature(beat_layout(lanes)))
    bits : In(4)
        Quantization bits ``b`` (1..8), constant during a run.
    load : In(1)
        Pulse: accept ``count`` more lines (an epoch).
    count : In(32)
    """

    def __init__(self, *, line_bits: int, lanes: int):
        check_lanes(line_bits, lanes)
        self.line_bits, self.lanes = line_bits, lanes
        super().__init__({
            "lines": In(stream.Signature(line_bits)),
            "beats": Out(stream.Signature(beat_layout(lanes))),
            "bits": In(4),
            "load": In(1),
            "count": In(32),
        })

    def elaborate(self, platform):
        m = Module()
        W, L = self.line_bits, self.lanes
        planes = MAX_BITS + 1
        beats_per_block = W // L

        fill = [Signal(W, name=f"fill{k}") for k in range(planes)]
        fill_idx = Signal(range(planes))  # next plane line to write
        fill_full = Signal()
        drain = [Signal(W, name=f"drain{k}") for k in range(planes)]
        drain_left = Signal(range(beats_per_block + 1))  # beats still to emit from the drain planes
        lines_left = Signal(32)

        # Transfer when the fill block is complete and the drain empties in this cycle.
        out_fire = self.beats.valid & self.beats.ready
        drain_free = (drain_left == 0) | ((drain_left == 1) & out_fire)
        xfer = fill_full & drain_free

        m.d.comb += self.lines.ready.eq((~fill_full | xfer) & (lines_left != 0))
        line_fire = self.lines.valid & self.lines.ready

        with m.If(self.load):
            m.d.sync += lines_left.eq(self.count)
        with m.Elif(line_fire):
            m.d.sync += lines_left.eq(lines_left - 1)

        last_plane = self.bits  # plane index b is the last of the block
        with m.If(xfer):
            m.d.sync += fill_full.eq(0)
        with m.If(line_fire):  # may coincide with xfer: plane 0 of the next block (b >= 1, never last)
            for k in range(planes):
                with m.If(fill_idx == k):
                    m.d.sync += fill[k].eq(self.lines.payload)
            with m.If(fill_idx == last_plane):
                m.d.sync += [fill_idx.eq(0), fill_full.eq(1)]
            with m.Else():
                m.d.sync += fill_idx.eq(fill_idx + 1)

        with m.If(xfer):
            m.d.sync += [d.eq(f) for d, f in zip(drain, fill)]
            m.d.sync += drain_left.eq(beats_per_block)
        with m.Elif(out_fire):
            m.d.sync += [d.eq(d >> L) for d in drain]
            m.d.sync += drain_left.eq(drain_left - 1)

        # Planes above b hold stale lines of earlier blocks or runs: mask them.
        code_mask = Signal(planes)
        m.d.comb += code_mask.eq((Const(1, planes + 1) << (self.bits + 1)) - 1)
        m.d.comb += self.beats.valid.eq(drain_left != 0)
        for lane in range(L):
            m.d.comb += self.beats.payload[lane].eq(Cat(*(d[lane] for d in drain)) & code_mask)
        return m
