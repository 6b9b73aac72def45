"""ECP5 primitives at speed, each paired with a plain-Amaranth model of the same behaviour.

nextpnr times an inferred multiply as combinational logic between fabric flip-flops (about 129
MHz for one 18 x 18, far less for wider ones: docs/board.md). ``Mul18`` instantiates MULT18X18D
with its input and output registers; ``PipelinedMul`` builds any signed product from them, with a
registered adder tree. Which one is built depends on the platform handed to ``elaborate``:

* an ECP5 platform (``platform.family == "ecp5"``, as amaranth-boards' ULX3S, or
  :data:`ECP5_SYNTH` for out-of-context synthesis): the primitive;
* anything else (``None`` in Amaranth's simulator and in the Verilog export for Verilator): the
  model, identical bit for bit and cycle for cycle (``tests/test_ecp5.py`` checks both against
  ``a * b``; the primitive's netlist is checked by the ECP5 builds).

Neither is reset by a ``ResetInserter`` around it: the primitive's registers have no reset wired
(``RST0 = 0``, ``GSR`` disabled), so the model's registers are ``reset_less`` too. Users keep their
own ``valid`` bits, which are reset.
"""

# No "from __future__ import annotations": Component reads real annotations.

from amaranth import Cat, ClockSignal, Const, Instance, Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["ECP5_SYNTH", "Mul18", "PipelinedMul", "is_ecp5", "pipelined_sum"]


class _ECP5Synth:
    """Stands for an ECP5 platform when converting a block alone (``verilog.convert(..., platform=)``)."""

    family = "ecp5"


#: Pass as ``platform`` to build the primitives outside a board platform (out-of-context timing).
ECP5_SYNTH = _ECP5Synth()


def is_ecp5(platform) -> bool:
    return getattr(platform, "family", None) == "ecp5"


class Mul18(wiring.Component):
    """``p = a * b``, signed 18 x 18 -> 36 bits, two cycles: ``p`` at ``t + 2`` is ``a * b`` at ``t``.

    MULT18X18D with ``REG_INPUTA``, ``REG_INPUTB`` and ``REG_OUTPUT`` clocked (nextpnr times it as
    registered only when both inputs are), no pipeline register, no clock enable.
    """

    LATENCY = 2

    a: In(signed(18))
    b: In(signed(18))
    p: Out(signed(36))

    def elaborate(self, platform):
        m = Module()
        if is_ecp5(platform):
            regs = {}
            for port in ("INPUTA", "INPUTB", "OUTPUT"):
                regs.update({f"p_REG_{port}_CLK": "CLK0", f"p_REG_{port}_CE": "CE0", f"p_REG_{port}_RST": "RST0"})
            ports = {f"i_A{i}": self.a[i] for i in range(18)}
            ports.update({f"i_B{i}": self.b[i] for i in range(18)})
            ports.update({f"i_C{i}": 0 for i in range(18)})
            ports.update({f"o_P{i}": self.p[i] for i in range(36)})
            m.submodules.mult = Instance(
                "MULT18X18D", **regs,
                p_REG_INPUTC_CLK="NONE", p_REG_PIPELINE_CLK="NONE",
                p_CLK0_DIV="ENABLED", p_CLK1_DIV="ENABLED", p_CLK2_DIV="ENABLED", p_CLK3_DIV="ENABLED",
                p_GSR="DISABLED", p_RESETMODE="SYNC", p_MULT_BYPASS="DISABLED",
                p_CAS_MATCH_REG="FALSE", p_SOURCEB_MODE="B_SHIFT",
                i_CLK0=ClockSignal(), i_CLK1=0, i_CLK2=0, i_CLK3=0,
                i_CE0=1, i_CE1=0, i_CE2=0, i_CE3=0, i_RST0=0, i_RST1=0, i_RST2=0, i_RST3=0,
                i_SIGNEDA=1, i_SIGNEDB=1, i_SOURCEA=0, i_SOURCEB=0, **ports)
        else:
            a_r = Signal(signed(18), reset_less=True)
            b_r = Signal(signed(18), reset_less=True)
            p_r = Signal(signed(36), reset_less=True)
            m.d.sync += [a_r.eq(self.a), b_r.eq(self.b), p_r.eq(a_r * b_r)]
            m.d.comb += self.p.eq(p_r)
        return m


def _limbs(value, width: int):
    """Split a signed value into 18-bit signed multiplier operands: unsigned 17-bit limbs from the
    bottom (zero-extended) and a signed top limb. Returns ``[(operand, shift)]``."""
    out, lo = [], 0
    while width - lo > 18:
        out.append((value[lo:lo + 17].as_unsigned(), lo))
        lo += 17
    out.append((value[lo:width].as_signed(), lo))
    return out


def pipelined_sum(m: Module, terms, name: str):
    """Sum ``[(value, shift)]`` (value signed, weighted by ``2^shift``) with one registered adder per
    level; the bits below a term's shift pass around the adder. Returns ``(sum, shift, levels)``."""
    level = 0
    terms = list(terms)
    while len(terms) > 1:
        nxt = []
        for i in range(0, len(terms), 2):
            if i + 1 == len(terms):
                (x, sx), = terms[i:]
                if isinstance(x, Const):  # a constant term stays a constant
                    nxt.append((x, sx))
                    continue
                r = Signal(signed(len(x)), name=f"{name}_l{level}_{i}", reset_less=True)
                m.d.sync += r.eq(x)
                nxt.append((r, sx))
                continue
            (x, sx), (y, sy) = sorted(terms[i:i + 2], key=lambda t: t[1])
            d = sy - sx
            hi = x.as_signed() >> d if d else x.as_signed()
            width = max(len(x) - d, len(y)) + 1 + d
            r = Signal(signed(width), name=f"{name}_l{level}_{i}", reset_less=True)
            if d:
                m.d.sync += r.eq(Cat(x[:d], hi + y.as_signed()).as_signed())
            else:
                m.d.sync += r.eq(x.as_signed() + y.as_signed())
            nxt.append((r, sx))
        terms = nxt
        level += 1
    return terms[0][0], terms[0][1], level


class PipelinedMul(wiring.Component):
    """Signed ``p = a * b + constant`` of any widths from :class:`Mul18` partial products and a
    registered adder tree: ``p`` at ``t + latency`` is ``a * b + constant`` at ``t``.

    Parameters
    ----------
    a_width, b_width : int
        Signed operand widths; ``p`` has ``a_width + b_width + 1`` bits.
    constant : int
        Added in the tree (a rounding constant costs no adder stage of its own).

    Attributes
    ----------
    latency : int
        ``2 + ceil(log2(partial products))``.
    """

    def __init__(self, a_width: int, b_width: int, constant: int = 0):
        self.a_width, self.b_width, self.constant = a_width, b_width, constant
        self.n_products = (len(range(0, max(a_width - 18, 0), 17)) + 1) * (len(range(0, max(b_width - 18, 0), 17)) + 1)
        self.latency = Mul18.LATENCY + (self.n_products + (constant != 0) - 1).bit_length()
        super().__init__({"a": In(signed(a_width)), "b": In(signed(b_width)),
                          "p": Out(signed(a_width + b_width + 1))})

    def elaborate(self, platform):
        m = Module()
        terms = []
        for i, (x, sx) in enumerate(_limbs(self.a, self.a_width)):
            for j, (y, sy) in enumerate(_limbs(self.b, self.b_width)):
                mul = m.submodules[f"mul_{i}_{j}"] = Mul18()
                m.d.comb += [mul.a.eq(x), mul.b.eq(y)]
                terms.append((mul.p, sx + sy))
        assert len(terms) == self.n_products
        if self.constant:
            terms.append((Const(self.constant, signed(self.constant.bit_length() + 1)), 0))
        total, shift, levels = pipelined_sum(m, terms, "acc")
        assert shift == 0 and Mul18.LATENCY + levels == self.latency
        m.d.comb += self.p.eq(total)
        return m
