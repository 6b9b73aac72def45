"""Backends agree: float SGD reaches scikit-learn's least-squares optimum, and the golden model
(quantized, double-sampled, fixed point) lands near it too. Sim == golden is in test_driver_train.py."""

from __future__ import annotations

import numpy as np
from driver_fixtures import make_dataset
from sklearn.linear_model import LinearRegression, Ridge

from lowbit.data import engine_problem
from lowbit.driver.train import train_golden
from lowbit.experiment import Prepared, run_float
from lowbit.fixed import model_to_float
from lowbit_sim.golden import reference_sgd


def problem(rows=200, features=12, seed=3):
    return engine_problem(rows, features, seed=seed)


def test_float_backend_reaches_the_least_squares_optimum():
    X, y = problem()
    opt = LinearRegression(fit_intercept=False).fit(X, y).coef_
    # Full-batch gradient descent with step < 2 / lambda_max converges to the closed form.
    step = 1.0 / np.linalg.eigvalsh(X.T @ X).max()
    summary = run_float(Prepared(name="synthetic", X=X, y=y, task="regression"),
                        step=step, batch=X.shape[0], epochs=3000)
    np.testing.assert_allclose(summary.model, opt, atol=1e-8)
    assert summary.train_loss[-1] <= np.mean((X @ opt - y) ** 2) * (1 + 1e-9)


def test_minibatch_sgd_is_near_the_ridge_optimum():
    X, y = problem()
    opt = Ridge(alpha=1e-9, fit_intercept=False).fit(X, y).coef_
    models, _ = reference_sgd(X, y, step=0.002, batch=10, epochs=400)
    assert np.linalg.norm(models[-1] - opt) < 0.002 * np.linalg.norm(opt)  # measured 0.0002


def test_golden_model_on_quantized_data_is_near_the_optimum():
    qds = make_dataset(400, 12, bits=6, copies=8, seed=5)
    res = train_golden(qds, step=0.002, batch=10, epochs=60)
    X, y = problem(400, 12, seed=5)  # the dataset's own float data
    opt = LinearRegression(fit_intercept=False).fit(X, y).coef_
    final = model_to_float(res.models[-1])
    assert np.linalg.norm(final - opt) < 0.01 * np.linalg.norm(opt)  # measured 0.0013
