"""``ReadEngine``: the core's read commands -> CCI-P c0 read requests -> in-order lines."""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..ccip import CCIP_ADDR_BITS, CCIP_MDATA_BITS, CcipSignature
from ..interfaces import ReadCommand
from .reorder import ReadReorderBuffer

__all__ = ["ReadEngine", "CHANNELS"]

#: Read channels, in tag order: ``mdata[15]`` is the channel's index.
CHANNELS = ("data", "label")
#: mdata bits left for the slot index (bit 15 is the channel).
_SLOT_BITS = CCIP_MDATA_BITS - 1


class ReadEngine(wiring.Component):
    """Two read channels (data, labels) sharing CCI-P c0.

    Each channel takes :class:`ReadCommand` s (first line, line count) and splits them into CCI-P
    read requests of 4, 2 or 1 lines, each aligned to its own size (the largest that the current
    address and the remaining count allow). A request is issued only when its channel's
    :class:`ReadReorderBuffer` has reserved a slot for every line, so responses (which have no
    ready) are always accepted. The tag in ``mdata`` is the channel in bit 15 and the first reserved
    slot below it; a response line goes to slot ``tag + cl_num`` (mod depth), whatever order the
    lines of all requests return in. Lines leave each reorder buffer in command order.

    The two channels are arbitrated round-robin, one request per cycle, on each channel's bid of
    the cycle before (a channel granted sits out the next cycle: see ``elaborate``). Almost-full:
    a request is decided one cycle before it is on ``c0_tx`` (the request is registered), and no
    request is decided while ``almfull`` is high, so at most one request follows its assertion
    (CCI-P allows 8).

    ``flush`` drops the channels' current and offered commands, stops issuing, and has the reorder
    buffers swallow the responses still in flight; commands are refused until they have all
    arrived. ``idle`` is high when no command is being split, no line is in flight and no line waits
    for delivery.

    Parameters
    ----------
    line_bits : int
        Line width.
    data_depth : int
        Reorder slots of the data channel: power of two, >= 4. To sustain ``r`` lines/cycle with a
        host latency of ``L`` cycles it needs about ``r * L`` slots (256 covers 0.6 lines/cycle at
        400 cycles).
    label_depth : int
        Reorder slots of the label channel (labels are a small fraction of the traffic).

    Attributes
    ----------
    data_cmd, label_cmd : In(stream.Signature(ReadCommand))
    data_lines, label_lines : Out(stream.Signature(line_bits))
    c0_tx : Out(c0_tx of CcipSignature)
    c0_rx : In(c0_rx of CcipSignature)
        Only ``rsp_valid``, ``mdata``, ``cl_num`` and ``data`` are used.
    almfull : In(1)
        CCI-P ``c0_tx_almfull``.
    flush : In(1)
    idle : Out(1)
    """

    def __init__(self, *, line_bits: int = 512, data_depth: int = 256, label_depth: int = 32):
        for name, depth in (("data_depth", data_depth), ("label_depth", label_depth)):
            if not isinstance(depth, int) or depth < 4 or depth & (depth - 1) or depth > (1 << _SLOT_BITS):
                raise ValueError(f"{name} must be a power of two in 4..{1 << _SLOT_BITS}, got {depth!r}")
        ccip = CcipSignature(line_bits)  # checks line_bits
        self.line_bits = line_bits
        self.depths = {"data": data_depth, "label": label_depth}
        super().__init__({
            "data_cmd": In(stream.Signature(ReadCommand)),
            "label_cmd": In(stream.Signature(ReadCommand)),
            "data_lines": Out(stream.Signature(line_bits)),
            "label_lines": Out(stream.Signature(line_bits)),
            "c0_tx": ccip.members["c0_tx"],
            "c0_rx": ccip.members["c0_rx"],
            "almfull": In(1),
            "flush": In(1),
            "idle": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        rx = self.c0_rx

        # Responses are registered once before they are written (timing: the tag decode and the
        # slot adder are off the CCI-P input wires).
        rsp_valid = Signal()
        rsp_ch = Signal()
        rsp_tag = Signal(_SLOT_BITS)
        rsp_num = Signal(2)
        rsp_data = Signal(self.line_bits)
        m.d.sync += [rsp_valid.eq(rx.rsp_valid), rsp_ch.eq(rx.mdata[_SLOT_BITS]), rsp_tag.eq(rx.mdata[:_SLOT_BITS]),
                     rsp_num.eq(rx.cl_num), rsp_data.eq(rx.data)]

        idles = []
        wants, sizes, addrs, tags = [], [], [], []
        grants = []
        for i, ch in enumerate(CHANNELS):
            depth = self.depths[ch]
            k = depth.bit_length() - 1
            rob = ReadReorderBuffer(line_bits=self.line_bits, depth=depth)
            m.submodules[f"{ch}_rob"] = rob
            cmd = getattr(self, f"{ch}_cmd")
            wiring.connect(m, rob.lines, wiring.flipped(getattr(self, f"{ch}_lines")))
            m.d.comb += [rob.flush.eq(self.flush),
                         rob.fill_en.eq(rsp_valid & (rsp_ch == i)),
                         rob.fill_slot.eq((rsp_tag[:k] + rsp_num)[:k]),
                         rob.fill_data.eq(rsp_data)]

            # Splitter: the current command's next line and the lines left. Whether more than 7
            # lines are left (rem_hi) is a register kept with rem, so the request size and the
            # "last request" test are gates on registers: no 32-bit compare ahead of the grant.
            addr = Signal(CCIP_ADDR_BITS, name=f"{ch}_addr")
            rem = Signal(32, name=f"{ch}_rem")
            rem_hi = Signal(name=f"{ch}_rem_hi")
            lo = rem[:3]
            rem_zero = ~rem_hi & (lo == 0)
            size = Signal(3, name=f"{ch}_size")
            with m.If((addr[:2] == 0) & (rem_hi | lo[2])):
                m.d.comb += size.eq(4)
            with m.Elif((addr[0] == 0) & (rem_hi | lo[1] | lo[2])):
                m.d.comb += size.eq(2)
            with m.Else():
                m.d.comb += size.eq(1)
            want = Signal(name=f"{ch}_want")
            m.d.comb += want.eq(~rem_zero & (rob.free >= size) & ~rob.discarding)
            # The arbiter sees want a cycle late (want_r), so its grant is a few gates on
            # registers: size, the room test and the 32-bit rem behind them were the front of the
            # board build's longest path (15.3 ns in the flat delay model, label_rem -> grant ->
            # data_rem_hi, 2026-12-01). A want a cycle old still holds if the channel was not
            # granted meanwhile: rem, addr and so size are unchanged, and free has only grown;
            # after a grant the channel sits out a cycle (<= 4 lines every 2 cycles, twice the
            # line rate). Flush and discarding are checked again as they happen.
            want_r = Signal(name=f"{ch}_want_r")
            grant = Signal(name=f"{ch}_grant")
            m.d.sync += want_r.eq(want & ~grant & ~self.flush)
            wants.append(want_r & ~rob.discarding)
            sizes.append(size)
            addrs.append(addr)
            tags.append(Cat(rob.tail, Const(0, _SLOT_BITS - k), Const(i, 1)))
            grants.append(grant)

            m.d.comb += [rob.reserve.eq(grant), rob.reserve_lines.eq(size)]
            rem_after = Signal(32, name=f"{ch}_rem_after")
            m.d.comb += rem_after.eq(rem - size)
            # rem - size > 7, i.e. rem >= 8 + size: compares of rem with constants, beside size
            # (not an OR over the subtraction's 29 high bits after its carry chain)
            after_hi = Mux(size[2], rem >= 12, Mux(size[1], rem >= 10, rem >= 9))
            with m.If(grant):
                m.d.sync += [addr.eq(addr + size), rem.eq(rem_after), rem_hi.eq(after_hi)]
            # Accept the next command when idle or while issuing the current one's last request.
            m.d.comb += cmd.ready.eq(~self.flush & ~rob.discarding & (rem_zero | (grant & ~rem_hi & (lo == size))))
            with m.If(cmd.valid & cmd.ready):
                m.d.sync += [addr.eq(cmd.payload.address), rem.eq(cmd.payload.lines),
                             rem_hi.eq(cmd.payload.lines[3:].any())]
            with m.If(self.flush):
                m.d.sync += [rem.eq(0), rem_hi.eq(0)]
            idles.append(rem_zero & rob.idle)

        # Round-robin between the channels; nothing is decided under almost-full or flush.
        last = Signal()  # channel granted last
        may = ~self.almfull & ~self.flush
        pick_label = wants[1] & (~wants[0] | (last == 0))
        m.d.comb += [grants[0].eq(may & wants[0] & ~pick_label), grants[1].eq(may & pick_label)]
        issue = grants[0] | grants[1]
        with m.If(issue):
            m.d.sync += last.eq(grants[1])

        sel = grants[1]
        size = Mux(sel, sizes[1], sizes[0])
        m.d.sync += self.c0_tx.valid.eq(issue)
        with m.If(issue):
            m.d.sync += [self.c0_tx.address.eq(Mux(sel, addrs[1], addrs[0])),
                         self.c0_tx.cl_len.eq(size - 1),  # 1, 2, 4 lines -> 0, 1, 3
                         self.c0_tx.mdata.eq(Mux(sel, tags[1], tags[0]))]
        m.d.comb += self.idle.eq(idles[0] & idles[1] & ~rsp_valid)
        return m
