"""``DotPass``: frames beats into rows, computes each row's dot product, residual and loss."""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from lowbit.contract.fixed import CODE_FRAC, LOSS_SHIFT, M_BITS, rshift_round

from ..interfaces import RunConfig
from .arith import sat, tree_sum
from .decoder import beat_layout
from .params import CODE_BITS, MASK_CODE

__all__ = ["DotPass", "residual_layout", "RESIDUAL_DEPTH"]

residual_layout = data.StructLayout({"r": signed(32), "batch_last": unsigned(1)})

#: Residuals the dot pass may have in flight or queued for the gradient pass.
RESIDUAL_DEPTH = 4


def counter_bits(row_beats_max: int) -> int:
    """Width of per-epoch beat counters: up to 2^32 rows of ``row_beats_max`` beats."""
    return 33 + row_beats_max.bit_length()


class DotPass(wiring.Component):
    """The first pass over a row: ``dot_i = sum_j m_ij w0_j``, ``r_i``, the loss.

    It frames the decoder's beats: beat ``k`` of a row holds features ``k*lanes ..``; lanes at
    features ``>= F`` get the code 511 (``m = e = 0``, see :class:`CodeTable`) so nothing
    downstream needs a mask. After the epoch's ``N * row_beats`` beats it drops the ``pad_beats``
    beats that fill the last block.

    A beat is issued (one per cycle) when

    * the row buffer has space (the gradient pass re-reads the codes from it),
    * for the row's last beat: its label is there and the residual FIFO has room,
    * the *interlock* holds: for a row of minibatch ``q >= 1``, beat ``k`` needs the update of
      minibatch ``q-1`` to have written beat ``k``: ``upd_written >= (q-1)*R + k + 1``, with
      ``upd_written`` the gradient pass's count of model beats written in this epoch, up to and
      including this cycle (model port A forwards a same-cycle write). The first
      row of a minibatch thus follows the update beat by beat instead of waiting for all of it.

    Pipeline (issue at cycle t): t reads the code table (port A) and the model (port A); t+1
    registers the RAM outputs; t+2 multiplies ``m * w`` per lane; t+3 sums the lanes (adder tree);
    t+4 accumulates the row (64-bit, exact); t+5 forms ``r = sat32(rnd(dot, 15) - y)`` and offers it to the gradient pass
    (through the residual FIFO, or past it when it is empty); then the loss adds ``(r*r) >> 16``,
    saturating at 2^64-1.

    ``stall`` is high in a cycle where a beat (or, for the last beat, its label) would have been
    issued but had not arrived from memory.

    Parameters
    ----------
    lanes : int
    row_beats_max : int
        ``max_features / lanes``.
    block_beats : int
        Beats per block, ``line_bits / lanes``.
    """

    def __init__(self, *, lanes: int, row_beats_max: int, block_beats: int):
        self.lanes, self.row_beats_max, self.block_beats = lanes, row_beats_max, block_beats
        cw = counter_bits(row_beats_max)
        codes = data.ArrayLayout(unsigned(CODE_BITS), lanes)
        super().__init__({
            "beats": In(stream.Signature(beat_layout(lanes))),
            "labels": In(stream.Signature(signed(32))),
            "residuals": Out(stream.Signature(residual_layout)),
            # per-run configuration (stable while running)
            "features": In(RunConfig.members["features"]),
            "row_beats": In(range(row_beats_max + 1)),
            "rows": In(RunConfig.members["rows"]),
            "batch": In(RunConfig.members["batch"]),
            "pad_beats": In(range(block_beats)),
            # control
            "start": In(1),  # epoch start: reset framing, loss, interlock
            "running": In(1),
            "done": Out(1),  # all beats of the epoch consumed
            "loss": Out(64),
            "stall": Out(1),
            "upd_written": In(cw),
            # code table port A, model port A, row buffer
            "table_addr": Out(codes),
            "table_m": In(data.ArrayLayout(signed(M_BITS), lanes)),
            "model_addr": Out(range(row_beats_max)),
            "model_data": In(data.ArrayLayout(signed(32), lanes)),
            "rb_en": Out(1),
            "rb_data": Out(codes),
            "rb_space": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        L = self.lanes
        cw = counter_bits(self.row_beats_max)

        m.submodules.rfifo = rfifo = SyncFIFO(width=33, depth=RESIDUAL_DEPTH)
        r_pop = self.residuals.valid & self.residuals.ready

        # ---- framing state
        k = Signal(range(self.row_beats_max))
        fb = Signal(25)  # feature index of lane 0 (k * lanes)
        rows_left = Signal(32)
        inb = Signal(RunConfig.members["batch"])  # row's position in its minibatch
        q_nz = Signal()  # row is in minibatch q >= 1
        thr = Signal(cw)  # (q-1)*R + 1
        need = Signal(cw)  # thr + k, kept as a register (it feeds the issue decision)
        pad_left = Signal(range(self.block_beats))
        inflight = Signal(range(RESIDUAL_DEPTH + 1))  # rows whose residual is in the pipeline or FIFO

        last = k == self.row_beats - 1
        in_rows = rows_left != 0
        lock_ok = ~q_nz | (self.upd_written >= need)
        room = self.rb_space & (~last | (inflight < RESIDUAL_DEPTH))
        want = self.running & in_rows & lock_ok & room
        label_ok = ~last | self.labels.valid
        drop = self.running & ~in_rows & (pad_left != 0)
        issue = want & label_ok & self.beats.valid
        m.d.comb += [self.beats.ready.eq((want & label_ok) | drop),
                     self.labels.ready.eq(issue & last),
                     self.stall.eq(want & ~(self.beats.valid & label_ok)),
                     self.done.eq(~in_rows & (pad_left == 0))]
        batch_last = (inb == self.batch - 1) | (rows_left == 1)

        # padding lanes -> code 511 (m = e = 0)
        lim = Signal(signed(26))
        m.d.comb += lim.eq(self.features - fb)
        codes = Signal(data.ArrayLayout(unsigned(CODE_BITS), L))
        for lane in range(L):
            m.d.comb += codes[lane].eq(Mux(lim > lane, self.beats.payload[lane], MASK_CODE))
        m.d.comb += [self.table_addr.eq(codes), self.model_addr.eq(k),
                     self.rb_en.eq(issue), self.rb_data.eq(codes)]

        with m.If(issue):
            with m.If(last):
                m.d.sync += [k.eq(0), fb.eq(0), rows_left.eq(rows_left - 1),
                             inb.eq(Mux(batch_last, 0, inb + 1))]
                m.d.sync += need.eq(thr)
                with m.If(batch_last):
                    m.d.sync += q_nz.eq(1)
                    with m.If(q_nz):
                        m.d.sync += [thr.eq(thr + self.row_beats), need.eq(thr + self.row_beats)]
            with m.Else():
                m.d.sync += [k.eq(k + 1), fb.eq(fb + L), need.eq(need + 1)]
        with m.If(self.beats.valid & self.beats.ready & drop):
            m.d.sync += pad_left.eq(pad_left - 1)
        m.d.sync += inflight.eq(inflight + (issue & last) - r_pop)
        with m.If(self.start):
            m.d.sync += [k.eq(0), fb.eq(0), rows_left.eq(self.rows), inb.eq(0), q_nz.eq(0), thr.eq(1), need.eq(1),
                         pad_left.eq(self.pad_beats)]

        # ---- pipeline
        def stage(name, **fields):
            return {n: Signal(s, name=f"{name}_{n}") for n, s in fields.items()}

        ctl = dict(v=1, first=1, last=1, y=signed(32), bl=1)
        s1 = stage("s1", **ctl)
        m.d.sync += [s1["v"].eq(issue), s1["first"].eq(k == 0), s1["last"].eq(last),
                     s1["y"].eq(self.labels.payload), s1["bl"].eq(batch_last)]

        # RAM outputs are registered before the multipliers (RAM clock-to-out + multiply + add in
        # one cycle was the critical path).
        s1r = stage("s1r", **ctl)
        m1 = [Signal(signed(M_BITS), name=f"s1r_m{lane}") for lane in range(L)]
        w1 = [Signal(signed(32), name=f"s1r_w{lane}") for lane in range(L)]
        m.d.sync += [s1r[n].eq(s1[n]) for n in ctl]
        m.d.sync += [x.eq(self.table_m[lane]) for lane, x in enumerate(m1)]
        m.d.sync += [x.eq(self.model_data[lane]) for lane, x in enumerate(w1)]

        s2 = stage("s2", **ctl)
        prods = [Signal(signed(49), name=f"s2_p{lane}") for lane in range(L)]
        m.d.sync += [s2[n].eq(s1r[n]) for n in ctl]
        m.d.sync += [p.eq(m1[lane] * w1[lane]) for lane, p in enumerate(prods)]

        s3 = stage("s3", **ctl)
        beat_sum = Signal(signed(49 + L.bit_length()))
        m.d.sync += [s3[n].eq(s2[n]) for n in ctl]
        m.d.sync += beat_sum.eq(tree_sum(prods))

        acc = Signal(signed(64))
        acc_next = Signal(signed(64))
        m.d.comb += acc_next.eq(Mux(s3["first"], beat_sum, acc + beat_sum))
        with m.If(s3["v"]):
            m.d.sync += acc.eq(acc_next)
        s4 = stage("s4", v=1, y=signed(32), bl=1)
        dot = Signal(signed(64))
        m.d.sync += [s4["v"].eq(s3["v"] & s3["last"]), s4["y"].eq(s3["y"]), s4["bl"].eq(s3["bl"]),
                     dot.eq(acc_next)]

        r = Signal(signed(32))
        m.d.comb += r.eq(sat(rshift_round(dot, CODE_FRAC) - s4["y"]))
        # Residual FIFO with a bypass: when it is empty the new residual is offered in the cycle it
        # is formed (one cycle less per minibatch boundary); if not taken it enters the FIFO and is
        # offered from there next cycle, unchanged (the stream rule holds).
        fresh = Cat(r, s4["bl"])
        m.d.comb += [self.residuals.valid.eq(rfifo.r_rdy | s4["v"]),
                     self.residuals.payload.eq(Mux(rfifo.r_rdy, rfifo.r_data, fresh)),
                     rfifo.r_en.eq(self.residuals.ready & rfifo.r_rdy),
                     rfifo.w_en.eq(s4["v"] & (rfifo.r_rdy | ~self.residuals.ready)),
                     rfifo.w_data.eq(fresh)]

        # loss: r*r >> 16, 64-bit saturating
        v5, r5 = Signal(), Signal(signed(32))
        v6, sq = Signal(), Signal(unsigned(63))
        m.d.sync += [v5.eq(s4["v"]), r5.eq(r), v6.eq(v5), sq.eq(r5 * r5)]
        loss_sum = Signal(65)
        m.d.comb += [loss_sum.eq(self.loss + (sq >> LOSS_SHIFT))]
        with m.If(v6):
            m.d.sync += self.loss.eq(Mux(loss_sum[64], (1 << 64) - 1, loss_sum[:64]))
        with m.If(self.start):
            m.d.sync += self.loss.eq(0)
        return m
