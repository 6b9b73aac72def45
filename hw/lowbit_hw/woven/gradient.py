"""``WovenGradientUnit``: re-reads a group's lines, accumulates G, and updates the model."""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from lowbit.fixed import CODE_FRAC, CORR_BITS, CORR_SHIFT, STEP_FRAC

from .arith import rnd, sat32, tree_sum
from .records import residual_layout

__all__ = ["WovenGradientUnit", "GROUP_GAP"]

CHUNK = 32
#: Cycles between the starts of two groups: a chunk's G is read at its plane 0 and written back
#: 5 cycles after its last plane (b <= 8), so a group as short as one chunk must not re-read G
#: before that. Groups of >= GROUP_GAP lines (e.g. F > 64 at b >= 7, F > 256 at b = 1) never wait.
GROUP_GAP = 16


class WovenGradientUnit(wiring.Component):
    """For each group (after the dot unit's residuals), per feature ``j`` of each chunk:

        G_j += m0 * sum_s r_s - n_odd_j * q_j + sum_k 2^k * sum_s bit_k(c_sj) * (delta * r_s)

    which is ``sum_s m(c_sj) r_s - sum_s rnd(e(c_sj) w0_j, 8)`` exactly (``m = m0 + c delta``,
    ``e = e_odd`` on odd codes, ``q_j = rnd(e_odd * w0_j, 8)``, ``n_odd_j`` the group's odd codes
    of feature ``j``): an ``S``-input adder tree per feature and plane, no multiplier per code.
    G lives in a RAM of one 32-feature chunk per row, read at a chunk's plane 0 and written after
    its last plane. On the last group of a minibatch, G goes to the update instead (and 0 back):

        w_j = sat32(w0_j - rnd(sat32(rnd(G_j, 15)) * step, 32));   q_j = rnd(e_odd * w_j, 8)

    The unit never stalls once a group has started: every line is already in the group buffer.

    Pipeline (line read issued at u): u+1 line, G and q out of their RAMs; u+2 registered;
    u+3 partial sums of 4 rows and the odd-code count; u+4 per-feature sums, ``n_odd * q``;
    u+5 accumulate; u+6 G written (or ``gs``, model read); u+7 ``gs * step``; u+8 ``w``;
    u+9 model written; u+10 ``q`` written.
    """

    def __init__(self, *, line_bits: int, max_chunks: int, slot_lines: int):
        self.line_bits, self.max_chunks, self.slot_lines = line_bits, max_chunks, slot_lines
        S = self.samples = line_bits // CHUNK
        super().__init__({
            "residuals": In(stream.Signature(residual_layout(S))),
            "start": In(1), "clear": In(1), "clear_busy": Out(1),
            "chunks": In(range(max_chunks + 1)), "bits": In(4), "groups": In(32),
            "batch_groups": In(32), "features": In(24), "step": In(32), "e_odd": In(CORR_BITS),
            "buf_addr": Out(range(2 * slot_lines)), "buf_data": In(line_bits),
            "model_r_addr": Out(range(max_chunks)), "model_r_data": In(data.ArrayLayout(signed(32), CHUNK)),
            "model_w_en": Out(1), "model_w_addr": Out(range(max_chunks)),
            "model_w_data": Out(data.ArrayLayout(signed(32), CHUNK)),
            "upd_written": Out(32), "groups_read": Out(32), "rows_done": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        S, W, C = self.samples, self.line_bits, self.max_chunks
        g_row = data.ArrayLayout(signed(64), CHUNK)
        q_row = data.ArrayLayout(signed(48), CHUNK)
        m.submodules.g_mem = g_mem = Memory(shape=g_row, depth=C, init=[])
        m.submodules.q_mem = q_mem = Memory(shape=q_row, depth=C, init=[])
        g_rd, g_wr = g_mem.read_port(), g_mem.write_port()
        q_rd, q_wr = q_mem.read_port(), q_mem.write_port()

        # ---- clear (run start): G, q and the model to 0
        clearing = Signal()
        clr_addr = Signal(range(C + 1))
        m.d.comb += self.clear_busy.eq(clearing | self.clear)
        with m.If(self.clear):
            m.d.sync += [clearing.eq(1), clr_addr.eq(0)]
        with m.Elif(clearing):
            m.d.sync += clr_addr.eq(clr_addr + 1)
            with m.If(clr_addr == C - 1):
                m.d.sync += clearing.eq(0)

        # ---- group issue
        busy = Signal()
        gap = Signal(range(GROUP_GAP + 1))
        # Two record slots by group parity: a group's record is still read by the pipeline's
        # tail when the next group is taken.
        recs = [Signal(residual_layout(S), name=f"rec{i}") for i in range(2)]
        gg = Signal(32)                 # group being read
        mb_pos = Signal(32)
        c = Signal(range(C + 1))
        k = Signal(4)
        idx = Signal(range(self.slot_lines))
        ends_mb = Signal()              # this group ends its minibatch: update instead of write-back
        take = Signal()
        m.d.comb += [take.eq(~busy & self.residuals.valid & (gap == GROUP_GAP)),
                     self.residuals.ready.eq(take)]
        m.d.sync += gap.eq(Mux(gap == GROUP_GAP, gap, gap + 1))
        last_plane = k == self.bits
        last_chunk = c == self.chunks - 1
        issue = busy
        with m.If(self.start):
            m.d.sync += [gg.eq(0), mb_pos.eq(0), busy.eq(0), self.groups_read.eq(0), gap.eq(GROUP_GAP)]
        with m.Elif(take):
            last_of_mb = (mb_pos + 1 == self.batch_groups) | (gg + 1 == self.groups)
            with m.If(gg[0]):
                m.d.sync += recs[1].eq(self.residuals.payload)
            with m.Else():
                m.d.sync += recs[0].eq(self.residuals.payload)
            m.d.sync += [busy.eq(1), c.eq(0), k.eq(0), idx.eq(0),
                         ends_mb.eq(last_of_mb), gap.eq(0),
                         mb_pos.eq(Mux(last_of_mb, 0, mb_pos + 1))]
        with m.Elif(issue):
            m.d.sync += [k.eq(k + 1), idx.eq(idx + 1)]
            with m.If(last_plane):
                m.d.sync += [k.eq(0), c.eq(c + 1)]
                with m.If(last_chunk):
                    m.d.sync += [busy.eq(0), gg.eq(gg + 1), self.groups_read.eq(self.groups_read + 1)]
        m.d.comb += [self.buf_addr.eq(Cat(idx, gg[0])), g_rd.addr.eq(c), q_rd.addr.eq(c)]

        # ---- u+1: RAM outputs (line, G, q); u+2: registered
        def stage(prev, name):
            nxt = {n: Signal.like(v, name=f"{name}_{n}") for n, v in prev.items()}
            m.d.sync += [nxt[n].eq(v) for n, v in prev.items()]
            return nxt

        u1 = dict(valid=Signal(), k=Signal(4), c=Signal(range(C + 1)), first=Signal(), last=Signal(),
                  end=Signal(), group_last=Signal(), count=Signal(range(S + 1)), parity=Signal())
        cur = Signal(residual_layout(S))
        m.d.comb += cur.eq(Mux(gg[0], recs[1], recs[0]))
        m.d.sync += [u1["valid"].eq(issue), u1["parity"].eq(gg[0]), u1["k"].eq(k), u1["c"].eq(c), u1["first"].eq(k == 0),
                     u1["last"].eq(last_plane), u1["end"].eq(ends_mb), u1["group_last"].eq(last_plane & last_chunk),
                     u1["count"].eq(cur.count)]
        u2 = stage(u1, "u2")
        line2 = Signal(W)
        g2 = Signal(g_row)
        q2 = Signal(q_row)
        m.d.sync += [line2.eq(self.buf_data), g2.eq(g_rd.data), q2.eq(q_rd.data)]

        # ---- u+3: partial sums over rows (groups of 4), odd-code counts
        u3 = stage(u2, "u3")
        g3 = Signal(g_row)
        q3 = Signal(q_row)
        m.d.sync += [g3.eq(g2), q3.eq(q2)]
        nparts = (S + 3) // 4
        parts = [[Signal(signed(53), name=f"gpart_{f}_{p}") for p in range(nparts)] for f in range(CHUNK)]
        nodd = [Signal(range(S + 1), name=f"nodd_{f}") for f in range(CHUNK)]
        rec2 = Signal(residual_layout(S))
        m.d.comb += rec2.eq(Mux(u2["parity"], recs[1], recs[0]))
        for f in range(CHUNK):
            bit = [line2[CHUNK * s + f] & rec2.valid[s] for s in range(S)]
            for p in range(nparts):
                rows = range(4 * p, min(S, 4 * p + 4))
                m.d.sync += parts[f][p].eq(tree_sum(Mux(bit[s], rec2.d[s], 0) for s in rows))
            m.d.sync += nodd[f].eq(sum(bit))

        # ---- u+4: per-feature sums; the odd codes' correction n_odd * q (plane 0 only)
        u4 = stage(u3, "u4")
        g4 = Signal(g_row)
        m.d.sync += g4.eq(g3)
        t = [Signal(signed(55), name=f"t_{f}") for f in range(CHUNK)]
        corr = [Signal(signed(54), name=f"corr_{f}") for f in range(CHUNK)]
        for f in range(CHUNK):
            m.d.sync += [t[f].eq(tree_sum(parts[f])), corr[f].eq(nodd[f] * q3[f])]

        # ---- u+5: accumulate the chunk; its final G leaves at its last plane
        acc = [Signal(signed(66), name=f"gacc_{f}") for f in range(CHUNK)]
        fin = Signal(data.ArrayLayout(signed(64), CHUNK))
        u5 = dict(valid=Signal(), c=Signal(range(C + 1)), end=Signal(), group_last=Signal(),
                  count=Signal(range(S + 1)))
        m.d.sync += u5["valid"].eq(u4["valid"] & u4["last"])
        m0r4 = Mux(u4["parity"], recs[1].m0r, recs[0].m0r)
        with m.If(u4["valid"]):
            for f in range(CHUNK):
                base = Mux(u4["first"], g4[f] + m0r4 - corr[f], acc[f])
                new = base + (t[f] << u4["k"])
                m.d.sync += acc[f].eq(new)
                with m.If(u4["last"]):
                    m.d.sync += fin[f].eq(new)
            with m.If(u4["last"]):
                m.d.sync += [u5[n].eq(u4[n]) for n in ("c", "end", "group_last", "count")]

        # ---- u+6: G back (0 at the end of a minibatch); gs for the update, model read
        u6 = stage(u5, "u6")
        gs = Signal(data.ArrayLayout(signed(32), CHUNK))
        m.d.sync += [gs[f].eq(sat32(rnd(fin[f], CODE_FRAC))) for f in range(CHUNK)]
        m.d.comb += [g_wr.en.eq(clearing | u5["valid"]), g_wr.addr.eq(Mux(clearing, clr_addr, u5["c"]))]
        with m.If(~clearing & ~u5["end"]):
            m.d.comb += g_wr.data.eq(fin)
        m.d.comb += self.model_r_addr.eq(u5["c"])
        wb_rows = Mux(u5["valid"] & ~u5["end"] & u5["group_last"], u5["count"], 0)

        # ---- u+7: gs * step (w0 arrives)
        u7 = stage(u6, "u7")
        prod = Signal(data.ArrayLayout(signed(66), CHUNK))
        w0 = Signal(data.ArrayLayout(signed(32), CHUNK))
        m.d.sync += [prod[f].eq(gs[f] * self.step) for f in range(CHUNK)]
        m.d.sync += w0.eq(self.model_r_data)

        # ---- u+8: w = sat32(w0 - rnd(gs * step, 32)); features >= F stay 0
        u8 = stage(u7, "u8")
        w = Signal(data.ArrayLayout(signed(32), CHUNK))
        for f in range(CHUNK):
            real = (u7["c"] * CHUNK + f) < self.features
            m.d.sync += w[f].eq(Mux(real, sat32(w0[f] - rnd(prod[f], STEP_FRAC)), 0))

        # ---- u+9: model written; q = rnd(e_odd * w, 8) for the next minibatch
        upd = u8["valid"] & u8["end"]
        m.d.comb += [self.model_w_en.eq(clearing | upd), self.model_w_addr.eq(Mux(clearing, clr_addr, u8["c"]))]
        with m.If(~clearing):
            m.d.comb += self.model_w_data.eq(w)
        qn = Signal(q_row)
        qn_en = Signal()
        qn_addr = Signal(range(C + 1))
        m.d.sync += [qn[f].eq(rnd(self.e_odd * w[f], CORR_SHIFT)) for f in range(CHUNK)]
        m.d.sync += [qn_en.eq(upd), qn_addr.eq(u8["c"])]
        up_rows = Mux(upd & u8["group_last"], u8["count"], 0)
        with m.If(self.start):
            m.d.sync += [self.upd_written.eq(0), self.rows_done.eq(0)]
        with m.Else():
            m.d.sync += [self.upd_written.eq(self.upd_written + upd),
                         self.rows_done.eq(self.rows_done + wb_rows + up_rows)]

        # ---- u+10: q written
        m.d.comb += [q_wr.en.eq(clearing | qn_en), q_wr.addr.eq(Mux(clearing, clr_addr, qn_addr))]
        with m.If(~clearing):
            m.d.comb += q_wr.data.eq(qn)
        return m
