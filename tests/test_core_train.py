"""TrainingCore end to end in Amaranth's simulator: bit-exact with lowbit.contract.golden.run.

A small engine (64-bit lines, 4 lanes, 256 features) keeps the Python simulator fast; the
structure is the same as the 512-bit / 32-lane build (everything is parametrised).
"""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from core_models import (DATA_ADDR, LABEL_ADDR, MODEL_IN_ADDR, STATUS_ADDR, ShellModel, collect, make_problem,
                         pulse, set_config, step_until_end, write_table)
from lowbit.contract.golden import _segments
from lowbit.contract.registers import ErrorCode, State
from lowbit_hw.core import TrainingCore

SMALL = dict(line_bits=64, lanes=4, max_features=256)


#: Compiled simulators by (core class, core arguments), reused through ``Simulator.reset()``: building
#: and compiling the design is about half of each small run (~2 s of a woven-core case), and the
#: suite runs ~100 cases on a handful of builds. ``reset()`` returns every signal and memory to its
#: initial value and restarts the one testbench, which runs whatever job ``simulate`` left for it,
#: so a reused simulator starts exactly as a fresh one does. Least recently used first out.
_SIMULATORS: dict = {}
_MAX_SIMULATORS = 4


def _build_key(core_cls, core_kw):
    return core_cls, tuple(sorted(core_kw.items()))


def _simulator(core_cls, core_kw):
    """(core, simulator, job) for this build: a cached one reset, or a new one."""
    key = _build_key(core_cls, core_kw)
    if key in _SIMULATORS:
        entry = _SIMULATORS.pop(key)
        entry[1].reset()
    else:
        core, job = core_cls(**core_kw), {}

        async def bench(ctx):
            await job["run"](ctx)

        sim = Simulator(core)
        sim.add_clock(1e-8)
        sim.add_testbench(bench)
        entry = (core, sim, job)
    _SIMULATORS[key] = entry  # most recently used last
    while len(_SIMULATORS) > _MAX_SIMULATORS:
        _SIMULATORS.pop(next(iter(_SIMULATORS)))
    return entry


def simulate(problem, *, core_kw=SMALL, seed=1, max_cycles=60_000, shell_kw=None, table=True, script=None,
             core_cls=TrainingCore):
    """Run ``problem`` on a core in its reset state; returns (shell model, final status, models,
    records, status record)."""
    core, sim, job = _simulator(core_cls, core_kw)
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

    job["run"] = bench
    try:
        sim.run()
    except BaseException:
        _SIMULATORS.pop(_build_key(core_cls, core_kw), None)  # never reuse a run that broke off
        raise
    shell.check()
    snapshots = problem.cfg.snapshots() if out["status"].error == 0 else 0
    models, recs, status_rec = collect(problem, shell, snapshots)
    return shell, out["status"], models, recs, status_rec


def segment_lines(problem):
    """Per snapshot of the run: (rows, first row, copy) of its segment (lowbit.contract.golden._segments;
    a plain run's are its epochs)."""
    cfg = problem.cfg
    return [(min(hi * cfg.batch, cfg.rows) - lo * cfg.batch, lo * cfg.batch, epoch % cfg.copies)
            for epoch, lo, hi in _segments(cfg)]


def check_against_golden(problem, shell, status, models, recs, status_rec):
    """Every snapshot and record equals the golden model's, the counters and commands are exact."""
    cfg, gold = problem.cfg, problem.golden
    fmt = problem.fmt
    n = cfg.snapshots()
    segments = segment_lines(problem)
    assert status.state == State.DONE and status.error == 0
    assert status.epoch == n == len(gold.models) == len(segments)
    rl = max(1, fmt.record_lines)
    # lines read by the end of each segment: the start model (warm start), then each segment's
    read = fmt.model_lines if cfg.warm_start else 0
    for e, (rows, _, _) in enumerate(segments):
        np.testing.assert_array_equal(models[e, :cfg.features], gold.models[e], err_msg=f"model of snapshot {e}")
        assert not models[e, cfg.features:].any(), "padding words of the model snapshot must be 0"
        assert recs[e]["epoch"] == e + 1
        assert recs[e]["loss"] == gold.losses[e], f"loss of snapshot {e}"
        read += cfg.factors() * fmt.lines_per_copy(rows) + fmt.label_lines(rows)
        assert recs[e]["read_lines"] == read
        # counters as of the record: this snapshot written, the record itself not yet
        assert recs[e]["write_lines"] == e * (fmt.model_lines + rl) + fmt.model_lines
        assert recs[e]["reserved6"] == recs[e]["reserved7"] == 0
        if e:
            assert recs[e]["cycles"] > recs[e - 1]["cycles"]
            assert recs[e]["stall_cycles"] >= recs[e - 1]["stall_cycles"]
    assert status_rec["state"] == State.DONE and status_rec["error"] == 0
    assert status_rec["epochs"] == n and status_rec["run_id"] == problem.run_id
    assert status_rec["read_lines"] == read == status.read_lines
    assert status_rec["write_lines"] == n * (fmt.model_lines + rl)
    assert status.write_lines == status_rec["write_lines"] + rl
    assert status_rec["cycles"] <= status.cycles
    # The commands: the start model, then per segment its rows of copy (epoch mod K) and their labels.
    copy = fmt.lines_per_copy(cfg.rows)
    data_cmds = [c for c in shell.commands if c[0] == "data"]
    expect = [("data", MODEL_IN_ADDR, fmt.model_lines)] if cfg.warm_start else []
    if cfg.factors() == 1:
        expect += [("data", DATA_ADDR + k * copy + fmt.lines_per_copy(first) * (first > 0), fmt.lines_per_copy(rows))
                   for rows, first, k in segments]
    else:  # Chebyshev: per group, its lines of copy (epoch + j) mod K, j = 0, d, d-1, .., 1
        S = problem.line_bits // 32
        group = fmt.lines_per_copy(S)
        order = [0, *range(cfg.degree, 0, -1)]
        expect += [("data", DATA_ADDR + (k + j) % cfg.copies * copy + (first // S + i) * group, group)
                   for rows, first, k in segments for i in range(-(-rows // S)) for j in order]
    assert data_cmds == expect
    label_cmds = [c for c in shell.commands if c[0] == "label"]
    assert label_cmds == [("label", LABEL_ADDR + fmt.label_lines(first) * (first > 0), fmt.label_lines(rows))
                          for rows, first, _ in segments]
    # The status record is the last write.
    assert shell.write_log[-rl:] == list(range(STATUS_ADDR, STATUS_ADDR + rl))


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_bits_exact(bits):
    p = make_problem(rows=7, features=40, bits=bits, batch=3, epochs=1, seed=bits)
    check_against_golden(p, *simulate(p, seed=bits))


@pytest.mark.parametrize("rows, features, batch, epochs, copies", [
    (1, 1, 1, 1, 1),  # N = 1, F = 1 (one real lane, the rest padding)
    (5, 1, 1, 2, 1),  # F = 1, batch 1: every row is an update, rows of a single beat group
    (9, 33, 4, 2, 2),  # F not a multiple of 32, N not a multiple of the batch, 2 epochs on 2 copies
    (6, 64, 6, 1, 1),  # one minibatch = the whole epoch, F a multiple of 32
    (11, 70, 1, 2, 2),  # batch 1, three row groups
    (4, 5, 8, 3, 2),  # batch larger than N
])
def test_shapes_exact(rows, features, batch, epochs, copies):
    p = make_problem(rows=rows, features=features, bits=2, batch=batch, epochs=epochs, copies=copies,
                     seed=rows * 100 + features)
    check_against_golden(p, *simulate(p, seed=features))


@pytest.mark.parametrize("core_kw", [dict(line_bits=128, lanes=8, max_features=128),
                                     dict(line_bits=64, lanes=1, max_features=64),
                                     dict(line_bits=256, lanes=32, max_features=64)])
def test_other_builds_exact(core_kw):
    """Other line widths and lane counts: lanes >= words per line and lanes < words per line."""
    p = make_problem(rows=6, features=50, bits=3, batch=4, epochs=2, copies=2, line_bits=core_kw["line_bits"],
                     seed=core_kw["lanes"])
    check_against_golden(p, *simulate(p, core_kw=core_kw, seed=2))


@pytest.mark.parametrize("features, batch", [(7, 3), (20, 1), (32, 5)])
def test_single_beat_rows_exact(features, batch):
    """32 lanes, F <= 32: every row is one beat, so consecutive rows' gradient passes are as close
    as the G read-after-write distance allows (ROW_GAP)."""
    core_kw = dict(line_bits=256, lanes=32, max_features=64)
    p = make_problem(rows=13, features=features, bits=2, batch=batch, epochs=2, copies=2, line_bits=256,
                     seed=features)
    check_against_golden(p, *simulate(p, core_kw=core_kw, seed=features, shell_kw=dict(p_line=1, p_cmd=1)))


def test_saturation_exact():
    """A step far too large drives the model and the residuals into saturation: still bit-exact."""
    p = make_problem(rows=8, features=36, bits=4, batch=2, epochs=2, step=0.9, label_scale=8.0, seed=5)
    assert (np.abs(p.golden.models) == 2**31 - 1).any() or (p.golden.models == -2**31).any()
    check_against_golden(p, *simulate(p, seed=3))


def test_no_gaps_and_heavy_gaps_agree():
    """The result does not depend on the shell's timing (only the cycle counters do)."""
    p = make_problem(rows=9, features=40, bits=2, batch=2, epochs=1, seed=9)
    fast = simulate(p, shell_kw=dict(p_cmd=1, p_line=1, p_write=1, write_latency=(1, 2)))
    slow = simulate(p, shell_kw=dict(p_cmd=0.3, p_line=0.1, p_write=0.3, write_latency=(1, 40)))
    check_against_golden(p, *fast)
    check_against_golden(p, *slow)
    assert fast[1].cycles < slow[1].cycles
    assert fast[1].stall_cycles < slow[1].stall_cycles


BAD = [
    (dict(rows=0), ErrorCode.BAD_ROWS),
    (dict(features=0), ErrorCode.BAD_FEATURES),
    (dict(features=257), ErrorCode.BAD_FEATURES),
    (dict(bits=0), ErrorCode.BAD_BITS),
    (dict(bits=9), ErrorCode.BAD_BITS),
    (dict(batch=0), ErrorCode.BAD_BATCH),
    (dict(batch=4097), ErrorCode.BAD_BATCH),
    (dict(epochs=0), ErrorCode.BAD_EPOCHS),
    (dict(copies=0), ErrorCode.BAD_COPIES),
    (dict(step=0), ErrorCode.BAD_STEP),
    (dict(rows=0, step=0), ErrorCode.BAD_ROWS),  # checked in ErrorCode order
    (dict(bits=0, epochs=0), ErrorCode.BAD_BITS),
]


@pytest.mark.parametrize("bad, code", BAD, ids=[f"{c.name}-{i}" for i, (_, c) in enumerate(BAD)])
def test_config_errors(bad, code):
    import dataclasses
    p = make_problem(rows=3, features=8, bits=2, seed=0)
    p.cfg = dataclasses.replace(p.cfg, **bad)  # not validated by EngineConfig
    shell, status, _, _, srec = simulate(p, table=False)
    assert status.state == State.ERROR and status.error == code
    assert srec["state"] == State.ERROR and srec["error"] == code and srec["run_id"] == p.run_id
    assert srec["epochs"] == 0
    rl = max(1, p.fmt.record_lines)
    assert shell.commands == [] and shell.write_log == list(range(STATUS_ADDR, STATUS_ADDR + rl))


def test_start_while_busy_aborts():
    p = make_problem(rows=12, features=40, bits=2, batch=2, epochs=2, seed=4)

    async def script(ctx, core, shell):
        await pulse(ctx, core.start)
        sigs = shell.signals()
        for _ in range(120):  # well into epoch 0
            shell.drive(ctx)
            shell.observe((await ctx.tick().sample(*sigs))[2:])
        ctx.set(core.start, 1)
        shell.drive(ctx)
        shell.observe((await ctx.tick().sample(*sigs))[2:])
        ctx.set(core.start, 0)

    shell, status, _, _, srec = simulate(p, script=script)
    assert status.state == State.ERROR and status.error == ErrorCode.START_WHILE_BUSY
    assert srec["state"] == State.ERROR and srec["error"] == ErrorCode.START_WHILE_BUSY
    assert shell.flushes == 1
    rl = max(1, p.fmt.record_lines)
    assert shell.write_log[-rl:] == list(range(STATUS_ADDR, STATUS_ADDR + rl))


def test_reset_aborts_then_a_run_succeeds():
    """reset mid-run: flush, back to IDLE, no status record; the next start trains from w = 0."""
    p = make_problem(rows=10, features=40, bits=4, batch=3, epochs=2, copies=2, seed=6)

    async def script(ctx, core, shell):
        await pulse(ctx, core.start)
        sigs = shell.signals()
        for cycle in range(400):
            if cycle == 150:
                ctx.set(core.reset, 1)
            shell.drive(ctx)
            st = shell.observe((await ctx.tick().sample(*sigs))[2:])
            ctx.set(core.reset, 0)
            if cycle > 150 and st.state == State.IDLE:
                break
        else:
            raise AssertionError("reset did not return to IDLE")
        assert shell.flushes == 1 and STATUS_ADDR not in shell.writes
        for _ in range(5):  # the shell quiet again, then a fresh run
            shell.drive(ctx)
            shell.observe((await ctx.tick().sample(*sigs))[2:])
        shell.writes.clear()
        shell.write_log.clear()
        shell.commands.clear()
        await pulse(ctx, core.start)

    shell, status, models, recs, srec = simulate(p, script=script)
    # Counters restart with the run; compare everything but them.
    check_against_golden(p, shell, status, models, recs, srec)
