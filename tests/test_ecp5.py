"""lowbit_hw.ecp5: the primitives' simulation models give ``a * b`` with the stated latency."""

from __future__ import annotations

import random

import pytest
from amaranth.back import rtlil
from amaranth.sim import Simulator

from lowbit_hw.ecp5 import ECP5_SYNTH, Mul18, PipelinedMul


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
