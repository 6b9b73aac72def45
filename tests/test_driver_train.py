"""``train()`` on the simulator equals ``train_golden()`` bit for bit; bad arguments never reach the device."""

from __future__ import annotations

import numpy as np
import pytest
from driver_fixtures import DOUBLE_MAX_FEATURES, TEST_AFU, afu_server, double_server, make_dataset  # noqa: F401

from lowbit.contract.fixed import step_to_fixed
from lowbit.contract.registers import MAX_BATCH, MAX_EPOCHS
from lowbit.driver import open_device
from lowbit.driver.train import TrainResult, train, train_golden


@pytest.fixture(scope="module")
def double_dev(double_server):
    with open_device("sim", server=double_server, memory=16 << 20) as d:
        yield d


@pytest.mark.parametrize("kwargs, match", [
    (dict(step=0.0), "step must be a positive"),
    (dict(step=-0.1), "step must be a positive"),
    (dict(step=float("nan")), "step must be a positive"),
    (dict(step=1.5), "not representable"),
    (dict(batch=0), "batch must be an integer in 1..4096"),
    (dict(batch=MAX_BATCH + 1), "batch"),
    (dict(batch=2.5), "batch"),
    (dict(epochs=0), "epochs"),
    (dict(epochs=MAX_EPOCHS + 1), "epochs"),
])
def test_bad_arguments_are_rejected_before_the_device(double_dev, kwargs, match):
    qds = make_dataset(20, 16, bits=2)
    args = dict(step=0.01, batch=4, epochs=2) | kwargs
    double_dev.write_reg("SCRATCH", 99)
    with pytest.raises(ValueError, match=match):
        train(double_dev, qds, **args)
    with pytest.raises(ValueError, match=match):
        train_golden(qds, **args)
    assert double_dev.read_reg("SCRATCH") == 99  # nothing was programmed
    assert double_dev.backend._regions == {}  # nothing was allocated


def test_too_many_features_for_the_engine(double_dev):
    qds = make_dataset(4, DOUBLE_MAX_FEATURES + 1, bits=1, copies=1)
    with pytest.raises(ValueError, match=f"MAX_FEATURES = {DOUBLE_MAX_FEATURES}"):
        train(double_dev, qds, step=0.01, batch=2, epochs=1)


def test_line_width_must_match_the_engine(double_dev):
    qds = make_dataset(8, 16, bits=2, line_bits=256)
    with pytest.raises(ValueError, match="256-bit lines"):
        train(double_dev, qds, step=0.01, batch=2, epochs=1)


def test_not_a_dataset(double_dev):
    with pytest.raises(ValueError, match="QuantizedDataset"):
        train(double_dev, object(), step=0.01, batch=2, epochs=1)


def test_golden_result_shape():
    qds = make_dataset(30, 20, bits=3, copies=2)
    res = train_golden(qds, step=0.01, batch=8, epochs=3)
    assert isinstance(res, TrainResult) and res.backend == "golden" and res.cycles is None
    assert res.models.shape == (3, 20) and res.models.dtype == np.int32 and len(res.losses) == 3
    assert res.config.step == step_to_fixed(0.01) and res.config.copies == 2


# ------------------------------------------------------------------------------ agreement
@pytest.mark.parametrize("rows, features, bits, copies, batch, epochs, step", [
    (67, 100, 2, 2, 8, 3, 0.004),  # ragged last minibatch, features not a multiple of 32
    (40, 300, 4, 3, 40, 4, 0.002),  # full batch; epoch 3 wraps around to copy 0
    (25, 33, 1, 1, 1, 2, 0.01),  # plain SGD, 1-bit
])
def test_sim_equals_golden(afu_server, rows, features, bits, copies, batch, epochs, step):
    qds = make_dataset(rows, features, bits=bits, copies=copies, seed=rows)
    gold = train_golden(qds, step=step, batch=batch, epochs=epochs)
    with open_device("sim", server=afu_server, memory=64 << 20, seed=rows) as dev:
        assert dev.caps["MAX_FEATURES"] == TEST_AFU["max_features"]
        res = train(dev, qds, step=step, batch=batch, epochs=epochs, progress=False)
        dev.check()
    np.testing.assert_array_equal(res.models, gold.models)
    assert res.losses == gold.losses
    assert res.config == gold.config
    assert res.cycles > 0 and res.read_lines >= epochs * qds.fmt.lines_per_copy(rows)
    assert len(res.epoch_cycles) == epochs and (res.epoch_cycles > 0).all()
    # Training reduced the loss on this well-conditioned problem.
    assert res.losses[-1] < res.losses[0]
