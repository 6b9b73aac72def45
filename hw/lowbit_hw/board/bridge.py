"""``SerialBridge``: CCI-P over a byte stream (the board's USB serial port), host side of the AFU.

The bridge plays CCI-P's *host* towards the AFU and turns its traffic into the frames of
:mod:`lowbit.contract.serial`: MMIO writes and reads, read responses (the host serves memory) and write
acknowledgements arrive as frames; MMIO read data, read requests and write requests leave as
frames. CCI-P has no ready signals, so the AFU's requests land in FIFOs whose levels drive
``c0_tx_almfull`` / ``c1_tx_almfull`` early enough for CCI-P's 8-request slack. A frame with a bad
CRC, an unknown type, a wrong length, or a stall mid-frame never reaches the AFU: it is answered
with one ``B_NAK`` and the parser hunts for the next ``SYNC``.

A write fence (``C1_REQ_WRFENCE``) is not a frame: the link and the host's frame loop are in
order, so every write sent after it is already applied after every write sent before it. The
bridge answers the fence itself, once every write sent before it has been acknowledged.
"""

from amaranth import Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from lowbit.contract import serial as P
from lowbit.contract.ccip import ALMOST_FULL_SLACK, C1_REQ_WRFENCE
from lowbit.contract.format import SUPPORTED_LINE_BITS

from ..ccip import CCIP_ADDR_BITS, CCIP_MDATA_BITS, MMIO_TID_BITS, CcipSignature

__all__ = ["SerialBridge", "BridgedAFU", "crc8_next", "frame_layout", "BRIDGE_LINE_BITS"]

#: Line widths the bridge is built for: every CCI-P width but 512 (see SerialBridge).
BRIDGE_LINE_BITS = tuple(bits for bits in SUPPORTED_LINE_BITS if bits < 512)


def frame_layout(ftype: int, line_bytes: int) -> data.StructLayout:
    """The payload of a ``ftype`` frame (:data:`lowbit.contract.serial.FRAMES`) as a struct: its
    fields by name, in order, byte 0 at bits [0, 8) (the wire's order, little endian)."""
    return data.StructLayout({name: 8 * size for name, size in P.fields(ftype, line_bytes)})


def crc8_next(crc, byte):
    """CRC-8/SMBUS (polynomial 0x07) of one more byte, as a combinational expression."""
    c = crc ^ byte
    for _ in range(8):
        c = Mux(c[7], (c << 1) ^ P.CRC_POLY, c << 1)[:8]
    return c


class SerialBridge(wiring.Component):
    """The host end of an AFU's CCI-P, carried over byte streams.

    Parameters
    ----------
    line_bits : int
        The AFU's line width: 64, 128 or 256. The frames would carry 512-bit lines too (a 72-byte
        payload at most, well under LEN's 255), but no 512-bit AFU fits an ECP5 (docs/board.md),
        so the bridge is neither built nor tested at that width.
    read_fifo_depth, write_fifo_depth : int
        Requests buffered towards the host before almost-full holds the AFU.
    rx_timeout : int
        Cycles between two bytes of a frame before it is dropped (``B_NAK`` NAK_TIMEOUT).

    Attributes
    ----------
    rx : In(stream.Signature(8))
        Bytes from the host (a UART receiver).
    tx : Out(stream.Signature(8))
        Bytes to the host (a UART transmitter).
    ccip : In(CcipSignature(line_bits))
        Connect to the AFU's ``ccip`` port.
    naks : Out(16)
        Frames dropped so far (for LEDs and tests).
    """

    def __init__(self, *, line_bits: int = 128, read_fifo_depth: int = 32, write_fifo_depth: int = 16,
                 rx_timeout: int = P.RX_TIMEOUT_CYCLES):
        if line_bits not in BRIDGE_LINE_BITS:
            raise ValueError(f"line_bits must be one of {BRIDGE_LINE_BITS} for the serial bridge, got {line_bits!r}")
        for name, depth in (("read_fifo_depth", read_fifo_depth), ("write_fifo_depth", write_fifo_depth)):
            if not isinstance(depth, int) or depth < 2 * ALMOST_FULL_SLACK:
                raise ValueError(f"{name} must be an int >= {2 * ALMOST_FULL_SLACK}, got {depth!r}")
        if not isinstance(rx_timeout, int) or rx_timeout < 16:
            raise ValueError(f"rx_timeout must be an int >= 16 cycles, got {rx_timeout!r}")
        self.line_bits, self.line_bytes = line_bits, line_bits // 8
        self.read_fifo_depth, self.write_fifo_depth, self.rx_timeout = read_fifo_depth, write_fifo_depth, rx_timeout
        super().__init__({
            "rx": In(stream.Signature(8)),
            "tx": Out(stream.Signature(8)),
            "ccip": In(CcipSignature(line_bits)),
            "naks": Out(16),
        })

    def elaborate(self, platform):
        m = Module()
        W, WB = self.line_bits, self.line_bytes
        ccip = self.ccip
        max_payload = max(P.payload_len(t, WB) for t in P.BOARD_FRAMES)  # B_WRITE_REQ

        # ------------------------------------------------------------ host -> AFU: frame parser
        ftype = Signal(8)
        flen = Signal(8)
        idx = Signal(8)
        crc = Signal(8)
        buf = Signal(8 * max(P.payload_len(t, WB) for t in P.HOST_FRAMES))  # H_READ_DATA
        idle = Signal(range(self.rx_timeout + 1))
        nak_pending = Signal()
        host_ack = self._host_ack = Signal()  # a host WRITE_ACK frame is dispatched this cycle
        nak_reason = Signal(8)
        byte = self.rx.payload
        take = self.rx.valid & self.rx.ready

        expected = Signal(9)  # the payload length of ftype, or 0x100 for an unknown type
        with m.Switch(ftype):
            for t in P.HOST_FRAMES:
                with m.Case(t):
                    m.d.comb += expected.eq(P.payload_len(t, WB))
            with m.Default():
                m.d.comb += expected.eq(0x100)

        def nak(reason):
            m.d.sync += [nak_pending.eq(1), nak_reason.eq(reason), self.naks.eq(self.naks + 1)]

        # The ccip rx fields are registered; valids are single-cycle pulses.
        m.d.sync += [ccip.c0_rx.rsp_valid.eq(0), ccip.c0_rx.mmio_wr_valid.eq(0),
                     ccip.c0_rx.mmio_rd_valid.eq(0), ccip.c1_rx.rsp_valid.eq(0)]
        m.d.comb += self.rx.ready.eq(1)
        m.d.sync += idle.eq(Mux(take, 0, Mux(idle == self.rx_timeout, idle, idle + 1)))

        with m.FSM(name="parser") as parser:
            with m.State("HUNT"):
                with m.If(take & (byte == P.SYNC)):
                    m.next = "TYPE"
            with m.State("TYPE"):
                with m.If(take):
                    m.d.sync += [ftype.eq(byte), crc.eq(crc8_next(0, byte))]
                    m.next = "LEN"
            with m.State("LEN"):
                with m.If(take):
                    m.d.sync += [flen.eq(byte), idx.eq(0), crc.eq(crc8_next(crc, byte))]
                    with m.If(expected != byte):
                        nak(P.NAK_FORMAT)
                        m.next = "HUNT"
                    with m.Else():
                        m.next = "PAYLOAD"
            with m.State("PAYLOAD"):
                with m.If(take):
                    m.d.sync += [buf.word_select(idx, 8).eq(byte), idx.eq(idx + 1), crc.eq(crc8_next(crc, byte))]
                    with m.If(idx + 1 == flen):
                        m.next = "CRC"
            with m.State("CRC"):
                with m.If(take):
                    m.next = "HUNT"
                    with m.If(byte != crc):
                        nak(P.NAK_CRC)
                    with m.Else():
                        self._dispatch(m, ftype, buf)

        # A frame stalled mid-way (no byte for rx_timeout cycles) is dropped, whatever its state.
        with m.If(~parser.ongoing("HUNT") & ~take & (idle == self.rx_timeout)):
            nak(P.NAK_TIMEOUT)
            m.d.sync += parser.state.eq(parser.encoding["HUNT"])

        # ------------------------------------------------------------ AFU -> host: request FIFOs
        mmio_entry = data.StructLayout({"tid": MMIO_TID_BITS, "data": len(ccip.c2_tx.data)})
        rd_entry = data.StructLayout({"address": CCIP_ADDR_BITS, "cl_len": len(ccip.c0_tx.cl_len),
                                      "mdata": CCIP_MDATA_BITS})
        wr_entry = data.StructLayout({"address": CCIP_ADDR_BITS, "mdata": CCIP_MDATA_BITS, "data": W})
        m.submodules.mmio_q = mmio_q = SyncFIFOBuffered(width=mmio_entry.size, depth=P.MAX_MMIO_READS * 2)
        m.submodules.rd_q = rd_q = SyncFIFOBuffered(width=rd_entry.size, depth=self.read_fifo_depth)
        m.submodules.wr_q = wr_q = SyncFIFOBuffered(width=wr_entry.size, depth=self.write_fifo_depth)
        mmio_in, rd_in, wr_in = mmio_entry(mmio_q.w_data), rd_entry(rd_q.w_data), wr_entry(wr_q.w_data)
        # Fences stay here (module docstring): counted, and answered once no write sent before
        # one awaits its acknowledgement (later writes may delay that, never reorder it), in a
        # cycle without a host write acknowledgement (the two share c1_rx).
        # The two tests are registers a cycle behind the counters (the 16-bit compares before
        # the answer were the bridge's longest path, 13.4 ns in the flat delay model). Both lag
        # alike, so a fence seen there was sent two or more cycles ago and every write it must
        # wait for was counted before it; a write counted since is a later one. After an answer
        # the fence count's test is a cycle stale, hence no answer in the next cycle.
        is_fence = ccip.c1_tx.req_type == C1_REQ_WRFENCE
        fences, unacked = Signal(16), Signal(16)  # each below the write engine's max_outstanding
        any_fence, none_unacked = Signal(), Signal(init=1)
        fence_ack, fence_ack_r = Signal(), Signal()
        m.d.comb += fence_ack.eq(any_fence & none_unacked & ~fence_ack_r & ~host_ack)
        m.d.sync += [fences.eq(fences + (ccip.c1_tx.valid & is_fence) - fence_ack),
                     unacked.eq(unacked + (ccip.c1_tx.valid & ~is_fence) - host_ack),
                     any_fence.eq(fences != 0), none_unacked.eq(unacked == 0), fence_ack_r.eq(fence_ack)]
        with m.If(fence_ack):
            m.d.sync += ccip.c1_rx.rsp_valid.eq(1)
        m.d.comb += [
            mmio_q.w_en.eq(ccip.c2_tx.mmio_rd_valid), mmio_in.tid.eq(ccip.c2_tx.tid), mmio_in.data.eq(ccip.c2_tx.data),
            rd_q.w_en.eq(ccip.c0_tx.valid), rd_in.address.eq(ccip.c0_tx.address), rd_in.cl_len.eq(ccip.c0_tx.cl_len),
            rd_in.mdata.eq(ccip.c0_tx.mdata),
            wr_q.w_en.eq(ccip.c1_tx.valid & ~is_fence), wr_in.address.eq(ccip.c1_tx.address), wr_in.mdata.eq(ccip.c1_tx.mdata),
            wr_in.data.eq(ccip.c1_tx.data),
        ]
        # Almost-full with room for the 8 requests CCI-P allows after it, plus 2 cycles of latency
        # (the flag is registered, and the AFU samples it a cycle later).
        m.d.sync += [
            ccip.c0_tx_almfull.eq(rd_q.level >= self.read_fifo_depth - ALMOST_FULL_SLACK - 3),
            ccip.c1_tx_almfull.eq(wr_q.level >= self.write_fifo_depth - ALMOST_FULL_SLACK - 3),
        ]

        # ------------------------------------------------------------ AFU -> host: framer
        # The byte on the wire is a register (obyte), and the payload shifts out of obuf a byte
        # at a time, so the next byte is one of a few registers, not a byte select over the
        # whole payload: a position -> byte-select -> CRC -> register path was the board build's
        # second-longest (15.1 ns in the flat delay model of lowbit_hw.board.depth, 2026-12-01).
        # The UART takes a byte every few hundred cycles; the framer has time to spare.
        otype = Signal(8)
        olen = Signal(8)
        obuf = Signal(8 * max_payload)
        ocrc = Signal(8)
        opos = Signal(range(max_payload + 4))  # 0 SYNC, 1 TYPE, 2 LEN, 3.. payload, then CRC
        olast = Signal(range(max_payload + 4))  # olen + 3: the CRC's position
        obyte = Signal(8)                       # the byte at opos

        def load(t, payload):
            n = P.payload_len(t, WB)
            m.d.sync += [otype.eq(t), olen.eq(n), olast.eq(n + 3), obuf.eq(payload), opos.eq(0), ocrc.eq(0),
                         obyte.eq(P.SYNC)]
            m.next = "SEND"

        # The board's frames, filled by field name from the FIFO heads (sent when the framer takes them).
        mmio_out, rd_out, wr_out = mmio_entry(mmio_q.r_data), rd_entry(rd_q.r_data), wr_entry(wr_q.r_data)
        mmio_frame = Signal(frame_layout(P.B_MMIO_DATA, WB))
        rd_frame = Signal(frame_layout(P.B_READ_REQ, WB))
        wr_frame = Signal(frame_layout(P.B_WRITE_REQ, WB))
        m.d.comb += [mmio_frame.tid.eq(mmio_out.tid), mmio_frame.data.eq(mmio_out.data),
                     rd_frame.address.eq(rd_out.address), rd_frame.cl_len.eq(rd_out.cl_len),
                     rd_frame.mdata.eq(rd_out.mdata),
                     wr_frame.address.eq(wr_out.address), wr_frame.mdata.eq(wr_out.mdata), wr_frame.line.eq(wr_out.data)]

        with m.FSM(name="framer"):
            with m.State("IDLE"):
                # Priority: NAKs (rare), MMIO answers (the host waits on them), writes, reads.
                with m.If(nak_pending):
                    m.d.sync += nak_pending.eq(0)
                    load(P.B_NAK, nak_reason)
                with m.Elif(mmio_q.r_rdy):
                    m.d.comb += mmio_q.r_en.eq(1)
                    load(P.B_MMIO_DATA, mmio_frame)
                with m.Elif(wr_q.r_rdy):
                    m.d.comb += wr_q.r_en.eq(1)
                    load(P.B_WRITE_REQ, wr_frame)
                with m.Elif(rd_q.r_rdy):
                    m.d.comb += rd_q.r_en.eq(1)
                    load(P.B_READ_REQ, rd_frame)
            with m.State("SEND"):
                # Stream rules: payload stable while valid and not ready; valid does not wait for ready.
                m.d.comb += [self.tx.valid.eq(1), self.tx.payload.eq(obyte)]
                # The CRC covers TYPE, LEN and the payload (not SYNC); crc_next includes this byte.
                crc_next = Signal(8)
                m.d.comb += crc_next.eq(Mux(opos == 0, 0, crc8_next(ocrc, obyte)))
                with m.If(self.tx.ready):
                    m.d.sync += [opos.eq(opos + 1), ocrc.eq(crc_next)]
                    # the next byte: TYPE, LEN, then the payload from obuf's low byte (shifted
                    # once per payload byte sent), then the CRC
                    with m.If(opos == 0):
                        m.d.sync += obyte.eq(otype)
                    with m.Elif(opos == 1):
                        m.d.sync += obyte.eq(olen)
                    with m.Elif(opos + 1 == olast):
                        m.d.sync += obyte.eq(crc_next)
                    with m.Else():
                        m.d.sync += obyte.eq(Mux(opos == 2, obuf[:8], obuf[8:16]))
                    with m.If(opos >= 3):
                        m.d.sync += obuf.eq(obuf >> 8)
                    with m.If(opos == olast):
                        m.next = "IDLE"
        return m

    def _dispatch(self, m, ftype, buf):
        """Drive one CCI-P event from a complete, checked host frame (registered, one cycle)."""
        c0, c1 = self.ccip.c0_rx, self.ccip.c1_rx

        def payload(t):
            layout = frame_layout(t, self.line_bytes)
            return layout(buf[:layout.size])

        with m.Switch(ftype):
            with m.Case(P.H_MMIO_WRITE):
                f = payload(P.H_MMIO_WRITE)  # CCI-P's mmio_address counts 32-bit words
                m.d.sync += [c0.mmio_wr_valid.eq(1), c0.mmio_address.eq(f.offset[2:]), c0.mmio_length.eq(1),
                             c0.data.eq(f.data)]
            with m.Case(P.H_MMIO_READ):
                f = payload(P.H_MMIO_READ)
                m.d.sync += [c0.mmio_rd_valid.eq(1), c0.mmio_address.eq(f.offset[2:]), c0.mmio_length.eq(1),
                             c0.mmio_tid.eq(f.tid)]
            with m.Case(P.H_READ_DATA):
                f = payload(P.H_READ_DATA)
                m.d.sync += [c0.rsp_valid.eq(1), c0.mdata.eq(f.mdata), c0.cl_num.eq(f.cl_num), c0.data.eq(f.line)]
            with m.Case(P.H_WRITE_ACK):
                f = payload(P.H_WRITE_ACK)
                m.d.sync += [c1.rsp_valid.eq(1), c1.mdata.eq(f.mdata)]
                m.d.comb += self._host_ack.eq(1)


class BridgedAFU(wiring.Component):
    """A :class:`~lowbit_hw.afu.LowbitAFU` behind a :class:`SerialBridge`: the board design minus its
    UART and clocking, with the host link as two byte streams. The board top and the simulated
    board of the tests are both built from it.

    Parameters
    ----------
    line_bits : int
        Line width of the AFU and the bridge.
    rx_timeout, read_fifo_depth, write_fifo_depth : int
        The bridge's (:class:`SerialBridge`).
    **afu
        The AFU's other parameters (``lanes``, ``max_features``, ``read_depth``).
    """

    rx: In(stream.Signature(8))
    tx: Out(stream.Signature(8))

    def __init__(self, *, line_bits: int = 64, rx_timeout: int = P.RX_TIMEOUT_CYCLES, read_fifo_depth: int = 32,
                 write_fifo_depth: int = 16, **afu):
        from ..afu import LowbitAFU

        self.afu = LowbitAFU(line_bits=line_bits, **afu)
        self.bridge = SerialBridge(line_bits=line_bits, rx_timeout=rx_timeout, read_fifo_depth=read_fifo_depth,
                                   write_fifo_depth=write_fifo_depth)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.afu, m.submodules.bridge = self.afu, self.bridge
        wiring.connect(m, self.afu.ccip, self.bridge.ccip)
        wiring.connect(m, wiring.flipped(self.rx), self.bridge.rx)
        wiring.connect(m, self.bridge.tx, wiring.flipped(self.tx))
        return m
