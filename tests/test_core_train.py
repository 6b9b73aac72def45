"""TrainingCore end to end in Amaranth's simulator: bit-exact with lowbit_sim.golden.run.

A small engine (64-bit lines, 4 lanes, 256 features) keeps the Python simulator fast; the
structure is the same as the 512-bit / 32-lane build (everything is parametrised).
"""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from core_models import (DATA_ADDR, LABEL_ADDR, MODEL_ADDR, STATUS_ADDR, ShellModel, collect, make_problem, pulse,
                         set_config, step_until_end, write_table)
from lowbit.format import LineFormat
from lowbit.registers import ErrorCode, State
from lowbit_hw.core import TrainingCore

SMALL = dict(line_bits=64, lanes=4, max_features=256)


def simulate(problem, *, core_kw=SMALL, seed=1, max_cycles=60_000, shell_kw=None, table=True, script=None):
    """Run ``problem`` on a fresh core; returns (shell model, final status, models, records, status record)."""
    core = TrainingCore(**core_kw)
    rng = np.random.default_rng(seed)
    shell = ShellModel(core, problem.memory, rng, **(shell_kw or {}))
    out = {}

    async def bench(ctx):
        if table:
            await write_table(ctx, core, problem.table_m, problem.table_e)
        set_config(ctx, core, problem.cfg, problem.run_id)
        if script is not None:
            await script(ctx, core, shell)
        else:
            await pulse(ctx, core.start)
        out["cycles"], out["status"] = await step_until_end(ctx, core, shell, max_cycles)

    sim = Simulator(core)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    epochs = problem.cfg.epochs if out["status"].error == 0 else 0
    models, recs, status_rec = collect(problem, shell, epochs)
    return shell, out["status"], models, recs, status_rec


def check_against_golden(problem, shell, status, models, recs, status_rec):
    cfg, gold = problem.cfg, problem.golden
    fmt = problem.fmt
    assert status.state == State.DONE and status.error == 0
    assert status.epoch == cfg.epochs
    for e in range(cfg.epochs):
        np.testing.assert_array_equal(models[e, :cfg.features], gold.models[e], err_msg=f"model after epoch {e}")
        assert not models[e, cfg.features:].any(), "padding words of the model snapshot must be 0"
        assert recs[e]["epoch"] == e + 1
        assert recs[e]["loss"] == gold.losses[e], f"loss of epoch {e}"
        per_epoch = fmt.lines_per_copy(cfg.rows) + fmt.label_lines(cfg.rows)
        assert recs[e]["read_lines"] == (e + 1) * per_epoch
    assert status_rec["state"] == State.DONE and status_rec["error"] == 0
    assert status_rec["epochs"] == cfg.epochs and status_rec["run_id"] == problem.run_id
    per_epoch = fmt.lines_per_copy(cfg.rows) + fmt.label_lines(cfg.rows)
    assert status_rec["read_lines"] == cfg.epochs * per_epoch == status.read_lines
    rl = max(1, fmt.record_lines)
    assert status_rec["write_lines"] == cfg.epochs * (fmt.model_lines + rl)
    assert status.write_lines == status_rec["write_lines"] + rl
    assert status_rec["cycles"] <= status.cycles
    # The commands: copy e mod K of the data, the labels, once per epoch.
    data_cmds = [c for c in shell.commands if c[0] == "data"]
    assert data_cmds == [("data", DATA_ADDR + (e % cfg.copies) * fmt.lines_per_copy(cfg.rows),
                          fmt.lines_per_copy(cfg.rows)) for e in range(cfg.epochs)]
    # The status record is the last write.
    assert shell.write_log[-rl:] == list(range(STATUS_ADDR, STATUS_ADDR + rl))


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_bits_exact(bits):
    p = make_problem(rows=7, features=40, bits=bits, batch=3, epochs=1, seed=bits)
    check_against_golden(p, *simulate(p, seed=bits))
