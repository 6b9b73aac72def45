"""``lowbit.sklearn``: the estimators follow scikit-learn's contract and train what ``lowbit train`` trains."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from driver_fixtures import TEST_AFU, afu_server  # noqa: F401
from scipy import sparse
from sklearn.base import clone
from sklearn.datasets import make_blobs
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import PolynomialFeatures
from sklearn.utils.estimator_checks import parametrize_with_checks

from lowbit.data import Normalizer
from lowbit.experiment import MEASURED_FMAX_MHZ
from lowbit.sklearn import LowbitClassifier, LowbitRegressor, model_from_original


def regression_data(rows=120, features=6, seed=0):
    """A well-conditioned linear problem in deliberately non-normalised units (scales 1e-3..1e3)."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, (rows, features)) * np.logspace(-3, 3, features) + 7.0
    w = rng.normal(0, 1, features) / np.logspace(-3, 3, features)
    y = X @ w + 40.0 + rng.normal(0, 0.05, rows)
    return X, y


# ------------------------------------------------------------------------ scikit-learn's checks
# Every check scikit-learn yields, none marked as expected to fail. (check_array_api_input skips
# itself unless SCIPY_ARRAY_API=1: the estimators convert input to NumPy, the engine's format.)
@parametrize_with_checks([LowbitRegressor(random_state=0), LowbitClassifier(random_state=0)])
def test_sklearn_compatible(estimator, check):
    check(estimator)


# ------------------------------------------------------------------------------ the parameters
@pytest.mark.parametrize("params, match", [
    (dict(bits=0), "bits must be an integer in 1..8"),
    (dict(bits=9), "bits must be an integer in 1..8"),
    (dict(bits=2.0), "bits must be an integer"),
    (dict(levels="log"), "levels must be one of"),
    (dict(epochs=0), "epochs must be an integer in 1..65535"),
    (dict(batch_size=4097), "batch_size must be an integer in 1..4096"),
    (dict(step=0.0), r"step must be 'auto' or a number in \(0, 1\)"),
    (dict(step="fast"), "step must be 'auto'"),
    (dict(copies=0), "copies must be an integer in 1..255"),
    (dict(backend="gpu"), "backend must be one of"),
    (dict(shuffle="yes"), "shuffle and warm_start must be booleans"),
    (dict(device_options="sock"), "device_options must be a dict"),
])
def test_bad_parameters_raise_in_fit_not_in_init(params, match):
    X, y = regression_data(20, 3)
    est = LowbitRegressor(**params)  # nothing is checked here (scikit-learn convention) ...
    assert est.get_params()[next(iter(params))] == next(iter(params.values()))
    with pytest.raises(ValueError, match=match):  # ... but fit refuses with one clear line
        est.fit(X, y)
    assert not hasattr(est, "coef_")


def test_clone_keeps_parameters_and_drops_the_fit():
    X, y = regression_data()
    est = LowbitRegressor(bits=2, levels="optimal", epochs=3, random_state=5).fit(X, y)
    twin = clone(est)
    assert twin.get_params() == est.get_params()
    assert not hasattr(twin, "coef_")
    np.testing.assert_array_equal(twin.fit(X, y).coef_, est.coef_)  # same random_state, same model


# ------------------------------------------------------------------------------ what fit learns
def test_coef_and_intercept_are_in_original_units():
    X, y = regression_data()
    est = LowbitRegressor(bits=8, epochs=40, random_state=0).fit(X, y)
    # The model the engine trained, in normalised units, maps exactly onto coef_/intercept_ ...
    norm = est.normalizer_
    w = model_from_original(norm, est.coef_, est.intercept_)
    np.testing.assert_allclose(norm.inverse_y(norm.transform_X(X) @ w), est.predict(X), rtol=1e-9, atol=1e-9)
    # ... and they fit the data where the units are: near the least-squares solution, R^2 ~ 1.
    assert est.score(X, y) > 0.99
    # Rescaling a feature by 1000 rescales its coefficient by 1/1000 (same normalised problem).
    X2 = X.copy()
    X2[:, 0] *= 1000.0
    est2 = LowbitRegressor(bits=8, epochs=40, random_state=0).fit(X2, y)
    np.testing.assert_allclose(est2.coef_[0] * 1000.0, est.coef_[0], rtol=1e-6)
    np.testing.assert_allclose(est2.intercept_, est.intercept_, rtol=1e-6)


def test_loss_curve_is_the_normalised_training_loss_per_epoch():
    X, y = regression_data()
    est = LowbitRegressor(bits=4, epochs=6, random_state=1).fit(X, y)
    assert len(est.loss_curve_) == 6 == est.n_iter_
    assert est.loss_curve_[-1] < est.loss_curve_[0]
    norm = est.normalizer_
    final = np.mean((norm.transform_X(X) @ model_from_original(norm, est.coef_, est.intercept_)
                     - norm.transform_y(y)) ** 2)
    np.testing.assert_allclose(est.loss_curve_[-1], final, rtol=1e-9)
    assert est.engine_cycles_ is None and est.modelled_time_s_ is None  # golden: no clock


def test_sparse_input_gives_the_dense_model():
    X, y = regression_data()
    X[X < 0] = 0.0
    dense = LowbitRegressor(bits=3, epochs=4, random_state=2).fit(X, y)
    for fmt in (sparse.csr_matrix, sparse.csc_array, sparse.coo_matrix):
        est = LowbitRegressor(bits=3, epochs=4, random_state=2).fit(fmt(X), y)
        np.testing.assert_array_equal(est.coef_, dense.coef_)
        np.testing.assert_allclose(est.predict(fmt(X)), dense.predict(X), rtol=1e-12)  # sparse dot: other rounding


def test_more_bits_train_closer_to_float():
    X, y = regression_data(300, 8)
    loss = {b: LowbitRegressor(bits=b, epochs=10, random_state=0).fit(X, y).loss_curve_[-1] for b in (1, 8)}
    full = LowbitRegressor(epochs=10, random_state=0, backend="float").fit(X, y).loss_curve_[-1]
    assert loss[8] < 1.05 * full < loss[1]


def test_warm_start_continues_the_previous_fit():
    X, y = regression_data()
    args = dict(backend="float", shuffle=False, random_state=0)
    five = LowbitRegressor(epochs=5, **args).fit(X, y)
    warm = LowbitRegressor(epochs=3, warm_start=True, **args).fit(X, y)
    warm.set_params(epochs=2).fit(X, y)
    # Float SGD on the residual labels is SGD from the previous model: 3 + 2 epochs == 5 epochs.
    np.testing.assert_allclose(warm.coef_, five.coef_, rtol=1e-9)
    np.testing.assert_allclose(warm.loss_curve_, five.loss_curve_[3:], rtol=1e-9)
    # On the engine the second fit starts where the first ended, not from zero.
    eng = LowbitRegressor(bits=4, epochs=2, warm_start=True, random_state=0).fit(X, y)
    first = eng.loss_curve_
    eng.fit(X, y)
    assert eng.loss_curve_[0] < first[0]
    assert eng.loss_curve_[-1] < first[-1]


def test_warm_start_refuses_other_features():
    X, y = regression_data()
    est = LowbitRegressor(epochs=2, warm_start=True, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match="warm_start: the previous fit has 1 model"):
        est.fit(X[:, :3], y)


def test_model_from_original_inverts_the_normalizer():
    X, y = regression_data()
    X[:, 2] = 3.0  # a constant column gets no weight
    norm = Normalizer().fit(X, y)
    w = np.random.default_rng(0).normal(size=norm.features_out)
    w[2] = 0.0
    np.testing.assert_allclose(model_from_original(norm, *norm.model_to_original(w)), w, atol=1e-12)


# ------------------------------------------------------------------------------ the classifier
def test_classifier_binary_and_multiclass():
    X, labels = make_blobs(300, n_features=5, centers=3, cluster_std=1.0, random_state=0)
    names = np.array(["ant", "bee", "cat"])[labels]
    clf = LowbitClassifier(bits=4, epochs=6, random_state=0).fit(X, names)
    assert clf.classes_.tolist() == ["ant", "bee", "cat"]
    assert clf.coef_.shape == (3, 5) and clf.intercept_.shape == (3,)
    assert clf.decision_function(X).shape == (300, 3)
    assert clf.score(X, names) > 0.95
    binary = LowbitClassifier(bits=2, epochs=6, random_state=0).fit(X[labels < 2], names[labels < 2])
    assert binary.coef_.shape == (1, 5)
    scores = binary.decision_function(X[labels < 2])
    assert scores.shape == (np.sum(labels < 2),)
    np.testing.assert_array_equal(binary.predict(X[labels < 2]), np.where(scores > 0, "bee", "ant"))
    assert not hasattr(binary, "predict_proba")  # least-squares scores are not probabilities


def test_classifier_needs_two_classes():
    X, _ = make_blobs(20, n_features=3, random_state=0)
    with pytest.raises(ValueError, match="at least 2 classes, got 1"):
        LowbitClassifier().fit(X, np.zeros(20))


# ------------------------------------------------------------------------- model selection
def test_pipeline_cross_val_score_and_pickle():
    X, y = regression_data(200, 3)
    y = y + 0.001 * X[:, 2] ** 2  # a little curvature the polynomial features capture
    pipe = make_pipeline(PolynomialFeatures(2), LowbitRegressor(bits=8, epochs=30, random_state=0))
    scores = cross_val_score(pipe, X, y, cv=KFold(3, shuffle=True, random_state=0))
    assert scores.shape == (3,) and scores.min() > 0.95
    pipe.fit(X, y)
    again = pickle.loads(pickle.dumps(pipe))
    np.testing.assert_array_equal(again.predict(X), pipe.predict(X))


def test_grid_search_over_bits_and_levels():
    X, y = regression_data(150, 4)
    grid = GridSearchCV(LowbitRegressor(epochs=8, random_state=0), {"bits": [1, 8], "levels": ["uniform", "optimal"]},
                        cv=3).fit(X, y)
    scores = dict(zip([(p["bits"], p["levels"]) for p in grid.cv_results_["params"]],
                      grid.cv_results_["mean_test_score"]))
    assert len(scores) == 4 and grid.best_params_["bits"] == 8
    assert scores[(8, "uniform")] > scores[(1, "uniform")]
    assert isinstance(grid.best_estimator_, LowbitRegressor) and grid.best_estimator_.bits == 8


# ------------------------------------------------------------------------- the simulated engine
def test_sim_and_golden_give_identical_models(afu_server):
    X, y = regression_data(70, 5)
    opts = {"server": str(afu_server), "memory": 32 << 20}
    args = dict(bits=3, levels="optimal", epochs=3, batch_size=8, random_state=4)
    gold = LowbitRegressor(**args).fit(X, y)
    sim = LowbitRegressor(backend="sim", device_options=opts, **args).fit(X, y)
    np.testing.assert_array_equal(sim.coef_, gold.coef_)
    assert sim.intercept_ == gold.intercept_ and sim.loss_curve_ == gold.loss_curve_
    assert sim.engine_cycles_ > 0
    assert sim.modelled_time_s_ == pytest.approx(sim.engine_cycles_ / (MEASURED_FMAX_MHZ * 1e6), rel=1e-12)

    Xc, labels = make_blobs(60, n_features=4, centers=3, random_state=1)
    cargs = dict(bits=2, epochs=2, random_state=0)
    gold_c = LowbitClassifier(**cargs).fit(Xc, labels)
    sim_c = LowbitClassifier(backend="sim", device_options=opts, **cargs).fit(Xc, labels)
    np.testing.assert_array_equal(sim_c.coef_, gold_c.coef_)
    np.testing.assert_array_equal(sim_c.intercept_, gold_c.intercept_)


def test_grid_search_over_bits_on_the_sim_backend(afu_server):
    X, y = regression_data(60, 4)
    opts = {"server": str(afu_server), "memory": 32 << 20}
    grid = GridSearchCV(LowbitRegressor(backend="sim", device_options=opts, epochs=3, random_state=0),
                        {"bits": [1, 4]}, cv=2).fit(X, y)
    assert grid.cv_results_["mean_test_score"].shape == (2,)
    assert grid.best_estimator_.engine_cycles_ > 0
    # Each fit trained on the engine: the same search on the golden model scores identically.
    gold = GridSearchCV(LowbitRegressor(epochs=3, random_state=0), {"bits": [1, 4]}, cv=2).fit(X, y)
    np.testing.assert_array_equal(grid.cv_results_["mean_test_score"], gold.cv_results_["mean_test_score"])


def test_sim_device_too_small_is_a_clear_error(afu_server):
    X = np.random.default_rng(0).normal(size=(10, TEST_AFU["max_features"]))  # + intercept = one too many
    est = LowbitRegressor(backend="sim", device_options={"server": str(afu_server), "memory": 32 << 20})
    with pytest.raises(ValueError, match="exceed max_features"):
        est.fit(X, X[:, 0])
