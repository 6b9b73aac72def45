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

from types import SimpleNamespace

from amaranth import Cat, ClockSignal, Const, Instance, Module, Shape, Signal, Value, signed
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

__all__ = ["ECP5_SYNTH", "ECP5_SYNTH_NO_GLOBALS", "FABRIC_GLOBALS", "Mul18", "PipelinedMul", "SimpleDualPortRAM",
           "global_buffer", "is_ecp5", "pipelined_sum", "register_copies", "register_copies_of", "simple_dual_port_ram"]


class _ECP5Synth:
    """Stands for an ECP5 platform when converting a block alone (``verilog.convert(..., platform=)``)."""

    family = "ecp5"
    device = "LFE5U-85F"    # (the out-of-context runs place on the 85F: lowbit_hw.board.ooc)

    def __init__(self, *, global_buffers: bool = True):
        self.global_buffers = global_buffers  # False: global_buffer() builds no DCCA (an alias, as off ECP5)


#: Pass as ``platform`` to build the primitives outside a board platform (out-of-context timing).
ECP5_SYNTH = _ECP5Synth()
#: The same without global buffers: out of context, nextpnr 0.11 failed to route a DCCA's global to
#: the gradient unit's slices ("Failed to route arc ... G_CLKO_TDCC3 to ... LSR1_SLICE"), which the
#: board routes; ``board.ooc --no-globals`` times the unit with those nets in general routing.
ECP5_SYNTH_NO_GLOBALS = _ECP5Synth(global_buffers=False)


def is_ecp5(platform) -> bool:
    return getattr(platform, "family", None) == "ecp5"


def register_copies(m: Module, platform, value, copies: int, name: str) -> list:
    """``copies`` flip-flops, each loading the 1-bit ``value`` every cycle (no reset, no enable):
    one control bit's fanout split over several drivers, for the control nets that congest the
    board's router (a plane flag or a phase select reaching ~2k LUT inputs; docs/board.md).

    yosys merges identical flip-flops (``opt_merge``; a ``keep`` on their wires does not stop
    it), so on an ECP5 platform each copy is a TRELLIS_FF primitive, which it leaves alone;
    elsewhere they are plain registers, identical cycle for cycle. Not being reset, a copy holds
    the value of the cycle before a reset for one cycle after it: a user reads copies only where
    that cannot matter (say so where it does)."""
    if not 1 <= copies <= 64 or len(Value.cast(value)) != 1:
        raise ValueError(f"register_copies takes a 1-bit value and 1..64 copies, got {copies!r}")
    out = [Signal(name=f"{name}_c{i}", reset_less=True) for i in range(copies)]
    if is_ecp5(platform):
        for i, q in enumerate(out):
            m.submodules[f"{name}_ff{i}"] = Instance(
                "TRELLIS_FF", p_GSR="DISABLED", p_CEMUX="1", p_CLKMUX="CLK", p_LSRMUX="LSR", p_REGSET="RESET",
                p_SRMODE="LSR_OVER_CE", i_CLK=ClockSignal(), i_LSR=Const(0), i_DI=value, o_Q=q)
    else:
        m.d.sync += [q.eq(value) for q in out]
    return out


def register_copies_of(m: Module, platform, value, copies: int, name: str, shape=None) -> list:
    """``copies`` registers of ``shape`` (default: ``value``'s), each loading ``value`` every
    cycle (no reset, no enable), as :func:`register_copies` does for one bit: a word broadcast
    to a whole datapath (a group's operands reaching all 32 features' trees) split over drivers
    that each serve a part of it, so that each can be placed beside its part. On ECP5 every bit of
    every copy is a TRELLIS_FF (yosys would merge plain copies); elsewhere plain registers,
    identical cycle for cycle."""
    flat = Value.cast(value)
    shape = flat.shape() if shape is None else shape
    out = [Signal(shape, name=f"{name}_c{i}", reset_less=True) for i in range(copies)]
    if not 1 <= copies <= 64 or len(flat) == 0 or len(Value.cast(out[0])) != len(flat):
        raise ValueError(f"register_copies_of takes a non-empty value of its shape's width and 1..64 copies, "
                         f"got {len(flat)} bits and {copies!r} copies")
    if is_ecp5(platform):
        for i, q in enumerate(out):
            qv = Value.cast(q)
            for k in range(len(flat)):
                m.submodules[f"{name}_ff{i}_{k}"] = Instance(
                    "TRELLIS_FF", p_GSR="DISABLED", p_CEMUX="1", p_CLKMUX="CLK", p_LSRMUX="LSR", p_REGSET="RESET",
                    p_SRMODE="LSR_OVER_CE", i_CLK=ClockSignal(), i_LSR=Const(0), i_DI=flat[k], o_Q=qv[k])
    else:
        m.d.sync += [Value.cast(q).eq(flat) for q in out]
    return out


#: Global networks nextpnr-ecp5 lets drive fabric inputs (LUT, LSR, CE) as well as clocks: 8 of
#: the 16, one of which the engine clock takes. A design asks for at most this many
#: :func:`global_buffer` nets (the board's are counted in ``tests/test_ecp5.py``).
FABRIC_GLOBALS = 7


#: The board's global buffers, each locked to a DCC site of the LFE5U-85F (nextpnr's BEL names).
#: Left to the placer, a DCCA went wherever was free, and every seed that failed to route failed at
#: the same one, X3/Y46/LDCC1 (its fabric input unreachable on that placement: one seed in three);
#: so none goes there, nor to X67/Y0/TDCC0, which nextpnr gives the engine clock's own DCC before
#: placement (a lock there crashed the static placer). docs/board.md, eleventh and twelfth passes.
DCC_SITES_85F = {"reset_global": "X67/Y0/TDCC2", "clear_now": "X67/Y0/TDCC1", "g_zero": "X67/Y0/TDCC3",
                 "go": "X67/Y0/TDCC5", "loader_shift": "X3/Y46/LDCC0", "snap_load": "X3/Y46/LDCC2",
                 "snap_move": "X3/Y46/LDCC3"}


def global_buffer(m: Module, platform, value, name: str) -> Signal:
    """The 1-bit ``value`` on one of the device's global networks: on an ECP5 platform through a
    DCCA (the clock buffer nextpnr routes onto a global and from there to any slice's LSR, CE or
    LUT inputs), elsewhere a plain alias. For a control bit with thousands of sinks (a clear or
    an enable over a whole datapath), which through general routing took 15-22 ns at the board's
    placement (docs/board.md, eighth pass), where the global adds nothing nextpnr times beyond
    the route into the DCCA. Combinational, same cycle, on every platform.

    nextpnr-ecp5 has :data:`FABRIC_GLOBALS` such networks besides the clock's; each call takes
    one, so keep them for the nets that need them."""
    if len(Value.cast(value)) != 1:
        raise ValueError(f"global_buffer takes a 1-bit value, got {len(Value.cast(value))} bits")
    out = Signal(name=name)
    if is_ecp5(platform) and getattr(platform, "global_buffers", True):
        on_85f = getattr(platform, "device", None) == "LFE5U-85F"
        site = {"a_BEL": DCC_SITES_85F[name]} if on_85f and name in DCC_SITES_85F else {}
        m.submodules[f"{name}_dcc"] = Instance("DCCA", i_CLKI=value, i_CE=Const(1), o_CLKO=out, **site)
    else:
        m.d.comb += out.eq(value)
    return out


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
            ports.update({f"o_P{i}": self.p[i] for i in range(36)})
            # C and the unused clocks, enables and resets are left unconnected: C feeds only the
            # ALU (unused here), the registers use CLK0/CE0/RST0. Tied to 0 they were ~1.9k sinks
            # of one GND net, among the most congested nets of the board build (docs/board.md).
            m.submodules.mult = Instance(
                "MULT18X18D", **regs,
                p_REG_INPUTC_CLK="NONE", p_REG_PIPELINE_CLK="NONE",
                p_CLK0_DIV="ENABLED", p_CLK1_DIV="ENABLED", p_CLK2_DIV="ENABLED", p_CLK3_DIV="ENABLED",
                p_GSR="DISABLED", p_RESETMODE="SYNC", p_MULT_BYPASS="DISABLED",
                p_CAS_MATCH_REG="FALSE", p_SOURCEB_MODE="B_SHIFT",
                i_CLK0=ClockSignal(), i_CE0=1, i_RST0=0,
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


class SimpleDualPortRAM(wiring.Component):
    """``depth`` words of ``width`` bits in block RAM: one write port, one read port, one cycle:
    ``r_data`` at ``t + 1`` is the word at ``r_addr`` at ``t`` (as written before cycle ``t``), or
    with ``out_reg``, two: ``r_data`` at ``t + 2``, through the primitive's output register.

    On ECP5, ``ceil(width / 36)`` DP16KD side by side in their 512 x 36 pseudo-dual-port mode
    (port A writes 36 bits, its ADA0-3 the byte enables; port B reads 36 bits; the output
    register only with ``out_reg``).
    Yosys maps a shallow memory to LUT RAM, whose wide shared addresses congest the routing (docs/board.md),
    and a ``ram_style = "block"`` memory with a separate write port to DP16KD *plus* a soft bypass
    of every bit (yosys makes the undefined same-row read-during-write defined), which costs a
    flip-flop and a mux per bit. The primitive has neither: **a read of the row being written in the
    same cycle is undefined**, and the model (a non-transparent ``Memory``) returns the old word, so
    users never do it (each user says why it cannot happen).

    Parameters
    ----------
    shape : shape-castable
        Of a word (e.g. an ``ArrayLayout``: ``w_data`` and ``r_data`` are then views).
    depth : int
        1..512 (one DP16KD deep).
    out_reg : bool
        Read through the output register (two cycles).
    """

    MAX_DEPTH = 512
    SLICE = 36

    def __init__(self, *, shape, depth: int, out_reg: bool = False):
        self.width = Shape.cast(shape).width
        try:
            _check_ram_depth(depth)
            if not isinstance(out_reg, bool):
                raise ValueError(f"out_reg must be True or False, got {out_reg!r}")
        except ValueError:
            self._MustUse__silence = True
            raise
        self.shape, self.depth, self.out_reg = shape, depth, out_reg
        super().__init__({"w_en": In(1), "w_addr": In(range(depth)), "w_data": In(shape),
                          "r_addr": In(range(depth)), "r_data": Out(shape)})

    def elaborate(self, platform):
        m = Module()
        ports = simple_dual_port_ram(m, platform, shape=self.shape, depth=self.depth, name="ram", out_reg=self.out_reg)
        m.d.comb += [ports.w_en.eq(self.w_en), ports.w_addr.eq(self.w_addr), ports.w_data.eq(self.w_data),
                     ports.r_addr.eq(self.r_addr), self.r_data.eq(ports.r_data)]
        return m


def _check_ram_depth(depth) -> None:
    if not isinstance(depth, int) or not 1 <= depth <= SimpleDualPortRAM.MAX_DEPTH:
        raise ValueError(f"depth must be an int in 1..{SimpleDualPortRAM.MAX_DEPTH}, got {depth!r}")


def simple_dual_port_ram(m: Module, platform, *, shape, depth: int, name: str, block: bool = True,
                         out_reg: bool = False) -> SimpleNamespace:
    """:class:`SimpleDualPortRAM`'s RAM built straight into ``m`` (no module of its own): returns
    its ports (``w_en``, ``w_addr``, ``w_data``, ``r_addr``, ``r_data``) as signals of ``m``.
    ``block=False`` builds the plain Amaranth memory on ECP5 too, which yosys maps to LUT RAM
    (TRELLIS_DPR16X4) at the shallow depths used here. ``out_reg=True`` reads in two cycles
    (``r_data`` at ``t + 2`` is the word at ``r_addr`` at ``t``): the DP16KD's output register
    (``REGMODE`` ``OUTREG``: about 1 ns clock-to-out where the array's own output is 5.8 ns,
    ../shared/FACTS.md), and a register after the read port everywhere else.

    Users inside a big design take this: with a module per RAM, yosys 0.70's ABC9 failed an
    assertion reintegrating one of them in the board build ("count_id(wire->name) == 0" in
    ABC_OPS_REINTEGRATE, a module that is only wires and 43 DP16KD), though not alone."""
    _check_ram_depth(depth)
    width = Shape.cast(shape).width
    ports = SimpleNamespace(w_en=Signal(name=f"{name}_w_en"), w_addr=Signal(range(depth), name=f"{name}_w_addr"),
                            w_data=Signal(shape, name=f"{name}_w_data"), r_addr=Signal(range(depth), name=f"{name}_r_addr"),
                            r_data=Signal(shape, name=f"{name}_r_data"))
    if not is_ecp5(platform) or not block:
        mem = m.submodules[name] = Memory(shape=shape, depth=depth, init=[])
        wp, rp = mem.write_port(), mem.read_port()
        m.d.comb += [wp.en.eq(ports.w_en), wp.addr.eq(ports.w_addr), wp.data.eq(ports.w_data),
                     rp.addr.eq(ports.r_addr)]
        if out_reg:  # (data: not reset, as the DP16KD's output register is not)
            r_reg = Signal(shape, name=f"{name}_r_reg", reset_less=True)
            m.d.sync += r_reg.eq(rp.data)
            m.d.comb += ports.r_data.eq(r_reg)
        else:
            m.d.comb += ports.r_data.eq(rp.data)
        return ports
    w_data, r_data = Value.cast(ports.w_data), Value.cast(ports.r_data)
    regmode = "OUTREG" if out_reg else "NOREG"
    slice_bits = SimpleDualPortRAM.SLICE
    abits = (SimpleDualPortRAM.MAX_DEPTH - 1).bit_length()
    w_addr = Cat(ports.w_addr, Const(0, abits - len(ports.w_addr)))
    r_addr = Cat(ports.r_addr, Const(0, abits - len(ports.r_addr)))
    for i, lo in enumerate(range(0, width, slice_bits)):
        n = min(slice_bits, width - lo)
        di = Cat(w_data[lo:lo + n], Const(0, slice_bits - n))
        do = Signal(slice_bits, name=f"{name}_do_{i}")
        m.d.comb += r_data[lo:lo + n].eq(do[:n])
        pins = {f"i_ADA{k}": ports.w_en for k in range(4)}          # byte enables
        pins["i_ADA4"] = 0
        pins.update({f"i_ADA{5 + k}": w_addr[k] for k in range(abits)})
        pins.update({f"i_ADB{k}": 0 for k in range(5)})
        pins.update({f"i_ADB{5 + k}": r_addr[k] for k in range(abits)})
        pins.update({f"i_DIA{k}": di[k] for k in range(18)})
        pins.update({f"i_DIB{k}": di[18 + k] for k in range(18)})
        pins.update({f"o_DOA{k}": do[k] for k in range(18)})
        pins.update({f"o_DOB{k}": do[18 + k] for k in range(18)})
        m.submodules[f"{name}_bram_{i}"] = Instance(
            "DP16KD",
            # (36-bit pseudo-dual-port: the read word leaves on DOA and DOB, so both halves get
            # the output register, each with its clock enable on)
            p_DATA_WIDTH_A=36, p_DATA_WIDTH_B=36, p_REGMODE_A=regmode, p_REGMODE_B=regmode,
            p_RESETMODE="SYNC", p_ASYNC_RESET_RELEASE="SYNC", p_CSDECODE_A="0b000", p_CSDECODE_B="0b000",
            p_CLKAMUX="CLKA", p_CLKBMUX="CLKB", p_GSR="AUTO",
            i_CLKA=ClockSignal(), i_WEA=1, i_CEA=1, i_OCEA=int(out_reg), i_RSTA=0, i_CSA0=0, i_CSA1=0, i_CSA2=0,
            i_CLKB=ClockSignal(), i_WEB=0, i_CEB=1, i_OCEB=1, i_RSTB=0, i_CSB0=0, i_CSB1=0, i_CSB2=0,
            **pins)
    return ports
