"""``python -m lowbit_hw.board.ooc``: the lone registered adder it can time instead of the core
(the device's ceiling for one of the core's single-cycle sums), and its fmax parsing."""

import pytest
from amaranth.sim import Simulator

from lowbit_hw.board import ooc


def test_the_adder_sums_modulo_its_width_two_cycles_after_its_operands():
    dut = ooc.RegisteredAdder(8)
    seen = []

    async def bench(ctx):
        for a, b in [(3, 4), (200, 100), (255, 1), (0, 0)]:
            ctx.set(dut.a, a)
            ctx.set(dut.b, b)
            await ctx.tick()
            seen.append(ctx.get(dut.o))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    # registered operands, then a registered sum: each sum is out after the second tick that
    # follows its operands (seen[i] is read after tick i + 1)
    assert seen[1:4] == [7, (200 + 100) % 256, 0]


@pytest.mark.parametrize("width", [0, -1, 2.0, True])
def test_the_adder_refuses_a_width_that_is_not_a_positive_int(width):
    with pytest.raises(ValueError, match="width must be a positive int"):
        ooc.RegisteredAdder(width)


def test_fmax_is_the_last_figure_of_the_log(tmp_path):
    log = tmp_path / "pnr.log"
    log.write_text("Info: Max frequency for clock 'clk': 150.00 MHz (PASS at 100.00 MHz)\n"
                   "Info: Max frequency for clock 'clk': 123.45 MHz (PASS at 100.00 MHz)\n")
    assert ooc.fmax_of(log) == 123.45
    log.write_text("no timing here\n")
    assert ooc.fmax_of(log) is None


def test_a_small_adder_places_and_routes_out_of_context(tmp_path, capsys):
    """The whole command on an 8-bit adder (seconds): yosys, nextpnr, an fmax printed."""
    assert ooc.main(["--adder", "8", "--freq", "100", "--seeds", "1", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    line = next(l for l in out.splitlines() if l.startswith("seed 1: fmax "))
    assert float(line.split()[3]) > 100.0  # 8 bits of carry chain beat 10 ns by far


def test_the_adder_width_must_be_positive():
    with pytest.raises(SystemExit):
        ooc.main(["--adder", "0"])


def test_the_board_units_are_cut_from_the_board_cores_netlist():
    """``--unit board-dot`` / ``board-gradient`` synthesise the board's core as ``make bitstream``
    does and time the submodule its ``elaborate`` builds (``WovenCore.dot_unit`` /
    ``gradient_unit``): the board's own gates."""
    from lowbit_hw.board.top import BOARD_CORE_OPTIONS

    for unit, module in [("board-dot", "board_woven_core.dot"), ("board-gradient", "board_woven_core.gradient"),
                         ("board-core", "board_woven_core")]:
        core, top, cut = ooc.design(unit, 64, 256)
        assert (top, cut) == ("board_woven_core", module)
        assert core.update_lanes == BOARD_CORE_OPTIONS["update_lanes"] and core.l2 is BOARD_CORE_OPTIONS["l2"]
        core._MustUse__silence = True  # built to be inspected, not elaborated: no "never used" warning
        grad, dot = core.gradient_unit(), core.dot_unit()
        assert (dot.line_bits, dot.max_chunks, dot.chebyshev, dot.delayed) == (64, 8, False, False)
        assert grad.with_l2 is False and grad.max_chunks == 8
        grad._MustUse__silence = dot._MustUse__silence = True
    with pytest.raises(ValueError, match="unit must be one of"):
        ooc.design("sequencer", 64, 256)
