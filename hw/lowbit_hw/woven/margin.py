"""``RowNonlinearity``: each row's residual and loss from its dot product, for every LOSS.

This is the per-row part of ``lowbit.contract.golden`` (the spec), for the ``S`` rows of a group
at once. With ``v = rnd(dot, 15)`` and ``y`` the row's label:

* LOSS squared:  ``r = sat32(v - y)``;  loss ``(r * r) >> 16``
* LOSS logistic / hinge, naive estimator: ``s = +1 if y > 0 else -1``, the margin
  ``t = sat32(s * sat32(v))``, ``r = s * phi(t)``, loss ``l(t) << 8`` (``golden.margins``,
  ``_phi_naive``, ``_row_loss``); logistic reads ``phi`` and ``l`` from
  ``lowbit.contract.losses.PHI_TABLE`` / ``LOSS_TABLE`` by linear interpolation (``golden.interp``).

No multiplier of its own beyond what least squares had: each row's ``r * r`` multiplier (a
``PipelinedMul(32, 32)``, four MULT18X18D) does the two interpolations of the non-linear losses
instead, ``(T[i+1] - T[i]) * f`` for ``phi`` and, a cycle later, for ``l``. A group's dot products
come at least two cycles apart (a group is ``(b + 1) * chunks >= 2`` lines, one line a cycle),
so the two products never meet another group's. The table is one ROM of 256 entries
``(PHI[i], PHI[i+1] - PHI[i], LOSS[i], LOSS[i+1] - LOSS[i])``, a read port per row.

Pipeline (input ``valid`` at cycle 0; every stage one carry chain, a ROM read or muxes):

* squared: 1 ``v - y``; 2 ``r`` (sat32, padding rows 0) = ``r`` out; ``r * r`` from 2, summed.
* both non-linear losses: 1 ``z = sat32(v)``, ``y > 0``; 2 ``t = +-z`` (33 bits: ``-(-2^31)`` is
  kept as ``2^31``, which every use below treats as ``sat32``'s ``2^31 - 1`` would).
* hinge: 3 ``r = s * phi(t)`` = ``r`` out (a compare of ``t``'s top bits).
* logistic: 3 table index ``i`` and fraction ``f`` (bit selects: ``t + 2^27`` is ``t`` with bit 27
  flipped), the part beyond the table (``K - t``: logistic's tail, hinge's whole loss); 4 the ROM
  word, ``s * f``; 4 / 5 ``dPHI * (s f)`` / ``dLOSS * f`` enter the multiplier; 8 / 9 they leave
  it; 9 ``r = (s PHI 2^20 + c_s + dPHI (s f)) >> 20`` = ``r`` out (the sign folded into the
  interpolation, ``RowNonlinearity``'s comments); 10 ``l``'s interpolation; 11 the row's loss
  (hinge's too), summed.

The outputs of the modes leave at their own latencies (``r_latency``): the mode is a register
held for the whole run, so squared runs keep their timing cycle for cycle.

Chebyshev estimator (``cheb``; logistic and hinge): a group's dot products come once per
*factor*, ``d + 1`` times, factor 0 first (``first_factor``: its margin gives the loss, as above;
its ``r`` is not used), then the factors of copies ``d, d-1, .., 1`` (``golden.horner``; the last
has ``last_factor``). Per row, one Horner step per factor after the first, through the row's
multiplier (``b`` widened to 33 bits for ``c``, still 2 x 2 MULT18X18D): 3 ``c`` = ``t`` clamped
to ``+-2^(24+RANGE)``, ``h * c`` enters; 7 it leaves, ``+ 2^(23+RANGE)``; 8 ``>> (24 + RANGE)``;
9 ``h = sat32(POLY_j + .)``; after the last factor 10 ``r = sat32(s h)`` = ``r`` out. ``h``
starts at ``POLY_d`` with factor 0. A step needs the previous step's ``h`` at its cycle 3, so
factors must come ``factor_gap`` cycles apart (the dot unit waits when a factor is shorter).

Parameters
----------
samples : int
    Rows per group (``S``).
dot_width : int
    Width of the incoming ``dot`` (``dot_i * 2^15 + 2^14`` before the shift: ``rnd(dot, 15)`` is
    ``dot >> 15``).
"""

# No "from __future__ import annotations": Component reads real annotations.

from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from lowbit.contract.fixed import CODE_FRAC, LOSS_FRAC, LOSS_SHIFT, MODEL_FRAC
from lowbit.contract.losses import LOSS_TABLE, PHI_TABLE, SEG_SHIFT, TABLE_LO, TABLE_SEGMENTS
from lowbit.contract.registers import MAX_DEGREE, MAX_RANGE_SHIFT, Loss

from ..ecp5 import PipelinedMul, pipelined_sum
from .arith import delay, sat32

__all__ = ["RowNonlinearity", "table_rom_layout", "table_rom_init"]

ONE = 1 << MODEL_FRAC
#: ``t`` at or above ``2^TOP_BIT`` is clamped to the table's top (``TABLE_HI``), below ``-2^TOP_BIT`` to its bottom.
TOP_BIT = (-TABLE_LO).bit_length() - 1                 # 27
assert -TABLE_LO == 1 << TOP_BIT and TABLE_SEGMENTS == 1 << (TOP_BIT + 1 - SEG_SHIFT)
#: ``l(t)`` (at 2^-24) is shifted by this much onto the loss accumulator's 2^-32.
ROW_LOSS_SHIFT = LOSS_FRAC - MODEL_FRAC               # 8
#: Operand widths of each row's multiplier: least squares' ``r * r`` (int32 x int32), and the
#: Chebyshev estimator's ``h * c`` (int32 x a margin clamped to +-2^31: 33 bits; still 2 x 2 limbs).
MUL_WIDTH = 32
MUL_B_WIDTH = 33
#: Chebyshev, cycles after ``valid``: ``h * c`` enters the multiplier (``c`` registered at 3); the
#: new ``h`` is written (the end of 9: the product at 7, + 2^(23+R) at 8, the shift at 9); ``r`` out.
H_IN, H_H, H_R = 3, 9, 11


def _signed_width(values) -> int:
    return max(int(v).bit_length() for v in values) + 1


def table_rom_layout() -> data.StructLayout:
    """One ROM word: the table entries of segment ``i`` and their differences to ``i + 1``, each
    as narrow as the tables allow (computed from them, so a retuned table resizes the ROM)."""
    fields = {}
    for name, table in (("phi", PHI_TABLE), ("loss", LOSS_TABLE)):
        fields[name] = signed(_signed_width(table))
        fields["d" + name] = signed(_signed_width(table[1:] - table[:-1]))
    return data.StructLayout(fields)


def table_rom_init() -> list[dict]:
    return [dict(phi=int(PHI_TABLE[i]), dphi=int(PHI_TABLE[i + 1] - PHI_TABLE[i]),
                 loss=int(LOSS_TABLE[i]), dloss=int(LOSS_TABLE[i + 1] - LOSS_TABLE[i]))
            for i in range(TABLE_SEGMENTS)]


class RowNonlinearity(wiring.Component):
    """Each row's ``r`` and the group's loss, for the LOSS held in ``kind`` (the module docstring).

    ``chebyshev=False`` builds it without the Horner steps (``cheb`` is then ignored, as if 0).
    """

    #: Chebyshev: cycles between two factors' ``valid`` at least (a Horner step's ``h`` is ready 7
    #: cycles after its ``c`` entered the multiplier at 3, the next step's enters at its own 3; one
    #: cycle in hand).
    factor_gap = 8

    def __init__(self, *, samples: int, dot_width: int, chebyshev: bool = True):
        self.chebyshev = bool(chebyshev)  # False: the Horner steps held off by a constant
        try:
            if not isinstance(samples, int) or samples < 1 or samples & (samples - 1):
                raise ValueError(f"samples must be a power of two, got {samples!r}")
            if not isinstance(dot_width, int) or dot_width <= CODE_FRAC + 32:
                raise ValueError(f"dot_width must exceed {CODE_FRAC + 32} (the rounded dot is sat32'd), "
                                 f"got {dot_width!r}")
        except ValueError:
            self._MustUse__silence = True
            raise
        self.samples, self.dot_width = samples, dot_width
        probe = PipelinedMul(MUL_WIDTH, MUL_B_WIDTH)  # only asked for its latency (the rows build their own)
        probe._MustUse__silence = True
        mul_latency = probe.latency
        sum_levels = (samples - 1).bit_length()
        #: Cycles from ``valid`` to ``r_valid``, by mode.
        self.r_latency = {Loss.SQUARED: 2, Loss.LOGISTIC: 5 + mul_latency, Loss.HINGE: 3}
        #: Cycles from ``r_valid`` to the squared loss's ``loss_valid`` (``r * r``, then summed).
        self.squared_lag = mul_latency + sum_levels
        self._mul_latency, self._sum_levels = mul_latency, sum_levels
        super().__init__({
            "kind": In(2),   # LOSS, held for the run (3 is refused at START)
            "valid": In(1),  # a group's dot products this cycle; pulses >= 2 cycles apart
            "dot": In(data.ArrayLayout(signed(dot_width), samples)),
            "y": In(data.ArrayLayout(signed(32), samples)),
            "mask": In(samples),  # real rows (padding rows give r = 0 and no loss)
            "r_valid": Out(1), "r": Out(data.ArrayLayout(signed(32), samples)), "r_mask": Out(samples),
            "loss_valid": Out(1), "loss": Out(64),  # the group's loss at 2^-32 (< 2^48)
            # the Chebyshev estimator, held for the run (cheb: KIND chebyshev; degree d)
            "cheb": In(1), "degree": In(4), "poly": In(data.ArrayLayout(signed(32), MAX_DEGREE + 1)),
            "range_shift": In(3),
            "first_factor": In(1), "last_factor": In(1),  # with valid (both 1 without cheb)
        })

    def elaborate(self, platform):
        m = Module()
        S = self.samples
        p_a = 4 + self._mul_latency  # dphi * s f leaves the multiplier (loss: a cycle later)
        assert self.r_latency[Loss.LOGISTIC] == p_a + 1
        nonlinear, hinge = Signal(), Signal()
        m.d.sync += [nonlinear.eq(self.kind != Loss.SQUARED), hinge.eq(self.kind == Loss.HINGE)]
        if self.chebyshev:
            cheb = Signal()
            m.d.sync += cheb.eq(self.cheb)
        else:  # built without the estimator: a constant, so synthesis drops the Horner logic
            cheb = Const(0)

        valid = [self.valid]
        for i in range(1, max(p_a + 3, H_R + 1)):
            valid.append(delay(m, valid[-1], 1, f"valid{i}", reset_less=False))
        firsts, lasts = [self.first_factor], [self.last_factor]
        for i in range(1, len(valid)):
            firsts.append(delay(m, firsts[-1], 1, f"first{i}"))
            lasts.append(delay(m, lasts[-1], 1, f"last{i}"))
        # Horner (Chebyshev): the coefficient of this step, POLY_j, j = d-1 .. 0 (one for all rows:
        # the steps are factor_gap apart); the clamp and the rounding, from RANGE
        pj = Signal(range(MAX_DEGREE + 1))
        step_in = cheb & valid[H_IN] & ~firsts[H_IN]      # h * c enters the multipliers
        step_out = cheb & valid[H_H] & ~firsts[H_H]       # h is written
        with m.If(cheb & valid[H_IN] & firsts[H_IN]):
            m.d.sync += pj.eq(self.degree - 1)
        with m.Elif(step_out):
            m.d.sync += pj.eq(pj - 1)
        coef = Signal(signed(32), reset_less=True)
        with m.Switch(pj):
            for i in range(MAX_DEGREE + 1):
                with m.Case(i):
                    m.d.comb += coef.eq(self.poly[i])
        top = Signal(signed(32), reset_less=True)                     # POLY_d
        with m.Switch(self.degree):
            for i in range(MAX_DEGREE + 1):
                with m.Case(i):
                    m.d.sync += top.eq(self.poly[i])
        lim = Signal(signed(34), reset_less=True)                     # 2^(24 + RANGE)
        # the upper clamp, min(lim, 2^31 - 1): t = -(-2^31) = 2^31 stands for sat32's 2^31 - 1,
        # which the golden model clamps to itself at RANGE 7 (lim = 2^31)
        lim_hi = Signal(signed(34), reset_less=True)
        m.d.sync += lim_hi.eq(Mux(self.range_shift == MAX_RANGE_SHIFT, (1 << 31) - 1, lim))
        h_half = Signal(signed(34), reset_less=True)                  # 2^(23 + RANGE)
        m.d.sync += [lim.eq(Const(1 << MODEL_FRAC, 33) << self.range_shift),
                     h_half.eq(Const(1 << (MODEL_FRAC - 1), 33) << self.range_shift)]
        shift = Signal(range(MODEL_FRAC + MAX_RANGE_SHIFT + 1), reset_less=True)
        m.d.sync += shift.eq(MODEL_FRAC + self.range_shift)
        masks = {0: self.mask}

        def mask_at(k):
            """The rows' mask k cycles after ``valid`` (one delay line, tapped)."""
            for i in range(max(masks) + 1, k + 1):
                masks[i] = delay(m, masks[i - 1], 1, f"mask{i}")
            return masks[k]

        mask1 = mask_at(1)
        layout = table_rom_layout()
        rom_init = table_rom_init()

        r_out, loss_sq, loss_nl = [], [], []
        phase_a = nonlinear & ~cheb & valid[4]   # the phi interpolation enters the multiplier
        phase_b = nonlinear & valid[5] & (firsts[5] | ~cheb)   # the loss interpolation, a cycle later (factor 0's)
        for s in range(S):
            v = self.dot[s] >> CODE_FRAC
            y = self.y[s]
            # ---- squared: 1 v - y; 2 r
            diff = Signal(signed(len(v) + 1), name=f"diff_{s}", reset_less=True)
            m.d.sync += diff.eq(v - y)
            r_sq = Mux(mask1[s], sat32(diff), 0)

            # ---- non-linear: 1 z, the label's sign; 2 t = +-z
            z = Signal(signed(32), name=f"z_{s}", reset_less=True)
            pos1 = Signal(name=f"pos1_{s}", reset_less=True)
            m.d.sync += [z.eq(sat32(v)), pos1.eq(~y[-1] & y.any())]
            t = Signal(signed(33), name=f"t_{s}", reset_less=True)
            m.d.sync += t.eq(Mux(pos1, z, -z))
            pos2 = delay(m, pos1, 1, f"pos2_{s}")

            # ---- hinge: r = s * phi(t) (phi = -1 below 1, else 0) straight from t: r out at 3
            below_one = t[-1] | ~t[MODEL_FRAC:32].any()     # t < 1
            r_hinge = Mux(mask_at(2)[s] & below_one, Mux(pos2, -ONE, ONE), 0)

            # ---- 3: table index and fraction (clamped to the table), K - t
            hi = ~t[-1] & t[TOP_BIT:32].any()               # t >= 2^27: the table's last point
            lo = t[-1] & ~t[TOP_BIT:32].all()               # t < -2^27: its first point
            idx = Signal(range(TABLE_SEGMENTS), name=f"idx_{s}", reset_less=True)
            frac = Signal(SEG_SHIFT + 1, name=f"frac_{s}", reset_less=True)
            m.d.sync += [idx.eq(Mux(hi, TABLE_SEGMENTS - 1, Mux(lo, 0, Cat(t[SEG_SHIFT:TOP_BIT], ~t[TOP_BIT])))),
                         frac.eq(Mux(hi, 1 << SEG_SHIFT, Mux(lo, 0, t[:SEG_SHIFT])))]
            # logistic: max(0, -2^27 - t) beyond the table; hinge: max(0, 1 - t), its whole loss
            extra = Signal(32, name=f"extra_{s}", reset_less=True)
            m.d.sync += extra.eq(Mux(Mux(hinge, below_one, lo), Mux(hinge, ONE, TABLE_LO) - t, 0))
            pos3 = delay(m, pos2, 1, f"pos3_{s}")

            # ---- Chebyshev: 3 c = t clamped (h * c enters); 7 + 2^(23+R); 8 >> (24+R); 9 h
            cl = Signal(signed(34), name=f"c_{s}", reset_less=True)
            m.d.sync += cl.eq(Mux(t > lim_hi, lim_hi, Mux(t < -lim, -lim, t)))
            h = Signal(signed(32), name=f"h_{s}", reset_less=True)
            hp = Signal(signed(MUL_WIDTH + MUL_B_WIDTH + 2), name=f"hp_{s}", reset_less=True)
            hq = Signal(signed(MUL_WIDTH + MUL_B_WIDTH + 2), name=f"hq_{s}", reset_less=True)
            with m.If(cheb & valid[H_IN] & firsts[H_IN]):
                m.d.sync += h.eq(top)
            with m.Elif(step_out):
                m.d.sync += h.eq(sat32(coef + hq))
            r_cheb = Mux(mask_at(H_R - 1)[s], sat32(Mux(delay(m, pos2, H_R - 3, f"pos_h_{s}"), h, -h)), 0)

            # ---- 4: the ROM word; 4 / 5: the two products enter the row's multiplier. The sign s
            # rides in phi's: s * (PHI + rnd(dphi * f, 20)) = (s PHI 2^20 + c_s + dphi * (s f)) >> 20
            # with c_+ = 2^19 and c_- = 2^19 - 1 (-floor(x) = floor(2^20 - 1 - x) at 2^-20), so r is
            # one adder after the product, not a negation after phi.
            # A ROM per row, one read port each (yosys 0.70's memory_libmap crashed on one ROM with
            # 16 read ports, the 512-bit build's); 3 DP16KD a row at these widths.
            rom = m.submodules[f"rom_{s}"] = Memory(shape=layout, depth=TABLE_SEGMENTS, init=rom_init)
            port = rom.read_port()
            m.d.comb += port.addr.eq(idx)
            word = port.data
            sfrac4 = Signal(signed(SEG_SHIFT + 2), name=f"sfrac4_{s}", reset_less=True)
            m.d.sync += sfrac4.eq(Mux(pos3, frac, -frac))
            frac5 = delay(m, frac, 2, f"frac5_{s}")
            dloss5 = delay(m, word.dloss, 1, f"dloss5_{s}")
            r = Signal(signed(32), name=f"r_{s}", reset_less=True)
            mul = m.submodules[f"mul_rr_{s}"] = PipelinedMul(MUL_WIDTH, MUL_B_WIDTH)
            assert mul.latency == self._mul_latency and H_IN + mul.latency + 1 == H_H - 1
            m.d.comb += [mul.a.eq(Mux(phase_b, dloss5, Mux(phase_a, word.dphi, Mux(step_in, h, r)))),
                         mul.b.eq(Mux(phase_b, frac5, Mux(phase_a, sfrac4, Mux(step_in, cl, r))))]
            m.d.sync += [hp.eq(mul.p + h_half), hq.eq(hp >> shift)]
            assert 4 + mul.latency == p_a  # dphi * s f at the multiplier's output (dloss * f: one later)
            # s * PHI from the ROM word registered first (the ROM's output has no register of its
            # own: straight into a negation it was the core's second-slowest path)
            phi5 = delay(m, word.phi, 1, f"phi5_{s}")
            sphi = Signal(signed(len(word.phi) + 1), name=f"sphi6_{s}", reset_less=True)
            m.d.sync += sphi.eq(Mux(delay(m, pos3, 2, f"pos5_{s}"), phi5, -phi5))
            pos_pa = delay(m, pos3, p_a - 3, f"pos_pa_{s}")
            c_s = Mux(pos_pa, Const(1 << (SEG_SHIFT - 1), SEG_SHIFT), Const((1 << (SEG_SHIFT - 1)) - 1, SEG_SHIFT))
            r_logistic = Mux(mask_at(p_a)[s],
                             (Cat(c_s, delay(m, sphi, p_a - 6, f"sphi_{s}")).as_signed() + mul.p) >> SEG_SHIFT, 0)

            # ---- the output r (one register for every mode; the mode picks which stage fills it)
            m.d.sync += r.eq(Mux(nonlinear, Mux(cheb, r_cheb, Mux(hinge, r_hinge, r_logistic)), r_sq))
            r_out.append(r)

            # ---- losses: squared (r * r) >> 16 from r; logistic interp(LOSS) + extra; hinge extra
            loss_sq.append((mul.p >> LOSS_SHIFT, 0))
            half = Const(1 << (SEG_SHIFT - 1), SEG_SHIFT)
            lint = Signal(signed(len(word.loss) + 1), name=f"lint_{s}", reset_less=True)
            m.d.sync += lint.eq((Cat(half, delay(m, word.loss, p_a - 3, f"loss_t_{s}")).as_signed() + mul.p)
                                >> SEG_SHIFT)
            row = Signal(signed(34), name=f"row_{s}", reset_less=True)
            m.d.sync += row.eq(Mux(mask_at(p_a + 2)[s],
                                   Mux(hinge, 0, lint) + delay(m, extra, p_a - 1, f"extra_d_{s}"), 0))
            loss_nl.append((row, 0))

        lat = self.r_latency
        last_r = cheb & valid[H_R - 1] & lasts[H_R - 1]
        m.d.sync += [self.r_valid.eq(Mux(cheb, last_r,
                                         Mux(nonlinear, Mux(hinge, valid[lat[Loss.HINGE] - 1], valid[p_a]), valid[1]))),
                     self.r_mask.eq(Mux(cheb, mask_at(H_R - 1),
                                        Mux(nonlinear, Mux(hinge, mask_at(lat[Loss.HINGE] - 1), mask_at(p_a)), mask1)))]
        m.d.comb += self.r.eq(Cat(*r_out))
        sq_sum, _, sq_levels = pipelined_sum(m, loss_sq, "sqsum")
        nl_sum, _, nl_levels = pipelined_sum(m, loss_nl, "nlsum")
        assert sq_levels == nl_levels == self._sum_levels
        sq_valid = delay(m, self.r_valid, self.squared_lag, "sq_valid", reset_less=False)
        nl_valid = delay(m, valid[p_a + 2] & (firsts[p_a + 2] | ~cheb), 1 + nl_levels, "nl_valid", reset_less=False)
        m.d.comb += [self.loss_valid.eq(Mux(nonlinear, nl_valid, sq_valid)),
                     self.loss.eq(Mux(nonlinear, nl_sum << ROW_LOSS_SHIFT, sq_sum))]
        return m
