# amaranth: UnusedElaboratable=no
"""The 8N1 UART: a transmitter looped back into a receiver carries every byte value; a missing stop
bit is a framing error; the divisor is checked."""

import numpy as np
import pytest
from amaranth import Module
from amaranth.sim import Simulator

from lowbit_hw.board.uart import UART, UARTRx


@pytest.mark.parametrize("divisor", [4, 7])
def test_loopback_carries_every_byte(divisor):
    uart = UART(divisor)
    m = Module()
    m.submodules.uart = uart
    m.d.comb += uart.rx.eq(uart.tx)
    sent = list(range(256)) if divisor == 4 else list(np.random.default_rng(1).integers(0, 256, 40))
    got = []

    async def producer(ctx):
        for b in sent:
            ctx.set(uart.tx_data.payload, int(b))
            ctx.set(uart.tx_data.valid, 1)
            await ctx.tick().until(uart.tx_data.ready)
        ctx.set(uart.tx_data.valid, 0)

    async def consumer(ctx):
        ctx.set(uart.rx_data.ready, 1)
        while len(got) < len(sent):
            await ctx.tick()
            if ctx.get(uart.rx_data.valid):
                got.append(ctx.get(uart.rx_data.payload))

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run_until(1e-8 * (len(sent) + 2) * 12 * divisor)
    assert got == [int(b) for b in sent]


def test_missing_stop_bit_is_a_framing_error():
    rx = UARTRx(4)
    out = {}

    async def bench(ctx):
        ctx.set(rx.data.ready, 1)
        for bit in [1, 1, 0] + [1, 0, 1, 0, 1, 0, 1, 0] + [0, 0, 0]:  # start, 8 data bits, no stop bit
            ctx.set(rx.rx, bit)
            await ctx.tick().repeat(4)
        ctx.set(rx.rx, 1)
        await ctx.tick().repeat(20)
        out["fe"], out["valid"] = ctx.get(rx.frame_error), ctx.get(rx.data.valid)

    sim = Simulator(rx)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert out == {"fe": 1, "valid": 0}


def test_divisor_is_checked():
    with pytest.raises(ValueError, match="divisor"):
        UART(3)


def test_a_received_byte_is_held_until_taken():
    """``valid`` holds with its byte until ``ready`` (a stream, not a pulse: the docstring says so)."""
    rx = UARTRx(4)
    seen = []

    async def bench(ctx):
        ctx.set(rx.data.ready, 0)
        for bit in [1, 1, 0] + [1, 0, 1, 0, 0, 1, 0, 1] + [1, 1]:  # start, 0xA5 LSB first, stop
            ctx.set(rx.rx, bit)
            await ctx.tick().repeat(4)
        await ctx.tick().repeat(30)  # long after the stop bit: still offered
        seen.append((ctx.get(rx.data.valid), ctx.get(rx.data.payload)))
        ctx.set(rx.data.ready, 1)
        await ctx.tick()
        ctx.set(rx.data.ready, 0)
        await ctx.tick()
        seen.append((ctx.get(rx.data.valid), ctx.get(rx.overrun)))

    sim = Simulator(rx)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert seen == [(1, 0xA5), (0, 0)]
    assert "pulse" not in UARTRx.__doc__ and "holds" in UARTRx.__doc__
