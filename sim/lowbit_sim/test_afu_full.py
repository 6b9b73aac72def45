"""cocotb tests on the full CCI-P build (512-bit lines, 32 lanes, 8192 features): the maximum-features
run and the throughput requirement. Run from tests/test_cocotb_afu.py and bench/throughput.py.

Throughput: with host memory answering after a random 100..400 cycles, out of order (no
almost-full storms), an F = 784 run must stream at least ``0.95 * min(1, lanes * (b+1) / W)`` data
lines per cycle at every b = 1..8, measured as the data lines of one epoch over the cycles of a
steady-state epoch (the last of three, from the epoch records). Each run is also held to the golden
model bit for bit. ``LOWBIT_THROUGHPUT_JSON`` names a file the measurements are written to;
``LOWBIT_TP_ROWS`` / ``LOWBIT_TP_BATCH`` / ``LOWBIT_TP_BITS`` change the rows (default 256), the
minibatch (default: all rows) and the b values measured (default "1,2,3,4,5,6,7,8").
"""

from __future__ import annotations

import json
import os

import numpy as np

import cocotb

from lowbit.fixed import step_to_fixed

from . import golden
from .afu_tb import TB, make_dataset, scoreboard
from .golden import EngineConfig
from .test_afu import SEED0, good_run

TP_FEATURES = 784
TP_EPOCHS = 3


def target_lines_per_cycle(lanes: int, bits: int, line_bits: int) -> float:
    """The issue's requirement: 0.95 x min(1, lanes (b+1) / W)."""
    return 0.95 * min(1.0, lanes * (bits + 1) / line_bits)


def epoch_cycles(records: list[dict], total: int) -> tuple[list[int], bool]:
    """Cycles of each epoch from the epoch records, whether their ``cycles`` word counts per epoch or
    cumulatively since START (the format does not say; with three equal epochs the last cumulative
    value is close to the run's total and a per-epoch value is about a third of it)."""
    c = [int(r["cycles"]) for r in records]
    cumulative = c[-1] >= 0.7 * total and all(a < b for a, b in zip(c, c[1:]))
    return ([c[0]] + [b - a for a, b in zip(c, c[1:])] if cumulative else c), cumulative


async def measure(tb: TB, bits: int, rows: int, batch: int, seed: int) -> dict:
    caps = tb.caps
    rng = np.random.default_rng([seed, bits])
    ds = make_dataset(rng, rows=rows, features=TP_FEATURES, bits=bits, line_bits=caps["LINE_BITS"])
    cfg = EngineConfig(rows=rows, features=TP_FEATURES, bits=bits, batch=batch, epochs=TP_EPOCHS,
                       step=step_to_fixed(0.5 / (TP_FEATURES * batch)))
    gold = golden.run(cfg, ds.codes, ds.labels_q, ds.table_m, ds.table_e)
    run_id = 0x7000 + bits
    res = await tb.train(ds, cfg, run_id)
    scoreboard(res, gold, cfg, ds.fmt, run_id)
    tb.check()
    lines = ds.fmt.lines_per_copy(rows)
    per_epoch, cumulative = epoch_cycles(res.epoch_records, res.record["cycles"])
    return dict(bits=bits, rows=rows, batch=batch, features=TP_FEATURES, lanes=caps["LANES"],
                line_bits=caps["LINE_BITS"], lines_per_epoch=lines, epoch_cycles=per_epoch,
                records_cumulative=cumulative, total_cycles=res.record["cycles"],
                read_lines=res.record["read_lines"], stall_cycles=res.record["stall_cycles"],
                lines_per_cycle=lines / per_epoch[-1],
                run_lines_per_cycle=TP_EPOCHS * lines / res.record["cycles"],
                target=target_lines_per_cycle(caps["LANES"], bits, caps["LINE_BITS"]),
                max_lines_in_flight=tb.model.max_lines_in_flight)


@cocotb.test()
async def throughput_at_every_b(dut):
    rows = int(os.environ.get("LOWBIT_TP_ROWS", "256"))
    batch = int(os.environ.get("LOWBIT_TP_BATCH", "0")) or rows
    bits_list = [int(b) for b in os.environ.get("LOWBIT_TP_BITS", "1,2,3,4,5,6,7,8").split(",")]
    results = []
    for bits in bits_list:
        tb = TB(dut, seed=SEED0 + 100 * bits, storms=False)
        await tb.setup()
        r = await measure(tb, bits, rows, batch, SEED0)
        dut._log.info(f"b={bits}: {r['lines_per_epoch']} lines / {r['epoch_cycles'][-1]} cycles = "
                      f"{r['lines_per_cycle']:.4f} lines/cycle (target {r['target']:.4f}; whole run "
                      f"{r['run_lines_per_cycle']:.4f})")
        results.append(r)
        tb.model.stop()
    path = os.environ.get("LOWBIT_THROUGHPUT_JSON")
    if path:
        with open(path, "w") as f:
            json.dump(results, f, indent=1)
    slow = [f"b={r['bits']}: {r['lines_per_cycle']:.4f} < {r['target']:.4f}" for r in results
            if r["lines_per_cycle"] < r["target"]]
    assert not slow, "below the throughput target: " + "; ".join(slow)


@cocotb.test()
@cocotb.parametrize(bits=[1, 8])
async def maximum_features_match_golden(dut, bits):
    tb = TB(dut, seed=SEED0 + 6000 + bits)
    caps = await tb.setup()
    await good_run(tb, SEED0 + 6000 + bits, rows=3, features=caps["MAX_FEATURES"], bits=bits, batch=2, epochs=2,
                   copies=2)
