"""``SerialBridge``: CCI-P (host side) carried over a byte stream, for the board build.

The bridge plays CCI-P's host towards the AFU: it turns host frames (:mod:`.protocol`) into MMIO
requests, read responses and write responses on ``c0_rx`` / ``c1_rx``, and the AFU's read
requests, write requests and MMIO read answers into board frames. The host serves memory, so a read
request travels to the host and its lines come back as ``H_READ_DATA`` frames, in any order.

Flow control is CCI-P's almost-full: the AFU's requests land in FIFOs (one per channel) whose fill
levels raise ``c0_tx_almfull`` / ``c1_tx_almfull`` early enough that the 8 requests CCI-P allows
after almost-full, plus the cycles almost-full takes to be seen, always fit. MMIO read answers go
into a :data:`~.protocol.MAX_MMIO_READS`-deep FIFO (the host keeps at most that many outstanding).
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from ..ccip import ALMOST_FULL_SLACK, CCIP_ADDR_BITS, CcipSignature
from . import protocol as P

__all__ = ["SerialBridge", "crc8_update"]


def crc8_update(crc, byte):
    """CRC-8 (poly :data:`~.protocol.CRC_POLY`) of one more byte, as an Amaranth expression."""
    c = crc ^ byte
    for _ in range(8):
        c = (c << 1)[:8] ^ (c[7].replicate(8) & P.CRC_POLY)
    return c


class SerialBridge(wiring.Component):
    """CCI-P host side over a byte stream (below the UART).

    Parameters
    ----------
    line_bits : int
        CCI-P line width of the AFU behind the bridge (64..512).
    read_depth : int
        Read requests the bridge buffers (power of two >= 16); almost-full rises at
        ``read_depth - 8 - 4``.
    write_depth : int
        Write requests (with their lines) the bridge buffers (power of two >= 16).
    rx_timeout : int
        Cycles between two bytes of one frame before the frame is dropped.

    Attributes
    ----------
    ccip : In(CcipSignature(line_bits))
        To the AFU (connect to the AFU's ``ccip`` with ``wiring.connect``).
    rx : In(stream.Signature(8))
        Bytes from the host (always ready: a UART cannot wait).
    tx : Out(stream.Signature(8))
        Bytes to the host.
    naks : Out(8)
        Frames dropped so far (wraps).
    overflow : Out(1)
        Sticky: the AFU issued a request into a full FIFO (it broke the almost-full rule).
    busy : Out(1)
        A frame is being received or sent (for an activity LED).
    """

    #: Almost-full rises this many entries before the CCI-P slack would overflow the FIFO: one cycle
    #: for the registered level compare, one for the AFU's registered request, two of margin.
    MARGIN = 4

    def __init__(self, line_bits: int, *, read_depth: int = 32, write_depth: int = 16,
                 rx_timeout: int = P.RX_TIMEOUT_CYCLES):
        CcipSignature(line_bits)  # checks line_bits
        for name, depth in (("read_depth", read_depth), ("write_depth", write_depth)):
            if not isinstance(depth, int) or depth < 16 or depth & (depth - 1):
                raise ValueError(f"{name} must be a power of two >= 16, got {depth!r}")
        if not isinstance(rx_timeout, int) or rx_timeout < 16:
            raise ValueError(f"rx_timeout must be an int >= 16 cycles, got {rx_timeout!r}")
        self.line_bits, self.read_depth, self.write_depth = line_bits, read_depth, write_depth
        self.rx_timeout = rx_timeout
        super().__init__({
            "ccip": In(CcipSignature(line_bits)),
            "rx": In(stream.Signature(8)),
            "tx": Out(stream.Signature(8)),
            "naks": Out(8),
            "overflow": Out(1),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        W = self.line_bits
        LB = W // 8
        c = self.ccip

        # ------------------------------------------------------------------ host -> board
        max_in = P.payload_len(P.H_READ_DATA, LB)
        buf = Signal(8 * max_in)  # payload shifts in from the top: byte i of an L-byte payload
        # sits at byte (max_in - L + i)
        def field(length, offset, nbytes):
            lo = 8 * (max_in - length + offset)
            return buf[lo:lo + 8 * nbytes]

        ftype = Signal(8)
        left = Signal(8)
        crc = Signal(8)
        idle_timer = Signal(range(self.rx_timeout + 1))
        nak = Signal()  # a NAK waits to be sent
        nak_reason = Signal(8)
        byte = self.rx.payload
        got = self.rx.valid
        m.d.comb += self.rx.ready.eq(1)

        m.d.sync += [c.c0_rx.rsp_valid.eq(0), c.c0_rx.mmio_wr_valid.eq(0), c.c0_rx.mmio_rd_valid.eq(0),
                     c.c1_rx.rsp_valid.eq(0)]

        def drop(reason):
            return [nak.eq(1), nak_reason.eq(reason), self.naks.eq(self.naks + 1)]

        with m.FSM() as rx_fsm:
            with m.State("HUNT"):
                with m.If(got & (byte == P.SYNC)):
                    m.d.sync += [crc.eq(0), idle_timer.eq(0)]
                    m.next = "TYPE"
            with m.State("TYPE"):
                with m.If(got):
                    m.d.sync += [ftype.eq(byte), crc.eq(crc8_update(crc, byte)), idle_timer.eq(0)]
                    m.next = "LEN"
            with m.State("LEN"):
                with m.If(got):
                    m.d.sync += [left.eq(byte), crc.eq(crc8_update(crc, byte)), idle_timer.eq(0)]
                    ok = Signal()
                    with m.Switch(ftype):
                        for t in (P.H_MMIO_WRITE, P.H_MMIO_READ, P.H_READ_DATA, P.H_WRITE_ACK):
                            with m.Case(t):
                                m.d.comb += ok.eq(byte == P.payload_len(t, LB))
                    with m.If(ok):
                        m.next = "PAYLOAD"
                    with m.Else():
                        m.d.sync += drop(P.NAK_FORMAT)
                        m.next = "HUNT"
            with m.State("PAYLOAD"):
                with m.If(got):
                    m.d.sync += [buf.eq(Cat(buf[8:], byte)), crc.eq(crc8_update(crc, byte)),
                                 left.eq(left - 1), idle_timer.eq(0)]
                    with m.If(left == 1):
                        m.next = "CRC"
            with m.State("CRC"):
                with m.If(got):
                    m.next = "HUNT"
                    with m.If(byte != crc):
                        m.d.sync += drop(P.NAK_CRC)
                    with m.Else():
                        # A good frame: one CCI-P event, the cycle after.
                        with m.Switch(ftype):
                            with m.Case(P.H_MMIO_WRITE):
                                L = P.payload_len(P.H_MMIO_WRITE, LB)
                                m.d.sync += [c.c0_rx.mmio_wr_valid.eq(1), c.c0_rx.mmio_length.eq(1),
                                             c.c0_rx.mmio_address.eq(field(L, 0, 2) >> 2), c.c0_rx.mmio_tid.eq(0),
                                             c.c0_rx.data.eq(field(L, 2, 8))]
                            with m.Case(P.H_MMIO_READ):
                                L = P.payload_len(P.H_MMIO_READ, LB)
                                m.d.sync += [c.c0_rx.mmio_rd_valid.eq(1), c.c0_rx.mmio_length.eq(1),
                                             c.c0_rx.mmio_address.eq(field(L, 0, 2) >> 2),
                                             c.c0_rx.mmio_tid.eq(field(L, 2, 2))]
                            with m.Case(P.H_READ_DATA):
                                L = P.payload_len(P.H_READ_DATA, LB)
                                m.d.sync += [c.c0_rx.rsp_valid.eq(1), c.c0_rx.mdata.eq(field(L, 0, 2)),
                                             c.c0_rx.cl_num.eq(field(L, 2, 1)), c.c0_rx.data.eq(field(L, 3, LB))]
                            with m.Case(P.H_WRITE_ACK):
                                L = P.payload_len(P.H_WRITE_ACK, LB)
                                m.d.sync += [c.c1_rx.rsp_valid.eq(1), c.c1_rx.mdata.eq(field(L, 0, 2))]
            # A frame that stalls mid-way is dropped, so a lost byte cannot swallow the next frame.
            with m.If(~rx_fsm.ongoing("HUNT") & ~got):
                m.d.sync += idle_timer.eq(idle_timer + 1)
                with m.If(idle_timer == self.rx_timeout - 1):
                    m.d.sync += drop(P.NAK_TIMEOUT)
                    m.next = "HUNT"

        # ------------------------------------------------------------------ AFU -> FIFOs
        A = CCIP_ADDR_BITS
        m.submodules.rdq = rdq = SyncFIFOBuffered(width=A + 2 + 16, depth=self.read_depth)
        m.submodules.wrq = wrq = SyncFIFOBuffered(width=A + 16 + W, depth=self.write_depth)
        m.submodules.mmq = mmq = SyncFIFOBuffered(width=16 + 64, depth=P.MAX_MMIO_READS)
        m.d.comb += [
            rdq.w_en.eq(c.c0_tx.valid), rdq.w_data.eq(Cat(c.c0_tx.address, c.c0_tx.cl_len, c.c0_tx.mdata)),
            wrq.w_en.eq(c.c1_tx.valid), wrq.w_data.eq(Cat(c.c1_tx.address, c.c1_tx.mdata, c.c1_tx.data)),
            mmq.w_en.eq(c.c2_tx.mmio_rd_valid), mmq.w_data.eq(Cat(c.c2_tx.tid, Const(0, 16 - len(c.c2_tx.tid)),
                                                                   c.c2_tx.data)),
        ]
        m.d.sync += [
            c.c0_tx_almfull.eq(rdq.level >= self.read_depth - ALMOST_FULL_SLACK - self.MARGIN),
            c.c1_tx_almfull.eq(wrq.level >= self.write_depth - ALMOST_FULL_SLACK - self.MARGIN),
        ]
        with m.If((rdq.w_en & ~rdq.w_rdy) | (wrq.w_en & ~wrq.w_rdy) | (mmq.w_en & ~mmq.w_rdy)):
            m.d.sync += self.overflow.eq(1)

        # ------------------------------------------------------------------ board -> host
        max_out = 3 + P.payload_len(P.B_WRITE_REQ, LB)
        obuf = Signal(8 * max_out)
        olen = Signal(range(max_out + 1))  # bytes of the frame before its CRC
        oidx = Signal(range(max_out + 1))
        ocrc = Signal(8)

        def load(ftype_, payload, nbytes):
            assert nbytes == P.payload_len(ftype_, LB)
            return [obuf.eq(Cat(Const(P.SYNC, 8), Const(ftype_, 8), Const(nbytes, 8), payload)),
                    olen.eq(3 + nbytes), oidx.eq(0), ocrc.eq(0)]

        rd_addr, rd_len, rd_mdata = rdq.r_data[:A], rdq.r_data[A:A + 2], rdq.r_data[A + 2:]
        wr_addr, wr_mdata, wr_data = wrq.r_data[:A], wrq.r_data[A:A + 16], wrq.r_data[A + 16:]
        with m.FSM() as tx_fsm:
            with m.State("IDLE"):
                with m.If(nak):
                    m.d.sync += [nak.eq(0), *load(P.B_NAK, nak_reason, 1)]
                    m.next = "SEND"
                with m.Elif(mmq.r_rdy):
                    m.d.comb += mmq.r_en.eq(1)
                    m.d.sync += load(P.B_MMIO_DATA, mmq.r_data, 10)
                    m.next = "SEND"
                with m.Elif(wrq.r_rdy):
                    m.d.comb += wrq.r_en.eq(1)
                    m.d.sync += load(P.B_WRITE_REQ, Cat(wr_addr, Const(0, 48 - A), wr_mdata, wr_data), 8 + LB)
                    m.next = "SEND"
                with m.Elif(rdq.r_rdy):
                    m.d.comb += rdq.r_en.eq(1)
                    m.d.sync += load(P.B_READ_REQ, Cat(rd_addr, Const(0, 48 - A), rd_len, Const(0, 6), rd_mdata), 9)
                    m.next = "SEND"
            with m.State("SEND"):
                m.d.comb += [self.tx.valid.eq(1), self.tx.payload.eq(obuf[:8])]
                with m.If(self.tx.ready):
                    m.d.sync += [obuf.eq(obuf >> 8), oidx.eq(oidx + 1)]
                    with m.If(oidx != 0):  # the CRC covers everything after SYNC
                        m.d.sync += ocrc.eq(crc8_update(ocrc, obuf[:8]))
                    with m.If(oidx == olen - 1):
                        m.next = "CRC"
            with m.State("CRC"):
                m.d.comb += [self.tx.valid.eq(1), self.tx.payload.eq(ocrc)]
                with m.If(self.tx.ready):
                    m.next = "IDLE"
        m.d.comb += self.busy.eq(~rx_fsm.ongoing("HUNT") | ~tx_fsm.ongoing("IDLE"))
        return m
