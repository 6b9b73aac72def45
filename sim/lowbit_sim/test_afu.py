"""cocotb system tests of the real AFU (``lowbit_hw.afu.LowbitAFU``) against the golden model.

Every run goes through :class:`~lowbit_sim.afu_tb.TB`: host memory answering after a random
100-400 cycles, out of order, with almost-full storms on both channels, and is held to
:func:`lowbit.contract.golden.run` BIT FOR BIT (model snapshot of every epoch, every epoch's loss, the
status record), with every guard band intact and no access outside the buffers.

Seeds: ``LOWBIT_SEEDS`` random configurations (default 50) from ``LOWBIT_SEED0`` (default 0).
Seed ``s`` uses ``b = 1 + s mod 8`` and alternates uniform/optimal levels every 8 seeds, so any 16
consecutive seeds cover b = 1..8 with both level placements; the rest of its configuration is
drawn by :func:`~lowbit_sim.afu_tb.random_config`. Run from tests/test_cocotb_afu.py.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

import cocotb

from lowbit.contract.fixed import step_to_fixed
from lowbit.contract.format import LAYOUTS, ROW_ALIGN
from lowbit.contract.losses import chebyshev_poly
from lowbit.contract.registers import (AFU_ID_H, AFU_ID_L, ARITH_VALUE, CODE_TABLE_BASE, DFH_VALUE, REG, REGISTERS,
                              Access, Built, Ctrl, ErrorCode, Estimator, Loss, State)

from lowbit.contract import golden
from .afu_tb import POISON, TB, fit_to_engine, make_dataset, random_config, scoreboard
from lowbit.contract.golden import EngineConfig

SEEDS = int(os.environ.get("LOWBIT_SEEDS", "50"))
SEED0 = int(os.environ.get("LOWBIT_SEED0", "0"))


def seed_config(seed: int, max_features: int, lanes: int) -> dict:
    rng = np.random.default_rng([seed, 1])
    p = random_config(rng, max_features, lanes)
    p["bits"] = 1 + seed % 8
    p["levels"] = ("uniform", "optimal")[(seed // 8) % 2]
    return p


async def good_run(tb: TB, seed: int, *, step: float | None = None, run_id: int | None = None, **p):
    """Prepare, run and score one configuration (made valid for this engine by
    :func:`~lowbit_sim.afu_tb.fit_to_engine`); returns the RunResult."""
    p = fit_to_engine(p, tb.caps)
    rows, features, bits, batch, epochs = (p[k] for k in ("rows", "features", "bits", "batch", "epochs"))
    copies = p.get("copies", 1)
    rng = np.random.default_rng([seed, 2])
    ds = make_dataset(rng, rows=rows, features=features, bits=bits, copies=copies, levels=p.get("levels", "uniform"),
                      line_bits=tb.caps["LINE_BITS"], layout=p["layout"])
    if step is None:
        step = min(0.5, 0.5 / (features * batch))
    cfg = EngineConfig(rows=rows, features=features, bits=bits, batch=batch, epochs=epochs,
                       step=step_to_fixed(step), copies=copies, loss=int(p.get("loss", Loss.SQUARED)),
                       l2=int(p.get("l2", 0)),
                       **({} if not p.get("degree") else dict(
                           estimator=int(Estimator.CHEBYSHEV), degree=p["degree"], margin_range=3,
                           poly=chebyshev_poly(Loss(p["loss"]), p["degree"], 3))))
    gold = golden.run(cfg, ds.codes, ds.labels_q, ds.table_m, ds.table_e)
    run_id = run_id if run_id is not None else (seed << 8) | 0x5
    res = await tb.train(ds, cfg, run_id)
    tb.dut._log.info(f"seed {seed}: {cfg} levels={ds.levels}: {res.record and res.record['cycles']} cycles, "
                     f"{res.host_read_lines} lines read")
    scoreboard(res, gold, cfg, ds.fmt, run_id)
    tb.check()
    return res


# ------------------------------------------------------------------------------ random configurations
@cocotb.test()
@cocotb.parametrize(seed=list(range(SEED0, SEED0 + SEEDS)))
async def random_configuration_matches_golden(dut, seed):
    tb = TB(dut, seed=seed)
    caps = await tb.setup()
    p = seed_config(seed, caps["MAX_FEATURES"], caps["LANES"])
    if tb.built & Built.NONLINEAR:  # logistic and hinge on a third of the seeds each (labels read by sign)
        p["loss"] = Loss(seed % len(Loss))
    if tb.built & Built.L2 and (seed // len(Loss)) % 2:  # L2 on every other triple of seeds: each loss
        p["l2"] = int(np.random.default_rng([seed, 3]).integers(1, 1 << 31))
    if tb.built & Built.CHEBYSHEV and p.get("loss") and (seed // 6) % 2:  # the Chebyshev estimator, d = 1..3
        p["degree"] = 1 + (seed // 2) % 3
        p["copies"] = max(p.get("copies", 1), p["degree"] + 1 + seed % 2)
    await good_run(tb, seed, **p)


#: Named corner cases, each run on every build.
CORNERS = {
    "F1_N1_B1": dict(rows=1, features=1, bits=3, batch=1, epochs=2),
    "F1_batch_gt_1": dict(rows=7, features=1, bits=8, batch=3, epochs=3, copies=2),
    "N1_F33": dict(rows=1, features=33, bits=2, batch=1, epochs=2),
    "F31_full_batch": dict(rows=9, features=31, bits=1, batch=9, epochs=2),
    "batch_gt_rows": dict(rows=5, features=70, bits=5, batch=64, epochs=2),
    "F_one_line_exactly": dict(rows=6, features=512, bits=4, batch=2, epochs=1),
    "several_epochs_two_copies": dict(rows=20, features=97, bits=6, batch=4, epochs=3, copies=2, levels="optimal"),
    # Diverges: residuals, gradients and the model saturate at int32 (checked in tests/test_cocotb_afu.py).
    "saturating_step": dict(rows=16, features=200, bits=7, batch=1, epochs=3, step=0.99),
}


@cocotb.test()
@cocotb.parametrize(case=list(CORNERS))
async def corner_case_matches_golden(dut, case):
    tb = TB(dut, seed=SEED0 + 1000)
    caps = await tb.setup()
    p = dict(CORNERS[case])
    p["features"] = min(p["features"], caps["MAX_FEATURES"])  # small builds (narrow lines) too
    await good_run(tb, SEED0 + 1000, **p)


@cocotb.test()
async def maximum_features_of_this_build_match_golden(dut):
    tb = TB(dut, seed=SEED0 + 2000)
    caps = await tb.setup()
    await good_run(tb, SEED0 + 2000, rows=3, features=caps["MAX_FEATURES"], bits=2, batch=2, epochs=2)


# ------------------------------------------------------------------------------ MMIO
async def check_mmio_map(tb: TB, dut) -> None:
    """The MMIO contract of lowbit.contract.registers on a freshly reset AFU (shared with test_shell_probe)."""
    caps = tb.caps
    assert await tb.read_reg("DFH") == DFH_VALUE
    assert await tb.read_reg("AFU_ID_L") == AFU_ID_L
    assert await tb.read_reg("AFU_ID_H") == AFU_ID_H
    assert await tb.read_reg("DFH_RSVD0") == 0 and await tb.read_reg("DFH_RSVD1") == 0
    assert caps["LINE_BITS"] == len(dut.ccip__c0_rx__data)
    assert caps["FORMAT_VERSION"] in LAYOUTS and caps["MODEL_FRAC"] == 24
    assert 1 <= caps["LANES"] <= 32 and caps["MAX_FEATURES"] >= 32
    assert await tb.read_reg("ARITH") == ARITH_VALUE
    # BUILT is the core's own statement of its optional datapaths (the sequencer refuses the rest)
    from lowbit_hw.core import TrainingCore
    from lowbit_hw.woven import WovenCore

    core_cls = WovenCore if LAYOUTS[caps["FORMAT_VERSION"]] == "woven" else TrainingCore
    assert await tb.read_reg("BUILT") == int(core_cls.built)
    st = await tb.status()
    assert st["STATE"] == State.IDLE and st["ERROR"] == ErrorCode.NONE
    # Every RW register keeps what was written, cut to its width.
    rng = np.random.default_rng(SEED0)
    rw = [r for r in REGISTERS if r.access is Access.RW]
    values = {r.name: int(rng.integers(0, 1 << 63)) * 2 + 1 for r in rw}
    for r in rw:
        await tb.write_reg(r.name, values[r.name])
    for r in rw:
        got = await tb.read_reg(r.name)
        want = values[r.name] & ((1 << r.width) - 1)
        assert got == want, f"{r.name}: read 0x{got:x} after writing 0x{values[r.name]:x}"
    # Unknown addresses (taken from the map: the first two and the last free offsets below the code
    # table), the write-only CTRL and code table read as 0 (and are answered).
    mapped = {r.address for r in REGISTERS}
    unknown = [a for a in range(0, CODE_TABLE_BASE, 8) if a not in mapped]
    for address in (*unknown[:2], unknown[-1], REG["CTRL"].address, CODE_TABLE_BASE, CODE_TABLE_BASE + 8 * 510,
                    0x1FF8):
        assert await tb.model.mmio_read64(address) == 0, f"0x{address:x} does not read as 0"
    # Writes to read-only registers are ignored.
    await tb.write_reg("DFH", 0)
    assert await tb.read_reg("DFH") == DFH_VALUE
    # Many reads in flight at once, each answered once and matched by tid.
    addrs = [REG["SCRATCH"].address, REG["AFU_ID_L"].address, 0x0F00] * 40
    tasks = [cocotb.start_soon(tb.model.mmio_read64(a)) for a in addrs]
    got = [await t for t in tasks]
    assert got == [values["SCRATCH"], AFU_ID_L, 0] * 40
    await tb.cycles(50)
    assert tb.model.idle
    tb.check()


@cocotb.test()
async def mmio_registers_identify_the_engine_and_every_read_is_answered(dut):
    tb = TB(dut, seed=SEED0)
    await tb.setup()
    await check_mmio_map(tb, dut)


# ------------------------------------------------------------------------------ bad use never hangs
BAD = {
    "rows_0": (dict(ROWS=0), ErrorCode.BAD_ROWS),
    "features_0": (dict(FEATURES=0), ErrorCode.BAD_FEATURES),
    "features_over_capacity": (dict(FEATURES=None), ErrorCode.BAD_FEATURES),  # MAX_FEATURES + 1
    "bits_0": (dict(BITS=0), ErrorCode.BAD_BITS),
    "bits_9": (dict(BITS=9), ErrorCode.BAD_BITS),
    "batch_0": (dict(BATCH=0), ErrorCode.BAD_BATCH),
    "batch_over_max": (dict(BATCH=4097), ErrorCode.BAD_BATCH),
    "epochs_0": (dict(EPOCHS=0), ErrorCode.BAD_EPOCHS),
    "copies_0": (dict(COPIES=0), ErrorCode.BAD_COPIES),
    "step_0": (dict(STEP=0), ErrorCode.BAD_STEP),
}


async def expect_error(tb: TB, code: ErrorCode, timeout: int = 20_000) -> None:
    st, _ = await tb.wait_end(timeout)
    assert st["STATE"] == State.ERROR and st["ERROR"] == code, \
        f"expected ERROR {code.name}, STATUS is {State(st['STATE']).name} / error {st['ERROR']}"


async def expect_not_built(tb: TB, ds, cfg: EngineConfig, *, run_id: int, model_in=None) -> None:
    """Program and START a run the engine lacks a datapath for (its BUILT): it must end in
    ``NOT_BUILT`` without writing a model (the buffers keep their POISON fill)."""
    bufs = tb.alloc_run(ds, cfg.snapshots(), model_in=model_in)
    await tb.program(ds, cfg, bufs, run_id=run_id)
    await tb.ctrl(Ctrl.START)
    await expect_error(tb, ErrorCode.NOT_BUILT)
    assert not (bufs.model.data != POISON).any(), "a refused run wrote a model"
    tb.check()


async def reset_and_prove_alive(tb: TB, seed: int) -> None:
    await tb.ctrl(Ctrl.RESET)
    for _ in range(200):  # RESET lets pending memory traffic drain first
        st = await tb.status()
        if st["STATE"] == State.IDLE:
            break
        await tb.cycles(32)
    assert st["STATE"] == State.IDLE and st["ERROR"] == ErrorCode.NONE, f"after RESET: {st}"
    await good_run(tb, seed, rows=5, features=45, bits=3, batch=2, epochs=2)


@cocotb.test()
@cocotb.parametrize(case=list(BAD))
async def bad_configuration_gives_its_error_code_then_reset_recovers(dut, case):
    tb = TB(dut, seed=SEED0 + 3000)
    caps = await tb.setup()
    rng = np.random.default_rng(SEED0 + 3000)
    p = fit_to_engine(dict(rows=4, features=40, bits=3, batch=2), caps)
    ds = make_dataset(rng, rows=4, features=40, bits=3, line_bits=caps["LINE_BITS"], layout=p["layout"])
    cfg = EngineConfig(rows=4, features=40, bits=3, batch=p["batch"], epochs=1, step=step_to_fixed(0.01))
    bufs = tb.alloc_run(ds, 1)
    await tb.program(ds, cfg, bufs, run_id=1)
    override, code = BAD[case]
    for name, value in override.items():
        await tb.write_reg(name, caps["MAX_FEATURES"] + 1 if value is None else value)
    await tb.ctrl(Ctrl.START)
    await expect_error(tb, code)
    assert not (bufs.model.data != POISON).any(), "a rejected run wrote a model"
    tb.check()
    await reset_and_prove_alive(tb, SEED0 + 3000)


async def run_in_flight(dut, seed: int, *, features: int, bits: int, batch: int, epochs: int, run_id: int,
                        cycles: int) -> TB:
    """A fresh bench with a 64-row run started ``cycles`` ago (reads in flight, nowhere near done)."""
    tb = TB(dut, seed=seed)
    caps = await tb.setup()
    rng = np.random.default_rng(seed)
    p = fit_to_engine(dict(rows=64, batch=batch), caps)
    ds = make_dataset(rng, rows=64, features=min(caps["MAX_FEATURES"], features), bits=bits,
                      line_bits=caps["LINE_BITS"], layout=p["layout"])
    cfg = EngineConfig(rows=64, features=ds.features, bits=bits, batch=p["batch"], epochs=epochs,
                       step=step_to_fixed(0.001))
    bufs = tb.alloc_run(ds, cfg.epochs)
    await tb.program(ds, cfg, bufs, run_id=run_id)
    await tb.ctrl(Ctrl.START)
    await tb.cycles(cycles)
    return tb


@cocotb.test()
async def start_while_busy_aborts_with_an_error_then_reset_recovers(dut):
    tb = await run_in_flight(dut, SEED0 + 4000, features=256, bits=4, batch=4, epochs=3, run_id=2, cycles=300)
    assert (await tb.status())["STATE"] == State.BUSY
    await tb.ctrl(Ctrl.START)
    await expect_error(tb, ErrorCode.START_WHILE_BUSY, timeout=50_000)
    tb.check()
    await reset_and_prove_alive(tb, SEED0 + 4000)


@cocotb.test()
async def reset_in_the_middle_of_a_run_returns_to_idle_and_the_next_run_is_exact(dut):
    tb = await run_in_flight(dut, SEED0 + 5000, features=200, bits=6, batch=8, epochs=2, run_id=3, cycles=500)
    tb.check()
    await reset_and_prove_alive(tb, SEED0 + 5000)


# ------------------------------------------------------------------------------ what only one core refuses
@cocotb.test()
@cocotb.parametrize(case=["optimal_levels", "batch_across_groups"])
async def the_woven_core_refuses_what_it_cannot_run_and_the_planes_core_runs_it(dut, case):
    """A code table that is not affine (optimal levels) and a minibatch that splits a group of
    ``LINE_BITS / 32`` rows: the woven core ends in BAD_TABLE / BATCH_NOT_WOVEN without writing a
    model, then recovers on RESET; the planes core trains both bit-exact."""
    tb = TB(dut, seed=SEED0 + 6000)
    caps = await tb.setup()
    group = caps["LINE_BITS"] // ROW_ALIGN
    levels, batch = ("optimal", 2 * group) if case == "optimal_levels" else ("uniform", group + 1)
    rows, features, bits = 3 * group, 45, 3
    if LAYOUTS[caps["FORMAT_VERSION"]] == "planes":
        rng = np.random.default_rng([SEED0 + 6000, 2])
        ds = make_dataset(rng, rows=rows, features=features, bits=bits, levels=levels, line_bits=caps["LINE_BITS"])
        cfg = EngineConfig(rows=rows, features=features, bits=bits, batch=batch, epochs=2, step=step_to_fixed(0.01))
        gold = golden.run(cfg, ds.codes, ds.labels_q, ds.table_m, ds.table_e)
        scoreboard(await tb.train(ds, cfg, run_id=6), gold, cfg, ds.fmt, 6)
        tb.check()
        return
    rng = np.random.default_rng(SEED0 + 6000)
    ds = make_dataset(rng, rows=rows, features=features, bits=bits, levels=levels, line_bits=caps["LINE_BITS"],
                      layout="woven")
    cfg = EngineConfig(rows=rows, features=features, bits=bits, batch=batch, epochs=1, step=step_to_fixed(0.01))
    bufs = tb.alloc_run(ds, 1)
    await tb.program(ds, cfg, bufs, run_id=7)
    await tb.ctrl(Ctrl.START)
    await expect_error(tb, ErrorCode.BAD_TABLE if case == "optimal_levels" else ErrorCode.BATCH_NOT_WOVEN)
    assert not (bufs.model.data != POISON).any(), "a rejected run wrote a model"
    tb.check()
    await reset_and_prove_alive(tb, SEED0 + 6000)


# ------------------------------------------------------------------------------ resumable runs (RESUME)
#: Bounded / warm-started runs (issue 14): (warm start, START_MINIBATCH, MAX_MINIBATCHES) of a
#: 3-epoch run over two copies with P = 3 minibatches per epoch, the last one short.
RESUMED = {
    "warm_mid_epoch_to_mid_epoch": (True, 2, 3),   # epoch 0's last minibatch, epoch 1's first two (copy 1)
    "cold_from_epoch_1_to_the_end": (False, 4, 0),  # mid-epoch 1 to the end of epoch 2 (copy 0 again)
}


@cocotb.test()
@cocotb.parametrize(case=list(RESUMED))
async def resumed_run_matches_golden_or_is_not_built(dut, case):
    """WARM_START / START_MINIBATCH / MAX_MINIBATCHES under the CCI-P stress model: an engine with
    RESUME in BUILT (the woven core) writes the golden model's snapshots (the partial one too) and
    records; one without it (the planes core) refuses with NOT_BUILT and writes no model."""
    from lowbit.contract.registers import Built

    tb = TB(dut, seed=SEED0 + 7000)
    caps = await tb.setup()
    built = Built(await tb.read_reg("BUILT"))
    warm, start, count = RESUMED[case]
    group = caps["LINE_BITS"] // ROW_ALIGN
    p = fit_to_engine(dict(rows=5 * group, features=min(70, caps["MAX_FEATURES"]), bits=3, batch=2 * group), caps)
    rng = np.random.default_rng([SEED0 + 7000, 2])
    ds = make_dataset(rng, rows=p["rows"], features=p["features"], bits=3, copies=2, line_bits=caps["LINE_BITS"],
                      layout=p["layout"])
    model_in = rng.integers(-(1 << 24), 1 << 24, p["features"]).astype(np.int32) if warm else None
    cfg = EngineConfig(rows=p["rows"], features=p["features"], bits=3, batch=p["batch"], epochs=3,
                       step=step_to_fixed(0.5 / (p["features"] * p["batch"])), copies=2, warm_start=warm,
                       start_minibatch=start, max_minibatches=count)
    if not built & Built.RESUME:
        await expect_not_built(tb, ds, cfg, run_id=8, model_in=model_in)
        return
    gold = golden.run(cfg, ds.codes, ds.labels_q, ds.table_m, ds.table_e, model_in=model_in)
    res = await tb.train(ds, cfg, run_id=9, model_in=model_in)
    scoreboard(res, gold, cfg, ds.fmt, 9)
    assert gold.partial == (case == "warm_mid_epoch_to_mid_epoch")
    tb.check()


PIPELINED = {
    # rows (in groups of W/32), bits, loss, l2: one group a minibatch (BATCH = W/32)
    "least_squares_b1": (5, 1, Loss.SQUARED, 0),
    "least_squares_l2_b8": (4, 8, Loss.SQUARED, 1 << 22),
    "logistic_b3": (6, 3, Loss.LOGISTIC, 0),
}


@cocotb.test()
@cocotb.parametrize(case=list(PIPELINED))
async def pipelined_run_matches_golden_or_is_not_built(dut, case):
    """MODEL_DELAY 1 (pipelined SGD: residuals against the model one minibatch old) under the CCI-P
    stress model: an engine with DELAYED in BUILT (the woven core) writes the golden model's
    snapshots and records bit for bit; one without it (the planes core) refuses with NOT_BUILT."""
    tb = TB(dut, seed=SEED0 + 7100 + list(PIPELINED).index(case))
    caps = await tb.setup()
    built = Built(await tb.read_reg("BUILT"))
    groups, bits, loss, l2 = PIPELINED[case]
    group = caps["LINE_BITS"] // ROW_ALIGN
    p = fit_to_engine(dict(rows=groups * group - 1, features=min(70, caps["MAX_FEATURES"]), bits=bits, batch=group),
                      caps)
    rng = np.random.default_rng([SEED0 + 7100, bits])
    ds = make_dataset(rng, rows=p["rows"], features=p["features"], bits=bits, copies=2, line_bits=caps["LINE_BITS"],
                      layout=p["layout"])
    if loss != Loss.SQUARED:
        ds.labels_q[:] = np.where(ds.labels_q > 0, 1 << 24, -(1 << 24))
    cfg = EngineConfig(rows=p["rows"], features=p["features"], bits=bits, batch=p["batch"], epochs=3,
                       step=step_to_fixed(2.0 / (p["features"] * p["batch"])), copies=2, loss=int(loss), l2=l2,
                       model_delay=1)
    if not built & Built.DELAYED:
        await expect_not_built(tb, ds, cfg, run_id=10)
        return
    gold = golden.run(cfg, ds.codes, ds.labels_q, ds.table_m, ds.table_e)
    exact = golden.run(dataclasses.replace(cfg, model_delay=0), ds.codes, ds.labels_q, ds.table_m, ds.table_e)
    assert not np.array_equal(gold.models, exact.models), "the case must tell pipelined from exact SGD"
    res = await tb.train(ds, cfg, run_id=11)
    scoreboard(res, gold, cfg, ds.fmt, 11)
    tb.check()
