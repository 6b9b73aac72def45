# amaranth: UnusedElaboratable=no
"""WriteEngine: write requests become single-line CCI-P writes, almost-full respected, outstanding
writes counted until their responses, idle only when all are answered."""

import pytest
from amaranth.sim import Simulator

from lowbit_hw.shell import WriteEngine
from shell_models import StormConfig, line_value, pattern_host, rng_for, run_simulation, StreamSource

W = 128


def run_writes(dut, items, *, seed, latency=(5, 40), storms=None, p_idle=0.2, max_cycles=5000):
    rng = rng_for(seed)
    host = pattern_host(W, seed, write_latency=latency, storms=storms, c1_tx=dut.c1_tx, c1_rx=dut.c1_rx,
                        c1_almfull=dut.almfull)
    src = StreamSource(dut.write, items, rng=rng, p_idle=p_idle)
    trace = []  # (cycle, idle, outstanding, responder in flight incl. the request on the wire)

    async def bench(ctx):
        for cycle in range(max_cycles):
            host.step(ctx)
            src.step(ctx, cycle)
            trace.append((cycle, ctx.get(dut.idle), ctx.get(dut.outstanding), host.writes_in_flight))
            if src.done and host.writes_in_flight == 0 and ctx.get(dut.idle) and len(host.requests) == len(items):
                return
            await ctx.tick()
        raise AssertionError("writes did not finish")

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    run_simulation(sim)
    return host, trace


@pytest.mark.parametrize("seed", [1, 2])
def test_every_write_issued_once_in_order_under_almost_full_storms(seed):
    rng = rng_for(50 + seed)
    addrs = [int(a) for a in rng.integers(0, 1 << 40, 150)]
    items = [{"address": a, "data": line_value(a, W)} for a in addrs]
    dut = WriteEngine(line_bits=W)
    host, trace = run_writes(dut, items, seed=seed, storms=StormConfig(rate=0.05, max_len=12))
    assert [(r.line, r.data) for r in host.requests] == [(i["address"], i["data"]) for i in items]
    assert host.write_responses == len(items)
    assert host.almfull_cycles[1] > 20 and host.max_after_almfull[1] <= 1
    assert len({r.mdata for r in host.requests}) == len(items)  # mdata numbers the writes


def test_idle_means_every_write_answered():
    items = [{"address": a, "data": a} for a in range(40)]
    dut = WriteEngine(line_bits=W)
    host, trace = run_writes(dut, items, seed=3, latency=(20, 80))
    busy = [t for t in trace if not t[1]]
    assert busy, "never busy"
    for cycle, idle, outstanding, in_flight in trace:
        # the responder learns of a write the cycle it is on c1_tx, one cycle after acceptance
        assert idle == (outstanding == 0)
        if idle:
            assert in_flight == 0, f"cycle {cycle}: idle with {in_flight} writes unanswered"
    assert trace[-1][1] == 1


def test_a_fence_request_is_a_ccip_write_fence_counted_until_its_response():
    items = ([{"address": a, "data": a, "fence": 0} for a in range(6)] + [{"address": 0, "data": 0, "fence": 1}]
             + [{"address": a, "data": a, "fence": 0} for a in range(6, 9)])
    dut = WriteEngine(line_bits=W)
    host, trace = run_writes(dut, items, seed=5, latency=(20, 60))
    assert [r.kind for r in host.requests] == ["write"] * 6 + ["fence"] + ["write"] * 3
    assert [r.line for r in host.requests if r.kind == "write"] == list(range(9))
    assert host.write_fences == 1 and host.write_lines == 9 and host.write_responses == 10 and not host.errors
    assert trace[-1][1] == 1  # idle only once the fence, too, is answered


def test_max_outstanding_stops_accepting():
    items = [{"address": a, "data": a} for a in range(30)]
    dut = WriteEngine(line_bits=W, max_outstanding=4)
    host, trace = run_writes(dut, items, seed=4, latency=(30, 60), p_idle=0.0)
    assert max(t[2] for t in trace) == 4
    assert max(t[3] for t in trace) <= 4
    assert len(host.requests) == 30


def test_parameters_are_checked():
    with pytest.raises(ValueError, match="max_outstanding"):
        WriteEngine(line_bits=W, max_outstanding=0)
    with pytest.raises(ValueError, match="line_bits"):
        WriteEngine(line_bits=100)
