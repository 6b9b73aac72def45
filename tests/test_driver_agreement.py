"""Backends agree: float SGD reaches scikit-learn's least-squares optimum, and the golden model
(quantized, double-sampled, fixed point) lands near it too. Sim == golden is in test_driver_train.py."""

from __future__ import annotations

import numpy as np
from driver_fixtures import make_dataset
from sklearn.linear_model import LinearRegression, Ridge

from lowbit.contract.fixed import model_to_float
from lowbit.contract.golden import reference_sgd
from lowbit.driver.train import train_golden
from lowbit.experiment import Prepared, run_float


def problem(rows=200, features=12, seed=3):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, (rows, features))
    w = rng.normal(0, 1, features) / np.sqrt(features)
    y = np.clip(0.5 * X @ w + rng.normal(0, 0.01, rows), -1, 1)
    return X, y


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
    # The dataset's own float data: rebuild it the way make_dataset does.
    rng = np.random.default_rng(5)
    X = rng.uniform(-1, 1, (400, 12))
    w = rng.normal(0, 1, 12) / np.sqrt(12)
    y = np.clip(X @ w * 0.5 + rng.normal(0, 0.01, 400), -1, 1)
    opt = LinearRegression(fit_intercept=False).fit(X, y).coef_
    final = model_to_float(res.models[-1])
    assert np.linalg.norm(final - opt) < 0.01 * np.linalg.norm(opt)  # measured 0.0013
