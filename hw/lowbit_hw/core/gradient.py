"""``GradientPass``: the second pass over a row: gradient accumulation or the minibatch update."""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from lowbit.contract.fixed import CODE_FRAC, CORR_BITS, CORR_SHIFT, M_BITS, STEP_FRAC, rshift_round

from ..interfaces import RunConfig
from .arith import sat
from .dot import counter_bits, residual_layout
from .params import CODE_BITS

__all__ = ["GradientPass", "ROW_GAP"]

#: Stage at which a beat writes G back.
_G_WRITE_STAGE = 4
#: Stage at which a beat reads the model (port B) and G.
_READ_STAGE = 0
#: Minimum cycles between the first beats of consecutive rows, so that beat k of a row reads G
#: after the previous row wrote it (a bubble only for rows shorter than this many beats). The
#: model needs no gap: the row after an update row has no residual before its dot pass has read
#: every beat the update wrote (the interlock), so its gradient pass starts after the last write.
ROW_GAP = _G_WRITE_STAGE - _READ_STAGE + 1


class GradientPass(wiring.Component):
    """``G_j += m_ij r_i - e_ij w0_j`` over a row's beats, or on a minibatch's last row the update.

    A row starts when its residual is available (from the dot pass) and at least
    :data:`ROW_GAP` cycles after the previous row started; then its beats issue one per cycle and
    nothing can stall them (codes come from the row buffer, everything else from RAM), so the
    pipeline needs no back-pressure. Pipeline (issue at cycle u; the row buffer was read at u-1):
    u reads the code table (port B), the model (port B) and G; u+1 registers the RAM outputs;
    u+2 multiplies ``m*r`` and ``e*w0``; u+3 adds into ``G`` (64-bit, exact by the golden model's
    bound); u+4 writes ``G`` back (0 on a minibatch's last row) and rounds
    ``gs = sat32(rnd(G, 15))``; u+5 multiplies by STEP; u+6 writes ``w = sat32(w0 - rnd(gs * step, 32))`` to both model copies and counts the beat in
    ``upd_written`` in the same cycle (the dot pass's interlock; model port A forwards the write).

    ``clear`` (a pulse) zeroes G and the model over the run's ``row_beats`` rows (``clear_busy``
    while doing so; rows beyond are never read). ``start`` (a pulse, per epoch) zeroes ``upd_written`` and ``rows_done``.

    Parameters
    ----------
    lanes : int
    row_beats_max : int
    """

    def __init__(self, *, lanes: int, row_beats_max: int):
        self.lanes, self.row_beats_max = lanes, row_beats_max
        codes = data.ArrayLayout(unsigned(CODE_BITS), lanes)
        row = data.ArrayLayout(signed(32), lanes)
        super().__init__({
            "residuals": In(stream.Signature(residual_layout)),
            "row_beats": In(range(row_beats_max + 1)),
            "step": In(RunConfig.members["step"]),
            "start": In(1),
            "clear": In(1),
            "clear_busy": Out(1),
            "upd_written": Out(counter_bits(row_beats_max)),
            "rows_done": Out(32),
            "rb_en": Out(1),
            "rb_data": In(codes),
            "table_addr": Out(codes),
            "table_m": In(data.ArrayLayout(signed(M_BITS), lanes)),
            "table_e": In(data.ArrayLayout(unsigned(CORR_BITS), lanes)),
            "model_addr": Out(range(row_beats_max)),
            "model_data": In(row),
            "w_en": Out(1),
            "w_addr": Out(range(row_beats_max)),
            "w_data": Out(row),
        })

    def elaborate(self, platform):
        m = Module()
        L, D = self.lanes, self.row_beats_max

        gmem = Memory(shape=data.ArrayLayout(signed(64), L), depth=D, init=[])
        m.submodules.gmem = gmem
        g_rd, g_wr = gmem.read_port(), gmem.write_port()

        # ---- issue
        left = Signal(range(D + 1))  # beats of the current row still to issue
        k = Signal(range(D))
        r_cur = Signal(signed(32))
        bl_cur = Signal()
        since = Signal(range(ROW_GAP + 1), init=ROW_GAP)  # cycles since the last row's first beat
        issue = left != 0
        first = issue & (k == 0)
        since_now = Mux(first, 0, since)
        pop = self.residuals.valid & ((left == 0) | (left == 1)) & (since_now >= ROW_GAP - 1) & ~self.clear_busy
        # The row buffer is read one cycle ahead of the issue (at the pop for a row's first beat),
        # so an issued beat's codes address the code table in the issue cycle itself.
        m.d.comb += [self.residuals.ready.eq(pop), self.rb_en.eq(pop | (issue & (left != 1)))]
        m.d.sync += since.eq(Mux(first, 1, Mux(since == ROW_GAP, ROW_GAP, since + 1)))
        with m.If(pop):
            m.d.sync += [left.eq(self.row_beats), k.eq(0),
                         r_cur.eq(self.residuals.payload.r), bl_cur.eq(self.residuals.payload.batch_last)]
        with m.Elif(issue):
            m.d.sync += [left.eq(left - 1), k.eq(k + 1)]

        def stage(name, **extra):
            sig = {n: Signal(s, name=f"{name}_{n}") for n, s in
                   dict(v=1, last=1, bl=1, k=range(D), **extra).items()}
            return sig

        g1 = stage("g1", r=signed(32))
        m.d.sync += [g1["v"].eq(issue), g1["last"].eq(left == 1), g1["bl"].eq(bl_cur), g1["k"].eq(k),
                     g1["r"].eq(r_cur)]
        m.d.comb += [self.table_addr.eq(self.rb_data), self.model_addr.eq(k), g_rd.addr.eq(k)]

        # Table, model and G data arrive with g1; they are registered before the multipliers (RAM
        # clock-to-out + multiply + add in one cycle was the critical path).
        g2 = stage("g2", r=signed(32))
        tm2 = [Signal(signed(M_BITS), name=f"g2_m{lane}") for lane in range(L)]
        te2 = [Signal(unsigned(CORR_BITS), name=f"g2_e{lane}") for lane in range(L)]
        w2 = [Signal(signed(32), name=f"g2_w{lane}") for lane in range(L)]
        gg2 = [Signal(signed(64), name=f"g2_g{lane}") for lane in range(L)]
        m.d.sync += [g2[n].eq(g1[n]) for n in g1]
        for lane in range(L):
            m.d.sync += [tm2[lane].eq(self.table_m[lane]), te2[lane].eq(self.table_e[lane]),
                         w2[lane].eq(self.model_data[lane]), gg2[lane].eq(g_rd.data[lane])]

        g3 = stage("g3")
        mr = [Signal(signed(49), name=f"g3_mr{lane}") for lane in range(L)]
        # e*w at 2^-47 plus the rounding constant of rnd(e*w, CORR_SHIFT), added with the partial
        # products (g4 then needs only a shift, no fourth adder)
        ew = [Signal(signed(CORR_BITS + 33), name=f"g3_ew{lane}") for lane in range(L)]
        g3_g = [Signal(signed(64), name=f"g3_g{lane}") for lane in range(L)]
        g3_w = [Signal(signed(32), name=f"g3_w{lane}") for lane in range(L)]
        m.d.sync += [g3[n].eq(g2[n]) for n in g3]
        for lane in range(L):
            m.d.sync += [mr[lane].eq(tm2[lane] * g2["r"]), ew[lane].eq(te2[lane] * w2[lane] + (1 << (CORR_SHIFT - 1))),
                         g3_g[lane].eq(gg2[lane]), g3_w[lane].eq(w2[lane])]

        g4 = stage("g4")
        g4_g = [Signal(signed(64), name=f"g4_g{lane}") for lane in range(L)]
        g4_w = [Signal(signed(32), name=f"g4_w{lane}") for lane in range(L)]
        m.d.sync += [g4[n].eq(g3[n]) for n in g4]
        for lane in range(L):
            m.d.sync += [g4_g[lane].eq(g3_g[lane] + mr[lane] - (ew[lane] >> CORR_SHIFT)), g4_w[lane].eq(g3_w[lane])]

        clr_left = Signal(range(D + 1))
        clr_addr = Signal(range(D))
        m.d.comb += self.clear_busy.eq(clr_left != 0)
        with m.If(self.clear):  # only the rows this run uses are ever read
            m.d.sync += [clr_left.eq(self.row_beats), clr_addr.eq(0)]
        with m.Elif(self.clear_busy):
            m.d.sync += [clr_left.eq(clr_left - 1), clr_addr.eq(clr_addr + 1)]

        with m.If(self.clear_busy):
            m.d.comb += [g_wr.en.eq(1), g_wr.addr.eq(clr_addr), g_wr.data.eq(0)]
        with m.Else():
            m.d.comb += [g_wr.en.eq(g4["v"]), g_wr.addr.eq(g4["k"])]
            for lane in range(L):
                m.d.comb += g_wr.data[lane].eq(Mux(g4["bl"], 0, g4_g[lane]))

        g5 = stage("g5")
        g5_gs = [Signal(signed(32), name=f"g5_gs{lane}") for lane in range(L)]
        g5_w = [Signal(signed(32), name=f"g5_w{lane}") for lane in range(L)]
        m.d.sync += [g5[n].eq(g4[n]) for n in g5]
        for lane in range(L):
            m.d.sync += [g5_gs[lane].eq(sat(rshift_round(g4_g[lane], CODE_FRAC))), g5_w[lane].eq(g4_w[lane])]

        g6 = stage("g6")
        g6_p = [Signal(signed(65), name=f"g6_p{lane}") for lane in range(L)]
        g6_w = [Signal(signed(32), name=f"g6_w{lane}") for lane in range(L)]
        m.d.sync += [g6[n].eq(g5[n]) for n in g6]
        for lane in range(L):
            m.d.sync += [g6_p[lane].eq(g5_gs[lane] * self.step), g6_w[lane].eq(g5_w[lane])]

        upd = g6["v"] & g6["bl"]
        with m.If(self.clear_busy):
            m.d.comb += [self.w_en.eq(1), self.w_addr.eq(clr_addr), self.w_data.eq(0)]
        with m.Else():
            m.d.comb += [self.w_en.eq(upd), self.w_addr.eq(g6["k"])]
            for lane in range(L):
                m.d.comb += self.w_data[lane].eq(sat(g6_w[lane] - rshift_round(g6_p[lane], STEP_FRAC)))
        # upd_written counts the model beats written by the end of this cycle, this cycle's write
        # included: model port A forwards it (transparent read), so the dot pass may read the beat
        # in the very cycle it is written.
        # (a mux of two registers, not an adder: it feeds the dot pass's issue decision)
        written = Signal(len(self.upd_written))
        written_p1 = Signal(len(self.upd_written), init=1)
        m.d.comb += self.upd_written.eq(Mux(upd, written_p1, written))
        with m.If(upd):
            m.d.sync += [written.eq(written_p1), written_p1.eq(written_p1 + 1)]
        m.d.sync += self.rows_done.eq(self.rows_done + (g6["v"] & g6["last"]))
        with m.If(self.start):
            m.d.sync += [written.eq(0), written_p1.eq(1), self.rows_done.eq(0)]
        return m
