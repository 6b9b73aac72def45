"""Write-side blocks: ``SnapshotWriter`` (model rows -> lines) and ``RecordWriter`` (64-byte records)."""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from lowbit.contract.format import RECORD_BYTES

from ..ccip import CCIP_ADDR_BITS
from ..ecp5 import global_buffer
from ..interfaces import write_request_layout

__all__ = ["SnapshotWriter", "RecordWriter"]


class SnapshotWriter(wiring.Component):
    """Writes ``lines`` lines of the model (rows of ``lanes`` int32 words) from ``base`` on.

    With ``P = line_bits / 32`` words per line, a model row fills ``lanes / P`` lines when
    ``lanes >= P`` and a line takes ``P / lanes`` rows otherwise. It reads the model through a
    synchronous read port (``model_addr`` -> ``model_data`` next cycle): one row read, then its
    lines, one per accepted cycle. While a row's lines go out the port already shows the next row
    (``model_addr`` moves on at the capture), so with two or more lines per row the next row is
    captured with the row's last line, and lines leave one a cycle: a scale-out round ends with a
    snapshot, so its cycles count (docs/scaleout.md).

    Attributes
    ----------
    start : In(1)
        Pulse: latch ``base`` and ``lines`` and begin.
    busy : Out(1)
    write : Out(stream.Signature(write_request_layout(line_bits)))
    """

    def __init__(self, *, line_bits: int, lanes: int, row_beats_max: int):
        self.line_bits, self.lanes, self.row_beats_max = line_bits, lanes, row_beats_max
        super().__init__({
            "start": In(1), "base": In(CCIP_ADDR_BITS), "lines": In(32), "busy": Out(1),
            "model_addr": Out(range(row_beats_max)),
            "model_data": In(data.ArrayLayout(signed(32), lanes)),
            "write": Out(stream.Signature(write_request_layout(line_bits))),
        })

    def elaborate(self, platform):
        m = Module()
        W, L = self.line_bits, self.lanes
        P = W // 32
        row_bits = 32 * L
        addr = Signal(CCIP_ADDR_BITS)
        left = Signal(32)
        row = Signal(range(self.row_beats_max))
        buf = Signal(max(W, row_bits), reset_less=True)   # data: read only in EMIT, after a load
        # (L >= P) buf loads a row or shifts its next line down: the enable reaches every bit of
        # buf and the load/shift select as many LUTs (~1k each at the board's 32 x 32-bit rows),
        # so both are on global networks (ecp5.global_buffer; docs/board.md, tenth pass)
        buf_load, buf_shift = Signal(), Signal()
        sub = Signal(range(max(2, L // P, P // L)))
        # "the last line" (left == 1) and "the row's last line" (sub == per - 1) are registers,
        # kept with left and sub: the handshake's enables then test two flip-flops, not a 32-bit
        # compare
        last, sub_last = Signal(), Signal()
        m.d.comb += [self.model_addr.eq(row), self.write.payload.address.eq(addr)]
        fire = self.write.valid & self.write.ready
        per = L // P if L >= P else P // L  # lines per row, or rows per line
        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start & (self.lines != 0)):
                    m.d.sync += [addr.eq(self.base), left.eq(self.lines), row.eq(0), sub.eq(0),
                                 last.eq(self.lines == 1), sub_last.eq(per == 1)]
                    m.next = "READ"
            with m.State("READ"):  # model_addr = row now; data next cycle
                m.d.comb += self.busy.eq(1)
                m.next = "CAPTURE"
            with m.State("CAPTURE"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += row.eq(row + 1)
                if L >= P:
                    m.d.comb += buf_load.eq(1)
                    m.next = "EMIT"
                else:  # shift rows in from the top: after P/L rows the first is at bit 0
                    m.d.sync += [buf.eq((buf >> row_bits) | (self.model_data.as_value() << (W - row_bits))),
                                 sub.eq(sub + 1)]
                    with m.If(sub == per - 1):
                        m.d.sync += sub.eq(0)
                        m.next = "EMIT"
                    with m.Else():
                        m.next = "READ"
            with m.State("EMIT"):
                m.d.comb += [self.busy.eq(1), self.write.valid.eq(1)]
                # the line is always buf's low W bits: a row's later lines are shifted down to
                # them (a W-bit multiplexer over the row, selected by sub, was ~1k LUT inputs on
                # sub's four bits, among the board router's most congested nets)
                m.d.comb += self.write.payload.data.eq(buf[:W])
                with m.If(fire):
                    m.d.sync += [addr.eq(addr + 1), left.eq(left - 1), last.eq(left == 2)]
                    with m.If(last):
                        m.next = "IDLE"
                    with m.Else():
                        if L >= P and per > 1:
                            with m.If(sub_last):  # model_data is the next row since the row's 2nd cycle
                                m.d.comb += buf_load.eq(1)
                                m.d.sync += [sub.eq(0), sub_last.eq(0), row.eq(row + 1)]
                            with m.Else():
                                m.d.comb += buf_shift.eq(1)
                                m.d.sync += [sub.eq(sub + 1), sub_last.eq(sub == per - 2)]
                        elif L >= P:
                            m.next = "CAPTURE"  # model_addr has shown the next row for a cycle
                        else:
                            m.next = "READ"
        if L >= P:
            load = global_buffer(m, platform, buf_load, "snap_load")
            move = global_buffer(m, platform, buf_load | buf_shift, "snap_move")
            with m.If(move):
                m.d.sync += buf.eq(Mux(load, self.model_data.as_value(), buf >> W))
        return m


class RecordWriter(wiring.Component):
    """Writes one 64-byte record (eight little-endian uint64) as ``512 / line_bits`` lines, after a
    write fence if ``fence`` is set at ``start`` (the status record: the fence orders it behind
    every write before it, so the host never sees it before the model it announces).

    Attributes
    ----------
    start : In(1)
        Pulse: latch ``record`` (word ``i`` at bits ``[64i, 64i+64)``), ``address`` and ``fence``.
    busy : Out(1)
    write : Out(stream.Signature(write_request_layout(line_bits)))
    """

    def __init__(self, *, line_bits: int):
        self.line_bits = line_bits
        super().__init__({
            "start": In(1), "address": In(CCIP_ADDR_BITS), "record": In(RECORD_BYTES * 8), "fence": In(1),
            "busy": Out(1), "write": Out(stream.Signature(write_request_layout(line_bits))),
        })

    def elaborate(self, platform):
        m = Module()
        W = self.line_bits
        n = RECORD_BYTES * 8 // W
        rec = Signal(RECORD_BYTES * 8)
        addr = Signal(CCIP_ADDR_BITS)
        idx = Signal(range(n))
        active = Signal()   # a line (or the fence) is offered: valid is this register
        fencing = Signal()  # the fence goes first
        m.d.comb += [self.busy.eq(active), self.write.valid.eq(active), self.write.payload.fence.eq(fencing),
                     self.write.payload.address.eq(addr), self.write.payload.data.eq(rec.word_select(idx, W))]
        with m.If(self.start):
            m.d.sync += [rec.eq(self.record), addr.eq(self.address), idx.eq(0), fencing.eq(self.fence),
                         active.eq(1)]
        with m.Elif(self.write.valid & self.write.ready):
            with m.If(fencing):
                m.d.sync += fencing.eq(0)
            with m.Else():
                m.d.sync += [addr.eq(addr + 1), idx.eq(idx + 1)]
                with m.If(idx == n - 1):
                    m.d.sync += active.eq(0)
        return m
