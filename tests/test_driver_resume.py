"""The driver's resumable runs (lowbit.driver.train.Resume): the golden backend cuts a run into
bounded, warm-started pieces that equal the uncut run; engines without RESUME refuse, by name."""

from types import SimpleNamespace

import numpy as np
import pytest
from driver_fixtures import make_dataset

from lowbit.driver.serial import SerialBackend
from lowbit.driver.sim import SimBackend
from lowbit.driver.train import Resume, train, train_golden

ARGS = dict(step=0.01, batch=8, epochs=2)


@pytest.fixture(scope="module")
def qds():
    return make_dataset(30, 7, bits=3, copies=2, seed=4)  # P = 4 minibatches per epoch, the last of 6 rows


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
def test_rtl_backends_refuse_a_resumed_run_in_one_line(qds, backend):
    device = SimpleNamespace(backend=SimpleNamespace(name=backend.name))  # refused before the device is touched
    with pytest.raises(ValueError, match=f"the {backend.name} engine's RTL does not implement them") as exc:
        train(device, qds, **ARGS, resume=Resume(max_minibatches=2))
    assert "\n" not in str(exc.value)
