"""``WriteEngine``: the core's write requests -> CCI-P c1 single-line writes."""

from __future__ import annotations

from amaranth import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..ccip import C1_REQ_WRFENCE, C1_REQ_WRLINE, CCIP_MDATA_BITS, CcipSignature
from ..interfaces import write_request_layout

__all__ = ["WriteEngine"]


class WriteEngine(wiring.Component):
    """Write requests (line address, data) become single-line CCI-P writes (``sop`` 1, ``cl_len`` 0);
    a request with ``fence`` set becomes a write fence (``req_type`` ``C1_REQ_WRFENCE``).

    A request is accepted (``write.ready``) when ``almfull`` is low and fewer than
    ``max_outstanding`` writes await their response; it is on ``c1_tx`` the next cycle, so at most
    one request follows the assertion of almost-full (CCI-P allows 8). Every accepted write counts
    as outstanding until its ``c1_rx`` response; ``idle`` is high when none is (nothing is queued
    anywhere else: the only buffer is the ``c1_tx`` register, whose request is already counted).
    A fence counts as one outstanding request too (it has one response).
    ``mdata`` numbers the writes (mod 2^16), which helps reading waveforms; responses are counted,
    not matched.

    Parameters
    ----------
    line_bits : int
        Line width.
    max_outstanding : int
        Writes in flight before the engine stops accepting (bounds the counter; the host's
        almost-full normally throttles long before).

    Attributes
    ----------
    write : In(stream.Signature(write_request_layout(line_bits)))
    c1_tx : Out(c1_tx of CcipSignature)
    c1_rx : In(c1_rx of CcipSignature)
    almfull : In(1)
        CCI-P ``c1_tx_almfull``.
    idle : Out(1)
    outstanding : Out(range(max_outstanding + 1))
    """

    def __init__(self, *, line_bits: int = 512, max_outstanding: int = 1024):
        ccip = CcipSignature(line_bits)  # checks line_bits
        if not isinstance(max_outstanding, int) or max_outstanding < 1:
            raise ValueError(f"max_outstanding must be a positive int, got {max_outstanding!r}")
        self.line_bits, self.max_outstanding = line_bits, max_outstanding
        super().__init__({
            "write": In(stream.Signature(write_request_layout(line_bits))),
            "c1_tx": ccip.members["c1_tx"],
            "c1_rx": ccip.members["c1_rx"],
            "almfull": In(1),
            "idle": Out(1),
            "outstanding": Out(range(max_outstanding + 1)),
        })

    def elaborate(self, platform):
        m = Module()
        count = self.outstanding
        seq = Signal(CCIP_MDATA_BITS)
        # "room for one more" is a register, set from the count's next value (the same test a
        # cycle early): ``write.ready`` then has no compare in it, and the writers may hang
        # wide enables on their handshake (SnapshotWriter loads the next row with a row's last line).
        room = Signal(init=1)
        m.d.comb += [self.write.ready.eq(~self.almfull & room),
                     self.idle.eq(count == 0)]
        accept = self.write.valid & self.write.ready
        m.d.sync += self.c1_tx.valid.eq(accept)
        with m.If(accept):
            m.d.sync += [self.c1_tx.address.eq(self.write.payload.address),
                         self.c1_tx.data.eq(self.write.payload.data),
                         self.c1_tx.sop.eq(1), self.c1_tx.cl_len.eq(0),
                         self.c1_tx.req_type.eq(Mux(self.write.payload.fence, C1_REQ_WRFENCE, C1_REQ_WRLINE)),
                         self.c1_tx.mdata.eq(seq), seq.eq(seq + 1)]
        done = self.c1_rx.rsp_valid
        count_next = Signal.like(count)
        m.d.comb += count_next.eq(count + accept - done)
        m.d.sync += [count.eq(count_next), room.eq(count_next < self.max_outstanding)]
        return m
