"""The driver's resumable runs (lowbit.driver.train.Resume): a run cut into bounded, warm-started
pieces equals the uncut run; the woven engine (RESUME in BUILT) runs them bit-identical to the golden
model; engines without RESUME refuse, by name."""

from types import SimpleNamespace

import numpy as np
import pytest
from driver_fixtures import WOVEN_TEST_AFU, make_dataset, woven_server  # noqa: F401

from lowbit.contract.registers import Built
from lowbit.driver import open_device
from lowbit.driver.serial import SerialBackend
from lowbit.driver.sim import SimBackend
from lowbit.driver.train import Resume, train, train_golden

ARGS = dict(step=0.01, batch=8, epochs=2)


@pytest.fixture(scope="module")
def qds():
    # P = 4 minibatches per epoch, the last of 6 rows; 128-bit lines (the woven test engine's)
    return make_dataset(30, 7, bits=3, copies=2, seed=4, line_bits=WOVEN_TEST_AFU["line_bits"])


def test_pieces_equal_the_plain_run(qds):
    whole = train_golden(qds, **ARGS)
    first = train_golden(qds, **ARGS, resume=Resume(max_minibatches=3))
    assert first.partial and len(first.models) == 1
    second = train_golden(qds, **ARGS, resume=Resume(first.final_model, start_minibatch=3))
    assert not second.partial
    assert np.array_equal(second.models, whole.models)
    assert first.losses[0] + second.losses[0] == whole.losses[0]
    assert second.losses[1] == whole.losses[1]


def test_a_start_past_the_end_is_refused_before_any_work(qds):
    with pytest.raises(ValueError, match="BAD_START"):
        train_golden(qds, **ARGS, resume=Resume(start_minibatch=8))
    with pytest.raises(ValueError, match="max_minibatches"):
        train_golden(qds, **ARGS, resume=Resume(max_minibatches=-1))


@pytest.mark.parametrize("backend", [SimBackend, SerialBackend])
def test_engines_without_resume_refuse_a_resumed_run_in_one_line(qds, backend):
    device = SimpleNamespace(backend=SimpleNamespace(name=backend.name), built=Built.NONE)  # refused before use
    with pytest.raises(ValueError, match=f"the {backend.name} engine's RTL does not implement them") as exc:
        train(device, qds, **ARGS, resume=Resume(max_minibatches=2))
    assert "\n" not in str(exc.value)


@pytest.fixture(scope="module")
def woven_dev(woven_server):
    with open_device("sim", server=woven_server, memory=16 << 20, seed=3) as dev:
        yield dev


def test_the_woven_engine_has_resume(woven_dev):
    from lowbit_hw.woven import WovenCore

    assert woven_dev.built & Built.RESUME and WovenCore.built & Built.RESUME


@pytest.mark.parametrize("resume", [
    Resume(max_minibatches=3),                           # stops mid-epoch 0 (a partial snapshot)
    Resume(start_minibatch=3, max_minibatches=2),       # epoch 0's short last minibatch, then epoch 1's first
    Resume(np.arange(-3, 4, dtype=np.int32) << 20, start_minibatch=2),  # warm, from mid-epoch 0 to the end
    Resume(np.full(7, -(1 << 23), dtype=np.int32)),     # warm, the whole schedule
], ids=["bounded", "across-epochs", "warm-to-end", "warm-whole"])
def test_resumed_runs_on_the_woven_sim_engine_equal_the_golden_model(woven_dev, qds, resume):
    gold = train_golden(qds, **ARGS, resume=resume)
    res = train(woven_dev, qds, **ARGS, resume=resume, progress=False)
    assert np.array_equal(res.models, gold.models) and res.losses == gold.losses
    assert res.partial == gold.partial and len(res.models) == res.config.snapshots()


def test_a_plain_run_after_a_resumed_one_is_plain(woven_dev, qds):
    """The resume registers are programmed by every run: the next plain run starts from w = 0."""
    train(woven_dev, qds, **ARGS, resume=Resume(np.ones(7, dtype=np.int32) << 22, start_minibatch=5), progress=False)
    res = train(woven_dev, qds, **ARGS, progress=False)
    gold = train_golden(qds, **ARGS)
    assert np.array_equal(res.models, gold.models) and res.losses == gold.losses and not res.partial


def test_a_run_cut_in_two_on_the_engine_equals_the_uncut_run(woven_dev, qds):
    whole = train(woven_dev, qds, **ARGS, progress=False)
    first = train(woven_dev, qds, **ARGS, resume=Resume(max_minibatches=5), progress=False)
    second = train(woven_dev, qds, **ARGS, resume=Resume(first.final_model, start_minibatch=5), progress=False)
    assert np.array_equal(first.models[0], whole.models[0]) and np.array_equal(second.models[-1], whole.models[-1])
    assert first.losses[1] + second.losses[0] == whole.losses[1]


# ------------------------------------------------------------------ pipelined SGD (MODEL_DELAY)
def test_a_pipelined_run_on_the_woven_sim_engine_equals_the_golden_model(woven_dev, qds):
    """MODEL_DELAY 1 through the driver (batch 4 = the 128-bit engine's rows per line): the same
    models and losses as ``train_golden(model_delay=1)``, not exact SGD's; and the next exact run
    is exact again (MODEL_DELAY is programmed by every run)."""
    args = dict(ARGS, batch=4)
    gold = train_golden(qds, **args, model_delay=1)
    res = train(woven_dev, qds, **args, model_delay=1, progress=False)
    assert np.array_equal(res.models, gold.models) and res.losses == gold.losses
    exact = train_golden(qds, **args)
    assert not np.array_equal(gold.models, exact.models)
    again = train(woven_dev, qds, **args, progress=False)
    assert np.array_equal(again.models, exact.models)


def test_what_the_engine_cannot_pipeline_ends_in_bad_delay(woven_dev, qds):
    """A minibatch of two groups (batch 8 on 4-row lines) cannot be pipelined: the engine says
    BAD_DELAY at START, and the driver raises it by name; an engine without DELAYED is refused
    before it is touched."""
    from lowbit.driver.errors import DeviceError

    with pytest.raises(DeviceError, match="BAD_DELAY"):
        train(woven_dev, qds, **ARGS, model_delay=1, progress=False)
    device = SimpleNamespace(backend=SimpleNamespace(name="sim"), built=Built.RESUME)
    with pytest.raises(ValueError, match="one minibatch old"):
        train(device, qds, **ARGS, model_delay=1)
    with pytest.raises(ValueError, match="model_delay"):
        train_golden(qds, **ARGS, model_delay=2)
