"""``RunSchedule`` (the woven sequencer's bounded-run arithmetic) against ``lowbit.contract.golden``'s
segments, on schedules far larger than a core simulation can run (up to 2^32 - 1 rows, 65535 epochs)."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from lowbit.contract.golden import EngineConfig, _segments
from lowbit.contract.registers import MAX_BATCH, MAX_COPIES, MAX_EPOCHS
from lowbit_hw.core.schedule import RunSchedule

S = 16  # rows per group at 512-bit lines


def _configs():
    rng = np.random.default_rng(14)
    out = [dict(rows=2**32 - 1, batch=1, epochs=MAX_EPOCHS, copies=MAX_COPIES, first=2**32 - 1, count=0),
           dict(rows=60000, batch=MAX_BATCH, epochs=MAX_EPOCHS, copies=7, first=5, count=2**32 - 1),
           dict(rows=100, batch=200, epochs=3, copies=2, first=2, count=0),     # batch > rows: P = 1
           dict(rows=33, batch=16, epochs=2, copies=1, first=0, count=0)]       # plain: the short cut
    for _ in range(16):
        batch = S * int(rng.integers(1, 64))
        rows = int(rng.integers(1, 5000))
        epochs = int(rng.integers(1, 9))
        p = -(-rows // batch)
        out.append(dict(rows=rows, batch=batch, epochs=epochs, copies=int(rng.integers(1, 5)),
                        first=int(rng.integers(0, epochs * p)), count=int(rng.integers(0, 2 * p + 2))))
    return out


def _run(c, chunks=3, bits=4):
    dut = RunSchedule(samples=S)
    data_lines = -(-c["rows"] // S) * chunks * (bits + 1)
    out = {}

    async def bench(ctx):
        for k, v in dict(c, chunks=chunks, bits=bits, data_lines=data_lines,
                         plain=c["first"] == 0 and c["count"] == 0).items():
            ctx.set(getattr(dut, k), v)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        while ctx.get(dut.busy):
            await ctx.tick()
        out.update({name: ctx.get(getattr(dut, name)) for name in dut.signature.members if name not in c})

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return out, data_lines


@pytest.mark.parametrize("c", _configs(), ids=lambda c: "-".join(str(v) for v in c.values()))
def test_schedule_equals_the_golden_segments(c):
    chunks, bits = 3, 4
    got, data_lines = _run(c, chunks, bits)
    cfg = EngineConfig(rows=c["rows"], features=1, bits=bits, batch=c["batch"], epochs=c["epochs"], step=1,
                       copies=c["copies"], start_minibatch=c["first"], max_minibatches=c["count"])
    assert got["bad_start"] == 0
    segs = list(_segments(cfg))
    assert got["nseg"] == len(segs) == cfg.snapshots()

    def rows(lo, hi):
        return min(hi * c["batch"], c["rows"]) - lo * c["batch"]

    e0, lo0, hi0 = segs[0]
    groups = -(-rows(lo0, hi0) // S)
    assert got["rows_first"] == rows(lo0, hi0) and got["label_lines_first"] == groups
    assert got["data_lines_first"] == groups * chunks * (bits + 1)
    assert got["label_off_first"] * S == lo0 * c["batch"]
    assert got["data_off_first"] == got["label_off_first"] * chunks * (bits + 1)
    assert got["copy_first"] == e0 % c["copies"] and got["copy_off"] == got["copy_first"] * data_lines
    if len(segs) > 1:
        _, lo, hi = segs[-1]
        assert lo == 0 and got["rows_last"] == rows(lo, hi) and got["label_lines_last"] == -(-rows(lo, hi) // S)
        assert all(lo == 0 and hi == -(-c["rows"] // c["batch"]) for _, lo, hi in segs[1:-1])  # whole epochs


def test_a_start_past_the_end_is_bad_start():
    got, _ = _run(dict(rows=100, batch=16, epochs=2, copies=1, first=14, count=0))
    assert got["bad_start"] == 1
