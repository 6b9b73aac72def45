"""lowbit_hw.ecp5: the primitives' simulation models behave as stated (``a * b`` with its latency, RAM reads)."""

from __future__ import annotations

import random

import pytest
from amaranth.back import rtlil
from amaranth.sim import Simulator

from amaranth import Elaboratable, Module, Signal, signed
from amaranth.lib import data

from lowbit_hw.ecp5 import (DCC_SITES_85F, ECP5_SYNTH, ECP5_SYNTH_NO_GLOBALS, FABRIC_GLOBALS, Mul18, PipelinedMul,
                             SimpleDualPortRAM, global_buffer, register_copies, register_copies_of)


@pytest.mark.parametrize("wa,wb,const", [(18, 18, 0), (18, 32, 0), (32, 33, 1 << 31), (17, 46, 0), (18, 56, 0),
                                         (25, 32, 128), (6, 48, 0)])
def test_pipelined_mul_model(wa, wb, const):
    dut = PipelinedMul(wa, wb, const)
    rng = random.Random(wa * 100 + wb)
    edge = lambda w: [-(1 << (w - 1)), (1 << (w - 1)) - 1, 0, -1, 1]
    pairs = [(a, b) for a in edge(wa) for b in edge(wb)]
    pairs += [(rng.randrange(-(1 << (wa - 1)), 1 << (wa - 1)), rng.randrange(-(1 << (wb - 1)), 1 << (wb - 1)))
              for _ in range(60)]
    seen = []

    async def bench(ctx):
        for i in range(len(pairs) + dut.latency):
            if i < len(pairs):
                ctx.set(dut.a, pairs[i][0])
                ctx.set(dut.b, pairs[i][1])
            await ctx.tick()
            if i + 1 >= dut.latency:
                seen.append(ctx.get(dut.p))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    # p after tick i+1 holds the product set before tick i+2-latency
    got = seen[:len(pairs)]
    assert got == [a * b + const for a, b in pairs]


def test_primitive_netlist_elaborates():
    """With an ECP5 platform the multipliers are MULT18X18D instances (synthesised by the ECP5 builds)."""
    text = rtlil.convert(PipelinedMul(32, 32), platform=ECP5_SYNTH)
    assert text.count("MULT18X18D") == 4
    assert Mul18.LATENCY == 2


@pytest.mark.parametrize("out_reg", [False, True])
def test_simple_dual_port_ram_model_reads_a_cycle_later_what_was_written_before(out_reg):
    """The model of SimpleDualPortRAM: r_data at t + 1 (t + 2 through the output register) is the
    word at r_addr at t, as written in cycles before t (rows are never read in the cycle they are
    written: undefined in the primitive)."""
    dut = SimpleDualPortRAM(shape=data.ArrayLayout(signed(20), 3), depth=5, out_reg=out_reg)
    rng = random.Random(7)
    mirror = [[0, 0, 0] for _ in range(5)]
    bad = []
    pending = []   # words read, oldest first, due out_reg cycles after the next

    async def bench(ctx):
        for _ in range(200):
            w_en, w_addr, r_addr = rng.randrange(2), rng.randrange(5), rng.randrange(5)
            if w_en and w_addr == r_addr:
                r_addr = (r_addr + 1) % 5
            word = [rng.randrange(-(1 << 19), 1 << 19) for _ in range(3)]
            ctx.set(dut.w_en, w_en)
            ctx.set(dut.w_addr, w_addr)
            ctx.set(dut.w_data, word)
            ctx.set(dut.r_addr, r_addr)
            pending.append(list(mirror[r_addr]))
            await ctx.tick()
            if w_en:
                mirror[w_addr] = word
            got = [ctx.get(dut.r_data[i]) for i in range(3)]
            if len(pending) > int(out_reg):
                expect = pending.pop(0)
                if got != expect:
                    bad.append((got, expect))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert not bad


@pytest.mark.parametrize("width,blocks", [(36, 1), (37, 2), (2048, 57)])
def test_simple_dual_port_ram_is_dp16kd_slices_on_ecp5(width, blocks):
    """On ECP5: ceil(width / 36) DP16KD in 36-bit mode, no soft logic around them."""
    text = rtlil.convert(SimpleDualPortRAM(shape=width, depth=8), platform=ECP5_SYNTH)
    assert text.count("cell \\DP16KD ") == blocks
    assert text.count("DATA_WIDTH_A") == blocks
    assert text.count('"OUTREG"') == 0
    # the output register is the primitive's own (both halves of the 36-bit word), no flip-flop beside it
    text = rtlil.convert(SimpleDualPortRAM(shape=width, depth=8, out_reg=True), platform=ECP5_SYNTH)
    assert text.count("cell \\DP16KD ") == blocks and text.count('"OUTREG"') == 2 * blocks
    assert "$dff" not in text
    with pytest.raises(ValueError, match="depth"):
        SimpleDualPortRAM(shape=width, depth=513)
    with pytest.raises(ValueError, match="out_reg"):
        SimpleDualPortRAM(shape=width, depth=8, out_reg=1)


class _Copies(Elaboratable):
    def __init__(self, copies):
        self.a, self.copies, self.out = Signal(), copies, None

    def elaborate(self, platform):
        m = Module()
        self.out = register_copies(m, platform, self.a, self.copies, "x")
        return m


def test_register_copies_load_the_value_every_cycle_in_the_model():
    dut = _Copies(3)  # its outputs exist once the simulator has elaborated it
    seen = []

    async def bench(ctx):
        for v in [1, 0, 1, 1, 0]:
            ctx.set(dut.a, v)
            await ctx.tick()
            seen.append([ctx.get(q) for q in dut.out])

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert seen == [[v] * 3 for v in [1, 0, 1, 1, 0]]  # each copy is `a` one cycle later


def test_register_copies_are_separate_flip_flop_primitives_on_ecp5():
    """yosys' opt_merge folds identical registers into one (a wire's keep does not stop it), so the
    ECP5 build instantiates each copy as a TRELLIS_FF, which it leaves alone."""
    text = rtlil.convert(_Copies(4), platform=ECP5_SYNTH, ports=[])
    assert text.count("cell \\TRELLIS_FF ") == 4


@pytest.mark.parametrize("copies,width", [(0, 1), (65, 1), (2, 2)])
def test_register_copies_refuse_what_they_do_not_do(copies, width):
    m = Module()
    m._MustUse__silence = True  # refused before it could be used
    with pytest.raises(ValueError, match="1-bit value and 1..64 copies"):
        register_copies(m, None, Signal(width), copies, "x")


class _WordCopies(Elaboratable):
    LAYOUT = data.StructLayout({"d": data.ArrayLayout(signed(5), 2), "valid": 2})

    def __init__(self, copies):
        self.a, self.copies, self.out = Signal(12), copies, None

    def elaborate(self, platform):
        m = Module()
        self.out = register_copies_of(m, platform, self.a, self.copies, "w", self.LAYOUT)
        return m


def test_register_copies_of_a_word_load_it_every_cycle_in_its_layout():
    dut = _WordCopies(3)
    words = [0, 0xFFF, 0x5A5, 0x0F1, 0x800]
    seen = []

    async def bench(ctx):
        for v in words:
            ctx.set(dut.a, v)
            await ctx.tick()
            seen.append([(ctx.get(q.d[0]), ctx.get(q.d[1]), ctx.get(q.valid)) for q in dut.out])

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    signed5 = lambda v: v - 32 if v & 16 else v
    assert seen == [[(signed5(v & 31), signed5((v >> 5) & 31), v >> 10)] * 3 for v in words]


def test_register_copies_of_a_word_are_a_flip_flop_primitive_a_bit_on_ecp5():
    text = rtlil.convert(_WordCopies(4), platform=ECP5_SYNTH, ports=[])
    assert text.count("cell \\TRELLIS_FF ") == 4 * 12


@pytest.mark.parametrize("copies,width", [(0, 12), (65, 12), (2, 11)])
def test_register_copies_of_refuse_what_they_do_not_do(copies, width):
    m = Module()
    m._MustUse__silence = True  # refused before it could be used
    with pytest.raises(ValueError, match="1..64 copies"):
        register_copies_of(m, None, Signal(width), copies, "x", _WordCopies.LAYOUT)


class _Global(Elaboratable):
    def __init__(self, name="g"):
        self.a, self.out, self.name = Signal(), None, name

    def elaborate(self, platform):
        m = Module()
        self.out = global_buffer(m, platform, self.a, self.name)
        return m


@pytest.fixture(scope="module")
def board_core_rtlil():
    """The board's woven core (small, as the board builds it) in RTLIL for the 85F: converted once."""
    from lowbit_hw.board.top import board_woven_core

    return rtlil.convert(board_woven_core(line_bits=64, lanes=32, max_features=256), platform=ECP5_SYNTH)


def test_global_buffer_is_the_same_bit_at_once_in_the_model():
    dut = _Global()
    seen = []

    async def bench(ctx):
        for v in [1, 0, 0, 1]:
            ctx.set(dut.a, v)
            seen.append(ctx.get(dut.out))
            await ctx.delay(1e-8)

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()
    assert seen == [1, 0, 0, 1]


def test_global_buffer_is_a_dcca_on_ecp5_and_takes_one_bit():
    assert rtlil.convert(_Global(), platform=ECP5_SYNTH, ports=[]).count("cell \\DCCA ") == 1
    # the out-of-context stand-in without globals (board.ooc --no-globals): a plain alias
    assert rtlil.convert(_Global(), platform=ECP5_SYNTH_NO_GLOBALS, ports=[]).count("cell \\DCCA ") == 0
    m = Module()
    m._MustUse__silence = True
    with pytest.raises(ValueError, match="1-bit"):
        global_buffer(m, None, Signal(2), "g")


def test_the_board_asks_for_no_more_global_networks_than_nextpnr_gives_the_fabric(board_core_rtlil):
    """nextpnr-ecp5 routes at most 8 globals to fabric inputs, one of them the engine clock's:
    the board's core and its reset (ULX3SBoardTop) must not ask for more than FABRIC_GLOBALS."""
    in_core = board_core_rtlil.count("cell \\DCCA ")
    assert 1 <= in_core and in_core + 1 <= FABRIC_GLOBALS   # + 1: the board's reset


def test_the_boards_global_buffers_are_locked_to_sites_that_route(board_core_rtlil):
    """On the 85F each of the board's DCCAs is locked to its own DCC site (DCC_SITES_85F), never
    to X3/Y46/LDCC1, whose input failed to route on one seed in three, nor to X67/Y0/TDCC0, the
    engine clock's; a global of another name, or another device, is left to the placer."""
    import re

    text = board_core_rtlil
    sites = re.findall(r'attribute \\BEL "([^"]+)"\n\s*cell \\DCCA ', text)
    assert len(sites) == text.count("cell \\DCCA ") == 6     # every one of the core's (the reset's is the top's)
    all_sites = list(DCC_SITES_85F.values())
    assert set(sites) < set(all_sites) and len(set(all_sites)) == len(all_sites) <= FABRIC_GLOBALS
    assert not {"X3/Y46/LDCC1", "X67/Y0/TDCC0"} & set(all_sites)
    assert 'attribute \\BEL' not in rtlil.convert(_Global(), platform=ECP5_SYNTH, ports=[])   # "g": not the board's

    class _Other:
        family, device = "ecp5", "LFE5U-25F"

    named = _Global("go")   # one of the board's names: locked on the 85F only
    assert f'attribute \\BEL "{DCC_SITES_85F["go"]}"' in rtlil.convert(named, platform=ECP5_SYNTH, ports=[])
    assert 'attribute \\BEL' not in rtlil.convert(_Global("go"), platform=_Other(), ports=[])
