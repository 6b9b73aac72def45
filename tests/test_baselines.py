"""The CPU contestants of bench/speedup.py do the engine's SGD (lowbit.baselines)."""

import numpy as np
import pytest

from lowbit.baselines import best_of, numpy_sgd, sklearn_sgd
from lowbit.contract.golden import reference_sgd


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(3)
    X = rng.uniform(-1, 1, (203, 17))  # 203 rows: the last minibatch of 16 is partial
    y = np.clip(X @ rng.normal(0, 0.2, 17) + rng.normal(0, 0.02, 203), -1, 1)
    return X, y


def test_numpy_sgd_in_float64_is_reference_sgd_bit_for_bit(problem):
    X, y = problem
    run = numpy_sgd(X, y, step=0.01, batch=16, epochs=3, dtype=np.float64)
    models, _ = reference_sgd(X, y, step=0.01, batch=16, epochs=3)
    assert np.array_equal(run.models, models)
    assert run.label == "NumPy float64"


def test_numpy_sgd_in_float32_tracks_the_reference(problem):
    X, y = problem
    run = numpy_sgd(X, y, step=0.01, batch=16, epochs=3)
    models, _ = reference_sgd(X, y, step=0.01, batch=16, epochs=3)
    assert run.label == "NumPy float32"
    assert np.max(np.abs(run.models - models)) < 1e-5 * np.max(np.abs(models))
    assert not np.array_equal(run.models, models)  # it really ran in float32
    assert run.epoch_s.shape == (3,) and np.all(run.epoch_s > 0)
    assert run.s_per_epoch == pytest.approx(run.epoch_s.mean())


def test_sklearn_sgd_is_reference_sgd_at_batch_1(problem):
    X, y = problem
    run = sklearn_sgd(X, y, step=0.01, epochs=3)
    models, _ = reference_sgd(X, y, step=0.01, batch=1, epochs=3)
    np.testing.assert_allclose(run.models, models, rtol=1e-9, atol=1e-12)
    assert run.epoch_s.shape == (3,)


def test_best_of_keeps_the_fastest_run(problem):
    X, y = problem
    times = iter([[3.0, 3.0], [1.0, 2.0], [2.0, 2.0]])

    def fake(*args, **kwargs):
        run = numpy_sgd(*args, **kwargs)
        run.epoch_s = np.array(next(times))
        return run

    best = best_of(3, fake, X, y, step=0.01, batch=16, epochs=2)
    assert best.s_per_epoch == 1.5


@pytest.mark.parametrize("kwargs, message", [
    (dict(step=0.0), "step must be a positive"),
    (dict(step=float("nan")), "step must be a positive"),
    (dict(batch=0), "batch must be a positive integer"),
    (dict(epochs=1.5), "epochs must be a positive integer"),
])
def test_bad_arguments_name_the_problem(problem, kwargs, message):
    X, y = problem
    args = dict(step=0.01, batch=16, epochs=1) | kwargs
    with pytest.raises(ValueError, match=message):
        numpy_sgd(X, y, **args)


def test_mismatched_labels_are_refused(problem):
    X, y = problem
    with pytest.raises(ValueError, match=r"y must have shape \(203,\)"):
        sklearn_sgd(X, y[:-1], step=0.01, epochs=1)
    with pytest.raises(ValueError, match="repeats must be a positive integer"):
        best_of(0, numpy_sgd, X, y, step=0.01, batch=16, epochs=1)
