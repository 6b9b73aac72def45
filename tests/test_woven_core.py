"""WovenCore end to end in Amaranth's simulator: bit-exact with lowbit.contract.golden.run.

The woven core reads one bit plane of 32 features x W/32 rows per line; these runs use 64- and
128-bit lines (2 and 4 rows per line) to keep the Python simulator fast. The same checks as
test_core_train's apply: every model snapshot, every epoch's loss, the line counters in each
record and the status record.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from core_models import make_problem
from lowbit.contract.golden import margins
from lowbit.contract.losses import label_signs
from lowbit.contract.quant import levels_to_fixed
from lowbit.contract.registers import MAX_DEGREE, Built, ErrorCode, Estimator, Loss, State
from lowbit_hw.core import TrainingCore
from lowbit_hw.board.top import BOARD_CORE_OPTIONS
from lowbit_hw.woven import WovenCore
from test_core_train import check_against_golden, simulate

SMALL = dict(line_bits=64, max_features=256)
#: The ULX3S build's core (lowbit_hw.board.top.board_woven_core) at the small size.
BOARD = dict(SMALL, **BOARD_CORE_OPTIONS)


def run_woven(problem, *, core_kw=SMALL, **kw):
    core_kw = dict(core_kw)
    return simulate(problem, core_kw=core_kw, core_cls=WovenCore, **kw)


CASES = [
    # rows, features, bits, batch, epochs, copies, line_bits
    (8, 40, 2, 2, 2, 1, 64),      # F not a multiple of 32, several minibatches
    (7, 33, 1, 8, 2, 2, 64),      # N odd (last group padded), batch > N, two copies
    (12, 64, 4, 4, 1, 1, 64),
    (9, 100, 8, 2, 2, 1, 64),     # b = 8 (nine planes), odd N
    (16, 31, 3, 4, 2, 1, 128),    # four rows per line
    (5, 1, 5, 2, 3, 1, 64),       # F = 1: one-chunk groups, the group gap matters
    (6, 256, 6, 6, 1, 1, 64),     # F = the build's maximum
]


@pytest.mark.parametrize("rows,features,bits,batch,epochs,copies,line_bits", CASES)
def test_woven_core_equals_golden(rows, features, bits, batch, epochs, copies, line_bits):
    problem = make_problem(rows=rows, features=features, bits=bits, batch=batch, epochs=epochs,
                           copies=copies, line_bits=line_bits, seed=rows * 31 + bits, layout="woven")
    result = run_woven(problem, core_kw=dict(line_bits=line_bits, max_features=256))
    check_against_golden(problem, *result)


@pytest.mark.parametrize("loss,bits", [(Loss.SQUARED, 1), (Loss.SQUARED, 2), (Loss.LOGISTIC, 4), (Loss.HINGE, 1)])
def test_woven_core_without_chebyshev_or_l2_equals_golden(loss, bits):
    """The board's build (``l2=False, chebyshev=False``: their controls held at 0; no pipelined
    SGD; the update a quarter chunk a cycle) runs what it was built for bit for bit as the full core
    does: every loss, naive, warm-started mid-epoch (the priming pass too)."""
    problem = make_problem(rows=12, features=40, bits=bits, batch=4, epochs=2, copies=2, seed=7 + bits,
                           layout="woven", loss=loss, step=0.2, model_in=_model(40, 7), start_minibatch=1,
                           max_minibatches=4)
    check_against_golden(problem, *run_woven(problem, core_kw=BOARD))


def test_woven_core_saturating_labels():
    """Large labels saturate r and the update (sat32 everywhere): still bit-exact."""
    problem = make_problem(rows=8, features=40, bits=2, batch=2, epochs=2, step=0.9, seed=5,
                           label_scale=40.0, layout="woven")
    check_against_golden(problem, *run_woven(problem))


def test_woven_core_refuses_a_table_that_is_not_affine():
    """Levels that are not evenly spaced (optimal levels) cannot be summed plane by plane."""
    levels = levels_to_fixed(np.array([-1.0, -0.3, 0.1, 1.0]))
    problem = make_problem(rows=4, features=8, bits=2, batch=2, layout="woven", levels_q=levels)
    _, status, *_ = run_woven(problem)
    assert status.state == State.ERROR and status.error == ErrorCode.BAD_TABLE


def test_woven_core_refuses_a_batch_across_groups():
    problem = make_problem(rows=8, features=8, bits=2, batch=3, layout="woven")
    _, status, *_ = run_woven(problem)
    assert status.state == State.ERROR and status.error == ErrorCode.BATCH_NOT_WOVEN


SETTINGS = [dict(loss=Loss.LOGISTIC), dict(loss=Loss.HINGE), dict(l2=1 << 20),
            dict(estimator=Estimator.CHEBYSHEV, degree=1, copies=2),
            dict(warm_start=1), dict(start_minibatch=1), dict(max_minibatches=1), dict(model_delay=1)]
#: The builds whose BUILT lacks something: (core class, constructor arguments, BUILT).
BUILDS = [(WovenCore, dict(SMALL), WovenCore.built), (WovenCore, dict(SMALL, l2=False), WovenCore.built & ~Built.L2),
          (WovenCore, dict(SMALL, chebyshev=False), WovenCore.built & ~Built.CHEBYSHEV),
          (WovenCore, dict(SMALL, delayed=False), WovenCore.built & ~Built.DELAYED),
          (TrainingCore, {}, TrainingCore.built)]


def _needs(setting):
    return dataclasses.replace(make_problem(rows=4, features=8, bits=2, batch=2).cfg, **setting).needs()


@pytest.mark.parametrize("setting,core_cls,core_kw,built", [
    pytest.param(setting, cls, kw, built, id=f"{cls.__name__}{'-no-l2' if kw.get('l2') is False else ''}"
                                             f"{'-no-cheb' if kw.get('chebyshev') is False else ''}"
                                             f"{'-no-delay' if kw.get('delayed') is False else ''}-{i}")
    for cls, kw, built in BUILDS for i, setting in enumerate(SETTINGS) if _needs(setting) & ~built])
def test_cores_refuse_what_they_were_not_built_for(setting, core_cls, core_kw, built):
    """A core refuses what it was not built for (its BUILT register): LOSS, L2, ESTIMATOR,
    WARM_START, START_MINIBATCH or MAX_MINIBATCHES needing a datapath it lacks is NOT_BUILT, as the
    spec of an engine built without it says, never a plain run under another name."""
    problem = make_problem(rows=4, features=8, bits=2, batch=2, layout="woven" if core_cls is WovenCore else "planes")
    problem = dataclasses.replace(problem, cfg=dataclasses.replace(problem.cfg, **setting))
    assert problem.cfg.error(max_features=256, built=built) is ErrorCode.NOT_BUILT
    _, status, *_ = simulate(problem, core_cls=core_cls, **({"core_kw": core_kw} if core_kw else {}))
    assert status.state == State.ERROR and status.error == ErrorCode.NOT_BUILT


def test_woven_core_l2_is_a_checked_build_option():
    """``l2=False`` leaves the L2 datapath out and says so in ``built``; anything but a bool is refused."""
    with_l2, without = WovenCore(**SMALL), WovenCore(**SMALL, l2=False)
    with_l2._MustUse__silence = without._MustUse__silence = True  # (not elaborated here)
    assert Built.L2 in WovenCore.built and with_l2.built == WovenCore.built
    assert without.built == WovenCore.built & ~Built.L2
    with pytest.raises(ValueError, match="l2"):
        WovenCore(**SMALL, l2=1)
    from lowbit_hw.board.top import board_woven_core  # the ULX3S build leaves L2 out (block RAM)

    board = board_woven_core(line_bits=64, lanes=32, max_features=256)
    board._MustUse__silence = True
    assert board.built == WovenCore.built & ~Built.L2 & ~Built.CHEBYSHEV & ~Built.DELAYED
    assert {k: getattr(board, k) for k in BOARD} == BOARD   # what the tests here run as "the board's build"
    no_cheb = WovenCore(**SMALL, chebyshev=False)
    no_cheb._MustUse__silence = True
    assert no_cheb.built == WovenCore.built & ~Built.CHEBYSHEV
    with pytest.raises(ValueError, match="chebyshev"):
        WovenCore(**SMALL, chebyshev="no")
    no_delay = WovenCore(**SMALL, delayed=False)
    no_delay._MustUse__silence = True
    assert no_delay.built == WovenCore.built & ~Built.DELAYED and Built.DELAYED in WovenCore.built
    with pytest.raises(ValueError, match="delayed"):
        WovenCore(**SMALL, delayed=1)
    for lanes, l2 in ((8, True), (4, False)):  # a quarter chunk a cycle only without L2's second pass
        with pytest.raises(ValueError, match="update_lanes"):
            WovenCore(**SMALL, l2=l2, update_lanes=lanes)
    # G, q and L2's term follow block_ram unless told otherwise
    rams = [WovenCore(**SMALL, block_ram=b, gq_block_ram=g) for b, g in ((True, None), (False, None), (False, True))]
    for core in rams:
        core._MustUse__silence = True
    assert [core.gq_block_ram for core in rams] == [True, False, True]
    with pytest.raises(ValueError, match="gq_block_ram"):
        WovenCore(**SMALL, gq_block_ram="block")


def test_g_and_q_are_read_through_an_output_register_only_from_block_ram():
    """From block RAM (the 512-bit build's) G and q come through the DP16KD's output register (in
    the simulators a register after the read port); from LUT RAM (the board's) in one cycle, with
    no such register: there it was 3.6k flip-flops for nothing (docs/board.md, fifteenth pass)."""
    from amaranth.back import rtlil

    from lowbit_hw.woven.gradient import WovenGradientUnit

    core = WovenCore(**SMALL, l2=False)  # for its sizes: the gradient unit is converted alone (a third of the time)
    core._MustUse__silence = True

    def registers(**kw):
        text = rtlil.convert(WovenGradientUnit(line_bits=SMALL["line_bits"], max_chunks=core.max_chunks,
                                               slot_lines=core.slot_lines, l2=False, **kw))
        return {name for name in ("g_mem_r_reg", "q_mem_r_reg") if name in text}

    assert registers(block_ram=True) == {"g_mem_r_reg", "q_mem_r_reg"}
    assert registers(block_ram=False) == set()
    assert registers(block_ram=False, gq_block_ram=True) == {"g_mem_r_reg", "q_mem_r_reg"}


# ------------------------------------------------------------------ resumable runs (issue 14, RESUME)
def _model(features, seed, scale=1 << 24):
    """A start model (int32 at 2^-24) of magnitude ~``scale``: large enough that q = rnd(e_odd w, 8) matters."""
    return np.random.default_rng(seed).integers(-scale, scale, features).astype(np.int32)


RESUMED = [
    # rows, features, bits, batch, epochs, copies, line_bits, warm, start, count; P = ceil(rows / batch)
    (16, 40, 2, 4, 2, 2, 64, True, 0, 0),     # warm start, the whole schedule
    (16, 40, 2, 4, 2, 2, 64, False, 1, 2),    # starts and ends mid-epoch (minibatches 1, 2 of epoch 0)
    (14, 33, 3, 4, 3, 2, 64, True, 3, 2),     # P = 4: the short last minibatch ends epoch 0, then one of epoch 1
    (14, 33, 3, 4, 3, 2, 64, True, 6, 0),     # from mid-epoch 1 (copy 1) to the end: three snapshots
    (9, 64, 4, 16, 3, 2, 64, True, 1, 1),     # batch > rows (P = 1): exactly epoch 1, copy 1
    (24, 31, 1, 8, 2, 1, 128, True, 2, 3),    # four rows per line: epoch 0's last minibatch, epoch 1's first two
    (10, 70, 8, 2, 2, 1, 64, True, 4, 0),     # b = 8, three chunks: a partial epoch 0, then epoch 1
]


@pytest.mark.parametrize("rows,features,bits,batch,epochs,copies,line_bits,warm,start,count", RESUMED)
def test_woven_core_resumed_runs_equal_golden(rows, features, bits, batch, epochs, copies, line_bits, warm, start,
                                              count):
    """WARM_START (the model read from MODEL_IN_ADDR, q computed for it), START_MINIBATCH and
    MAX_MINIBATCHES: a snapshot and record per segment (the partial one too), each equal to the
    golden model's, and each segment reads only its rows' lines (the commands are checked)."""
    problem = make_problem(rows=rows, features=features, bits=bits, batch=batch, epochs=epochs, copies=copies,
                           line_bits=line_bits, seed=rows + 7 * start, layout="woven",
                           model_in=_model(features, start) if warm else None, start_minibatch=start,
                           max_minibatches=count)
    assert problem.cfg.needs() & WovenCore.built
    result = run_woven(problem, core_kw=dict(line_bits=line_bits, max_features=256))
    check_against_golden(problem, *result)
    assert problem.golden.partial == (result[2].shape[0] > 0 and (start + count) % -(-rows // batch) != 0
                                      and count != 0)


def test_woven_core_run_cut_in_two_equals_the_uncut_run():
    """The first run stops mid-epoch; the second warm-starts from its last snapshot: together they
    give the uncut run's models, and the epoch losses add up."""
    kw = dict(rows=12, features=40, bits=2, batch=4, epochs=2, copies=2, seed=3, layout="woven")
    whole = make_problem(**kw)
    first = make_problem(**kw, max_minibatches=4)  # P = 3: epoch 0, then minibatch 0 of epoch 1
    r_whole, r_first = run_woven(whole), run_woven(first)
    check_against_golden(whole, *r_whole)
    check_against_golden(first, *r_first)
    second = make_problem(**kw, model_in=r_first[2][-1, :40], start_minibatch=4)
    r_second = run_woven(second)
    check_against_golden(second, *r_second)
    np.testing.assert_array_equal(r_first[2][0], r_whole[2][0])
    np.testing.assert_array_equal(r_second[2][-1], r_whole[2][-1])
    assert r_first[3][1]["loss"] + r_second[3][0]["loss"] == r_whole[3][1]["loss"]


@pytest.mark.parametrize("loss", [Loss.LOGISTIC, Loss.HINGE])
def test_woven_core_resumed_classification_runs_equal_golden(loss):
    """The two optional datapaths together: a warm-started run of logistic or hinge loss that starts
    and stops mid-epoch equals the golden model (the priming pass computes q with e_odd = 0)."""
    problem = make_problem(rows=16, features=40, bits=2, batch=4, epochs=2, copies=2, seed=11, layout="woven",
                           model_in=_model(40, 11), start_minibatch=1, max_minibatches=5, loss=loss, classes="01")
    assert problem.cfg.needs() == Built.NONLINEAR | Built.RESUME
    check_against_golden(problem, *run_woven(problem, core_kw=dict(line_bits=64, max_features=256)))


def test_woven_core_refuses_a_start_past_the_end():
    """START_MINIBATCH >= EPOCHS * P: BAD_START, after the core's own checks, with nothing read."""
    problem = make_problem(rows=8, features=8, bits=2, batch=4, epochs=2, layout="woven", start_minibatch=4)
    assert problem.cfg.error(max_features=256) is ErrorCode.BAD_START
    shell, status, _, _, srec = run_woven(problem)
    assert status.state == State.ERROR and status.error == ErrorCode.BAD_START
    assert srec["error"] == ErrorCode.BAD_START and shell.commands == []
    bad_batch = make_problem(rows=8, features=8, bits=2, batch=3, layout="woven", start_minibatch=9)
    _, status, *_ = run_woven(bad_batch)
    assert status.error == ErrorCode.BATCH_NOT_WOVEN



def _reset_at_then_run(first_cfg, first_run_id, p, at, *, cycles):
    """A ``simulate`` script: start a run of ``first_cfg``, RESET it ``at`` cycles in, wait (at
    most ``cycles``) for IDLE, forget what the shell saw, then start ``p``'s run on the same core."""
    from core_models import pulse, set_config

    async def script(ctx, core, shell):
        set_config(ctx, core, first_cfg, first_run_id)
        await pulse(ctx, core.start)
        sigs = shell.signals()
        for cycle in range(cycles):
            ctx.set(core.reset, cycle == at)
            shell.drive(ctx)
            st = shell.observe((await ctx.tick().sample(*sigs))[2:])
            if cycle > at and st.state == State.IDLE:
                break
        else:
            raise AssertionError("reset did not return to IDLE")
        ctx.set(core.reset, 0)
        for _ in range(5):
            shell.drive(ctx)
            shell.observe((await ctx.tick().sample(*sigs))[2:])
        shell.writes.clear()
        shell.write_log.clear()
        shell.commands.clear()
        set_config(ctx, core, p.cfg, p.run_id)
        await pulse(ctx, core.start)

    return script


# Cycles into this run (the shell model's seed 1), as measured when the ids were chosen:
# RunSchedule until ~280, the model's 32 lines ~290-327, the priming pass until ~388, then the
# first segment. Session 5's faster start (the model read at CHECK, the shorter schedule and
# priming pass) moved these phases earlier; the cut points were not re-measured, so the ids
# name the phases they were chosen for, and the resets now land at other moments of the start.
@pytest.mark.parametrize("at,core_kw", [(60, SMALL), (310, SMALL), (350, SMALL), (450, SMALL), (350, BOARD),
                                        (450, BOARD)],
                         ids=["schedule", "loading", "priming", "segment", "board-priming", "board-segment"])
def test_woven_core_reset_during_a_resumed_run_then_the_run_is_exact(at, core_kw):
    """RESET ``at`` cycles into a warm-started bounded run (the schedule, the model's load, the
    priming pass or the first segment): back to IDLE, and another run started then is exact (the
    aborted one had other START_MINIBATCH / MAX_MINIBATCHES, so nothing of its schedule survives)."""

    p = make_problem(rows=12, features=40, bits=2, batch=4, epochs=2, copies=2, seed=8, layout="woven",
                     model_in=_model(40, 8), start_minibatch=1, max_minibatches=3)

    first = dataclasses.replace(p.cfg, start_minibatch=2, max_minibatches=1)
    script = _reset_at_then_run(first, p.run_id, p, at, cycles=1000)
    check_against_golden(p, *simulate(p, core_kw=core_kw, core_cls=WovenCore, script=script))


# ------------------------------------------------------------------ logistic and hinge (issue 13)
NONLINEAR_CASES = [
    # loss, classes, rows, features, bits, batch, epochs, copies, line_bits
    (Loss.LOGISTIC, "pm1", 8, 40, 1, 2, 2, 1, 64),    # b = 1, several minibatches, F not a multiple of 32
    (Loss.LOGISTIC, "01", 7, 33, 2, 8, 2, 2, 64),     # {0, 1} labels, N odd (padded group), batch > N, two copies
    (Loss.LOGISTIC, "pm1", 9, 100, 8, 2, 2, 1, 64),   # b = 8 (nine planes)
    (Loss.LOGISTIC, "01", 16, 31, 4, 4, 2, 1, 128),   # four rows per line
    (Loss.LOGISTIC, "pm1", 5, 1, 3, 2, 3, 1, 64),     # F = 1: one-chunk groups
    (Loss.LOGISTIC, "01", 12, 20, 1, 4, 2, 2, 64),    # b = 1, one chunk: two-line groups, dot products 2 cycles apart
    (Loss.HINGE, "pm1", 8, 40, 1, 2, 2, 1, 64),
    (Loss.HINGE, "01", 7, 33, 4, 8, 2, 2, 64),
    (Loss.HINGE, "pm1", 9, 100, 8, 2, 2, 1, 64),
    (Loss.HINGE, "01", 16, 31, 2, 4, 2, 3, 128),
]


@pytest.mark.parametrize("loss,classes,rows,features,bits,batch,epochs,copies,line_bits", NONLINEAR_CASES)
def test_woven_core_nonlinear_losses_equal_golden(loss, classes, rows, features, bits, batch, epochs, copies,
                                                  line_bits):
    """LOSS logistic / hinge (naive estimator): every snapshot and every epoch's loss as the golden
    model's, with either label convention (the engine reads y > 0 as class +1)."""
    problem = make_problem(rows=rows, features=features, bits=bits, batch=batch, epochs=epochs, copies=copies,
                           line_bits=line_bits, seed=rows * 7 + bits, layout="woven", loss=loss, classes=classes,
                           step=0.2)
    assert problem.cfg.error(max_features=256, built=WovenCore.built) is ErrorCode.NONE
    check_against_golden(problem, *run_woven(problem, core_kw=dict(line_bits=line_bits, max_features=256)))


@pytest.mark.parametrize("loss", [Loss.LOGISTIC, Loss.HINGE])
def test_woven_core_nonlinear_misclassified_rows(loss):
    """Rows in the wrong class (not separable: 16 rows, 5 features) keep margins of both signs
    through the run, with a large step: still bit-exact. (The clamps, logistic's tail and the
    saturations are reached in tests/test_woven_margin.py, which drives the unit directly.)"""
    problem = make_problem(rows=16, features=5, bits=4, batch=2, epochs=3, step=0.9, seed=12, layout="woven",
                           loss=loss, flip=0.3)
    M = problem.table_m[problem.codes[0]]
    t = margins(M, problem.golden.models[-1].astype(np.int64), label_signs(problem.labels))
    assert (t < -(1 << 24)).any() and (t > 1 << 24).any()
    check_against_golden(problem, *run_woven(problem))


@pytest.mark.parametrize("setting, error", [(dict(loss=3), ErrorCode.BAD_LOSS),
                                            (dict(loss=Loss.LOGISTIC, estimator=2), ErrorCode.BAD_ESTIMATOR)])
def test_woven_core_refuses_a_bad_loss_or_estimator(setting, error):
    """LOSS and ESTIMATOR.KIND values that name nothing are refused as the spec says."""
    problem = make_problem(rows=4, features=8, bits=2, batch=2, layout="woven")
    problem = dataclasses.replace(problem, cfg=dataclasses.replace(problem.cfg, **setting))
    assert problem.cfg.error(max_features=256, built=WovenCore.built) is error
    _, status, *_ = run_woven(problem)
    assert status.state == State.ERROR and status.error == error


def test_the_host_knows_what_each_sim_engine_was_built_with():
    """lowbit.driver.sim_engines.SIM_BUILT (the CLI's refusals before a device is open) is each
    simulated engine's core's own ``built``: it cannot drift from the RTL."""
    from lowbit.driver.sim_engines import SIM_BUILT, SIM_ENGINES

    cores = {"woven": WovenCore, "planes": TrainingCore}
    assert set(SIM_BUILT) == set(SIM_ENGINES) == set(cores)
    assert {name: cores[SIM_ENGINES[name]["core"]].built for name in SIM_ENGINES} == SIM_BUILT


# ------------------------------------------------------------------ L2 (issue 13)
L2_CASES = [
    # loss, bits, rows, features, batch, epochs, copies, line_bits, l2 (uint32 at 2^-32)
    (Loss.SQUARED, 1, 8, 40, 2, 2, 1, 64, 1 << 29),       # b = 1: least squares' update padded 2 cycles a chunk
    (Loss.SQUARED, 2, 7, 33, 8, 2, 2, 64, 3 << 27),       # b = 2 (padded 1), N odd, batch > N, two copies
    (Loss.SQUARED, 3, 9, 100, 2, 2, 1, 64, (1 << 32) - 1),  # b = 3 (no padding), the largest L2
    (Loss.SQUARED, 8, 16, 31, 4, 2, 1, 128, 1 << 28),     # b = 8, four rows per line
    (Loss.SQUARED, 2, 5, 1, 2, 3, 1, 64, 1 << 30),        # F = 1: one-chunk groups
    (Loss.LOGISTIC, 1, 8, 40, 2, 2, 1, 64, 1 << 29),      # other losses: L2 in q's place, no padding
    (Loss.LOGISTIC, 4, 16, 31, 4, 2, 2, 128, 5 << 26),
    (Loss.HINGE, 2, 7, 33, 8, 2, 2, 64, 3 << 28),
    (Loss.HINGE, 8, 9, 100, 2, 2, 1, 64, 1 << 27),
]


@pytest.mark.parametrize("loss,bits,rows,features,batch,epochs,copies,line_bits,l2", L2_CASES)
def test_woven_core_l2_equals_golden(loss, bits, rows, features, batch, epochs, copies, line_bits, l2):
    """L2 != 0 (``G_j += n_b rnd(L2 w0_j, 17)`` before each update) for every loss: every snapshot
    and loss as the golden model's, and the L2 term changes the models (the test can fail)."""
    kw = dict(rows=rows, features=features, bits=bits, batch=batch, epochs=epochs, copies=copies,
              line_bits=line_bits, seed=rows * 5 + bits, layout="woven", loss=loss, step=0.2)
    problem = make_problem(**kw, l2=l2)
    assert problem.cfg.needs() & Built.L2
    assert not np.array_equal(problem.golden.models, make_problem(**kw).golden.models)
    check_against_golden(problem, *run_woven(problem, core_kw=dict(line_bits=line_bits, max_features=256)))


@pytest.mark.parametrize("loss", [Loss.SQUARED, Loss.LOGISTIC])
def test_woven_core_l2_in_resumed_runs_equals_golden(loss):
    """A warm-started run that starts and stops mid-epoch with L2: the priming pass computes the
    loaded model's L2 term (and q), so the first minibatch's update uses it."""
    kw = dict(rows=16, features=40, bits=2, batch=4, epochs=2, copies=2, seed=13, layout="woven",
              model_in=_model(40, 13), start_minibatch=1, max_minibatches=5, loss=loss, step=0.2)
    problem = make_problem(**kw, l2=1 << 29)
    assert problem.cfg.needs() & Built.L2 and problem.cfg.needs() & Built.RESUME
    assert not np.array_equal(problem.golden.models[0], make_problem(**kw).golden.models[0])
    check_against_golden(problem, *run_woven(problem))


def test_woven_core_l2_run_after_a_run_without_is_exact():
    """The L2 term's RAM is cleared at START: a run with L2 = 0 after one with L2 != 0 is the
    plain run (and the other way round), on the same core."""
    from core_models import pulse, set_config

    kw = dict(rows=8, features=40, bits=2, batch=2, epochs=1, seed=4, layout="woven")
    first, second = make_problem(**kw, l2=1 << 30), make_problem(**kw)

    async def script(ctx, core, shell):
        set_config(ctx, core, first.cfg, first.run_id)
        await pulse(ctx, core.start)
        sigs = shell.signals()
        for _ in range(5000):
            shell.drive(ctx)
            if shell.observe((await ctx.tick().sample(*sigs))[2:]).state != State.BUSY:
                break
        shell.writes.clear()
        shell.write_log.clear()
        shell.commands.clear()
        set_config(ctx, core, second.cfg, second.run_id)
        await pulse(ctx, core.start)

    check_against_golden(second, *simulate(second, core_kw=SMALL, core_cls=WovenCore, script=script))


# ------------------------------------------------------------------ the Chebyshev estimator (issue 13)
CHEBYSHEV_CASES = [
    # loss, degree, range, copies, bits, rows, features, batch, epochs, line_bits, l2
    (Loss.LOGISTIC, 1, 2, 2, 2, 8, 40, 2, 2, 64, 0),     # d = 1 on two copies: epoch 1 reads copies 1, 0
    (Loss.HINGE, 2, 0, 3, 1, 7, 33, 8, 2, 64, 0),        # b = 1, N odd, batch > N
    (Loss.LOGISTIC, 3, 4, 5, 3, 9, 100, 2, 3, 64, 0),    # K = 5 > d + 1: the factors' copies wrap past the last
    (Loss.HINGE, 4, 3, 5, 4, 16, 31, 4, 2, 128, 0),      # four rows per line
    (Loss.LOGISTIC, 5, 7, 7, 8, 6, 70, 2, 2, 64, 0),     # b = 8, RANGE 7
    (Loss.HINGE, 6, 1, 8, 2, 5, 1, 2, 2, 64, 0),         # F = 1: two-line factors (the factor gap)
    (Loss.LOGISTIC, 7, 5, 9, 1, 4, 20, 2, 2, 64, 0),     # b = 1, one chunk: two-line factors
    (Loss.HINGE, MAX_DEGREE, 2, 9, 2, 8, 40, 4, 2, 64, 0),
    (Loss.LOGISTIC, 2, 3, 3, 2, 8, 40, 2, 2, 64, 1 << 29),   # with L2
]


@pytest.mark.parametrize("loss,degree,margin_range,copies,bits,rows,features,batch,epochs,line_bits,l2",
                         CHEBYSHEV_CASES)
def test_woven_core_chebyshev_equals_golden(loss, degree, margin_range, copies, bits, rows, features, batch, epochs,
                                            line_bits, l2):
    """ESTIMATOR.KIND chebyshev, d = 1..MAX_DEGREE: each row's margins from d + 1 copies, Horner as
    golden.horner, G from factor 0: every snapshot and loss as the golden model's, the data read
    as one command per group and factor (check_against_golden), and the estimator changes the
    models (the test can fail)."""
    kw = dict(rows=rows, features=features, bits=bits, batch=batch, epochs=epochs, copies=copies, line_bits=line_bits,
              seed=rows * 3 + degree, layout="woven", loss=loss, step=0.2, l2=l2)
    problem = make_problem(**kw, degree=degree, margin_range=margin_range)
    assert problem.cfg.needs() & Built.CHEBYSHEV and problem.cfg.factors() == degree + 1
    assert not np.array_equal(problem.golden.models, make_problem(**kw).golden.models)
    check_against_golden(problem, *run_woven(problem, core_kw=dict(line_bits=line_bits, max_features=256)))


@pytest.mark.parametrize("warm,start,count", [(True, 1, 5), (False, 3, 0)])
def test_woven_core_chebyshev_in_resumed_runs_equals_golden(warm, start, count):
    """Warm-started and bounded Chebyshev runs: a segment that starts mid-epoch reads each factor's
    copy from the same group on (epoch 1's factor 0 is copy 1, its factor 2 copy 0)."""
    problem = make_problem(rows=16, features=40, bits=2, batch=4, epochs=2, copies=3, seed=17, layout="woven",
                           model_in=_model(40, 17) if warm else None, start_minibatch=start, max_minibatches=count,
                           loss=Loss.LOGISTIC, step=0.2, degree=2, margin_range=3)
    assert problem.cfg.needs() & Built.RESUME
    check_against_golden(problem, *run_woven(problem))


@pytest.mark.parametrize("setting", [dict(degree=0), dict(degree=3), dict(loss=Loss.SQUARED)])
def test_woven_core_refuses_a_bad_chebyshev_estimator(setting):
    """KIND chebyshev with DEGREE 0, more factors than COPIES, or least squares: BAD_ESTIMATOR."""
    problem = make_problem(rows=4, features=8, bits=2, batch=2, copies=3, layout="woven", loss=Loss.HINGE,
                           degree=1)
    cfg = dataclasses.replace(problem.cfg, **setting)
    assert cfg.error(max_features=256, built=WovenCore.built) is ErrorCode.BAD_ESTIMATOR
    _, status, *_ = run_woven(dataclasses.replace(problem, cfg=cfg))
    assert status.state == State.ERROR and status.error == ErrorCode.BAD_ESTIMATOR


@pytest.mark.parametrize("at", [150, 400])
def test_woven_core_reset_during_a_chebyshev_run_then_the_run_is_exact(at):
    """RESET while the interleaver is issuing a segment's per-group commands (the shell takes a
    command one cycle in twenty, so it is mid-segment): the abort waits for the command being
    offered, drops the rest, drains the lines, and the next run (another degree) is exact."""
    first = make_problem(rows=16, features=40, bits=2, batch=4, epochs=2, copies=4, seed=21, layout="woven",
                         loss=Loss.HINGE, degree=3)
    p = make_problem(rows=16, features=40, bits=2, batch=4, epochs=2, copies=4, seed=21, layout="woven",
                     loss=Loss.LOGISTIC, degree=2, margin_range=3)

    script = _reset_at_then_run(first.cfg, first.run_id, p, at, cycles=2000)
    check_against_golden(p, *simulate(p, core_kw=SMALL, core_cls=WovenCore, script=script,
                                      shell_kw=dict(p_cmd=0.05)))


# Pipelined SGD (MODEL_DELAY 1): one group a minibatch (BATCH = W/32 rows, or >= ROWS).
DELAY_CASES = [
    # rows, features, bits, batch, epochs, line_bits, extra
    (8, 40, 2, 2, 2, 64, {}),          # several minibatches, F not a multiple of 32
    (9, 100, 1, 2, 2, 64, {}),         # b = 1, odd N (a padded last group), four chunks
    (5, 1, 3, 2, 2, 64, {}),           # F = 1: one-chunk groups, q written just before it is read
    (16, 31, 4, 4, 1, 128, {}),        # four rows per line
    (10, 64, 8, 2, 2, 64, dict(l2=1 << 22)),                 # b = 8, L2 (least squares' two passes)
    (12, 40, 2, 2, 2, 64, dict(loss=Loss.LOGISTIC, l2=1 << 21)),
    (12, 40, 3, 2, 1, 64, dict(loss=Loss.HINGE, model_in=None, start_minibatch=2, max_minibatches=3)),
    (7, 33, 2, 8, 2, 64, {}),          # BATCH >= ROWS: one minibatch an epoch, as exact SGD
]


@pytest.mark.parametrize("rows,features,bits,batch,epochs,line_bits,extra", DELAY_CASES)
def test_woven_core_pipelined_sgd_equals_golden(rows, features, bits, batch, epochs, line_bits, extra):
    """MODEL_DELAY 1: each minibatch's residuals from the model before the previous minibatch's
    update, its update, correction and L2 from the current one; every snapshot, loss and counter
    as golden says, and the models differ from exact SGD's (the delay is real)."""
    extra = dict(extra)
    if "start_minibatch" in extra:
        extra["model_in"] = _model(features, rows, scale=1 << 18)  # small: the hinge is active
    problem = make_problem(rows=rows, features=features, bits=bits, batch=batch, epochs=epochs, line_bits=line_bits,
                           seed=rows * 7 + bits, layout="woven", step=0.2, model_delay=1, **extra)
    result = run_woven(problem, core_kw=dict(line_bits=line_bits, max_features=256))
    check_against_golden(problem, *result)
    exact = dataclasses.replace(problem.cfg, model_delay=0)
    from lowbit.contract.golden import run
    same = np.array_equal(run(exact, problem.codes, problem.labels, problem.table_m, problem.table_e,
                              model_in=problem.model_in).models, problem.golden.models)
    assert same == (batch >= rows or -(-rows // batch) == 1)


@pytest.mark.parametrize("setting", [dict(batch=4), dict(estimator=Estimator.CHEBYSHEV, degree=1, copies=2,
                                                          loss=Loss.LOGISTIC)])
def test_woven_core_refuses_delay_it_cannot_pipeline(setting):
    """MODEL_DELAY with a minibatch of several groups (2 < BATCH < ROWS at 64-bit lines) or with
    the Chebyshev estimator is BAD_DELAY; the board's build (``delayed=False``) and the planes
    core lack it altogether: NOT_BUILT."""
    problem = make_problem(rows=8, features=8, bits=2, batch=2, layout="woven")
    cfg = dataclasses.replace(problem.cfg, model_delay=1, **setting)
    _, status, *_ = run_woven(dataclasses.replace(problem, cfg=cfg))
    assert status.state == State.ERROR and status.error == ErrorCode.BAD_DELAY


# ------------------------------------------------------------------ the half-chunk tail (tail_lanes = 16)
HALF_TAIL_CASES = [
    # rows, features, bits, batch, epochs, line_bits, core options, problem options
    (8, 40, 1, 2, 2, 64, {}, {}),                       # b = 1: last planes 2 cycles apart, the tightest
    (7, 33, 2, 8, 2, 64, {}, dict(copies=2)),           # N odd, batch > N, two copies
    (9, 100, 8, 2, 2, 64, {}, {}),                      # b = 8, four chunks
    (16, 31, 3, 4, 2, 128, {}, {}),                     # four rows per line
    (5, 1, 5, 2, 3, 64, {}, {}),                        # F = 1: one-chunk groups, the group gap
    (6, 256, 6, 6, 1, 64, {}, {}),                      # F = the build's maximum
    (8, 40, 1, 2, 2, 64, {}, dict(l2=1 << 29, step=0.2)),           # L2, least squares' two passes
    (12, 40, 2, 2, 2, 64, {}, dict(loss=Loss.LOGISTIC, l2=1 << 21, step=0.2, model_delay=1)),  # pipelined SGD
    (12, 40, 2, 4, 2, 64, BOARD_CORE_OPTIONS, dict(model_in=True, start_minibatch=1, max_minibatches=4,
                                                   step=0.2, copies=2)),   # the board's options, warm start
    (12, 40, 1, 4, 2, 64, BOARD_CORE_OPTIONS, dict(loss=Loss.HINGE, step=0.2)),
]


@pytest.mark.parametrize("rows,features,bits,batch,epochs,line_bits,core_opts,opts", HALF_TAIL_CASES)
def test_woven_core_with_the_half_chunk_tail_equals_golden(rows, features, bits, batch, epochs, line_bits,
                                                          core_opts, opts):
    """``tail_lanes=16``: G's new value of features 0-15, then 16-31 a cycle later, through half the
    tail's adders; bit for bit the golden model's, whatever the rest of the build."""
    opts = dict(opts)
    if opts.pop("model_in", False):
        opts["model_in"] = _model(features, rows)
    problem = make_problem(rows=rows, features=features, bits=bits, batch=batch, epochs=epochs, line_bits=line_bits,
                           seed=rows * 13 + bits, layout="woven", **opts)
    core_kw = dict(line_bits=line_bits, max_features=256, **core_opts, tail_lanes=16)
    check_against_golden(problem, *run_woven(problem, core_kw=core_kw))


def test_woven_core_with_the_half_chunk_tail_reset_mid_run_then_the_run_is_exact():
    p = make_problem(rows=12, features=40, bits=2, batch=4, epochs=2, copies=2, seed=8, layout="woven",
                     model_in=_model(40, 8), start_minibatch=1, max_minibatches=3)
    first = dataclasses.replace(p.cfg, start_minibatch=2, max_minibatches=1)
    script = _reset_at_then_run(first, p.run_id, p, 450, cycles=1000)
    check_against_golden(p, *simulate(p, core_kw=dict(BOARD, tail_lanes=16), core_cls=WovenCore, script=script))


def test_tail_lanes_is_a_checked_build_option():
    for bad in (8, 0, "16"):
        with pytest.raises(ValueError, match="tail_lanes"):
            WovenCore(**SMALL, tail_lanes=bad)
