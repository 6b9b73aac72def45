"""cocotb tests on the full CCI-P build (512-bit lines, 8192 features): the maximum-features run and
the throughput requirement. Run from tests/test_cocotb_afu.py and bench/throughput.py.

Throughput: with host memory answering after a random 100..400 cycles, out of order, each run of
three epochs is held to the golden model bit for bit and measured two ways: the data lines of one
epoch over the cycles of a steady-state epoch (the last, from the epoch records), and all data
lines over the whole run's cycles (start-up, minibatch boundaries and snapshots included). The
requirement depends on the core CAPS.FORMAT_VERSION names:

* planes (lane-parallel): per epoch >= ``0.95 * min(1, lanes * (b+1) / W)`` at F = 784;
* woven (bit-serial): whole run >= 0.9 data lines per cycle at every b (issue 10).

Environment: ``LOWBIT_THROUGHPUT_JSON`` (a file the measurements are written to),
``LOWBIT_TP_ROWS`` (default 256), ``LOWBIT_TP_BATCH`` (default: all rows), ``LOWBIT_TP_BITS``
(default "1,2,3,4,5,6,7,8"), ``LOWBIT_TP_FEATURES`` (comma-separated, default "784"),
``LOWBIT_TP_STORMS=1`` (almost-full storms on both channels too; default off),
``LOWBIT_TP_DELAY=1`` (pipelined SGD, MODEL_DELAY 1; default exact SGD).
"""

from __future__ import annotations

import json
import os

import numpy as np

import cocotb

from lowbit.contract.fixed import step_to_fixed

from lowbit.contract import golden
from lowbit.contract.format import LAYOUTS

from .afu_tb import TB, fit_to_engine, make_dataset, scoreboard
from lowbit.contract.golden import EngineConfig
from .test_afu import SEED0, good_run

TP_FEATURES = 784
TP_EPOCHS = 3
#: The woven core's requirement: data lines per cycle over a whole run, at every b.
WOVEN_TARGET = 0.9


def target_lines_per_cycle(lanes: int, bits: int, line_bits: int, layout: str = "planes") -> float:
    """planes: 0.95 x min(1, lanes (b+1) / W) per steady epoch; woven: 0.9 over the whole run."""
    if layout == "woven":
        return WOVEN_TARGET
    return 0.95 * min(1.0, lanes * (bits + 1) / line_bits)


def epoch_cycles(records: list[dict], total: int) -> tuple[list[int], bool]:
    """Cycles of each epoch from the epoch records, whether their ``cycles`` word counts per epoch or
    cumulatively since START (the format does not say; with three equal epochs the last cumulative
    value is close to the run's total and a per-epoch value is about a third of it)."""
    c = [int(r["cycles"]) for r in records]
    cumulative = c[-1] >= 0.7 * total and all(a < b for a, b in zip(c, c[1:]))
    return ([c[0]] + [b - a for a, b in zip(c, c[1:])] if cumulative else c), cumulative


async def measure(tb: TB, bits: int, rows: int, batch: int, seed: int, features: int = TP_FEATURES,
                  model_delay: int = 0) -> dict:
    caps = tb.caps
    p = fit_to_engine(dict(rows=rows, batch=batch), caps)
    batch = p["batch"]
    rng = np.random.default_rng([seed, bits])
    ds = make_dataset(rng, rows=rows, features=features, bits=bits, line_bits=caps["LINE_BITS"], layout=p["layout"])
    cfg = EngineConfig(rows=rows, features=features, bits=bits, batch=batch, epochs=TP_EPOCHS,
                       step=step_to_fixed(0.5 / (features * batch)), model_delay=model_delay)
    gold = golden.run(cfg, ds.codes, ds.labels_q, ds.table_m, ds.table_e)
    run_id = 0x7000 + bits
    res = await tb.train(ds, cfg, run_id)
    scoreboard(res, gold, cfg, ds.fmt, run_id)
    tb.check()
    lines = ds.fmt.lines_per_copy(rows)
    per_epoch, cumulative = epoch_cycles(res.epoch_records, res.record["cycles"])
    return dict(bits=bits, rows=rows, batch=batch, features=features, lanes=caps["LANES"], layout=p["layout"],
                model_delay=model_delay,
                line_bits=caps["LINE_BITS"], lines_per_epoch=lines, epoch_cycles=per_epoch,
                records_cumulative=cumulative, total_cycles=res.record["cycles"],
                read_lines=res.record["read_lines"], stall_cycles=res.record["stall_cycles"],
                lines_per_cycle=lines / per_epoch[-1],
                run_lines_per_cycle=TP_EPOCHS * lines / res.record["cycles"],
                target=target_lines_per_cycle(caps["LANES"], bits, caps["LINE_BITS"], p["layout"]),
                max_lines_in_flight=tb.model.max_lines_in_flight)


def measured(r: dict) -> float:
    """The figure the core's requirement is on (see the module docstring)."""
    return r["run_lines_per_cycle"] if r["layout"] == "woven" else r["lines_per_cycle"]


@cocotb.test()
async def throughput_at_every_b(dut):
    rows = int(os.environ.get("LOWBIT_TP_ROWS", "256"))
    batch = int(os.environ.get("LOWBIT_TP_BATCH", "0")) or rows
    bits_list = [int(b) for b in os.environ.get("LOWBIT_TP_BITS", "1,2,3,4,5,6,7,8").split(",")]
    features_list = [int(f) for f in os.environ.get("LOWBIT_TP_FEATURES", str(TP_FEATURES)).split(",")]
    storms = os.environ.get("LOWBIT_TP_STORMS") == "1"
    model_delay = int(os.environ.get("LOWBIT_TP_DELAY", "0"))
    results = []
    for features in features_list:
        for bits in bits_list:
            tb = TB(dut, seed=SEED0 + 100 * bits + features, storms=storms)
            await tb.setup()
            r = await measure(tb, bits, rows, batch, SEED0, features, model_delay)
            r["storms"] = storms
            dut._log.info(f"F={features} b={bits}: {r['lines_per_epoch']} lines / {r['epoch_cycles'][-1]} cycles = "
                          f"{r['lines_per_cycle']:.4f} lines/cycle; whole run {r['run_lines_per_cycle']:.4f} "
                          f"(target {r['target']:.4f})")
            results.append(r)
            tb.model.stop()
    path = os.environ.get("LOWBIT_THROUGHPUT_JSON")
    if path:
        with open(path, "w") as f:
            json.dump(results, f, indent=1)
    slow = [f"F={r['features']} b={r['bits']}: {measured(r):.4f} < {r['target']:.4f}" for r in results
            if measured(r) < r["target"]]
    assert not slow, "below the throughput target: " + "; ".join(slow)


@cocotb.test()
@cocotb.parametrize(bits=[1, 8])
async def maximum_features_match_golden(dut, bits):
    tb = TB(dut, seed=SEED0 + 6000 + bits)
    caps = await tb.setup()
    await good_run(tb, SEED0 + 6000 + bits, rows=3, features=caps["MAX_FEATURES"], bits=bits, batch=2, epochs=2,
                   copies=2)
