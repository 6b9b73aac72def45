"""Logistic and hinge loss, the naive and Chebyshev estimators, and L2 (issue 13; golden.py's
docstring, lowbit.contract.losses, docs/zipml.md).

``spec_margin_run`` re-states the docstring's arithmetic for LOSS != 0 in unbounded Python integers,
as ``tests/test_golden.py`` does for the squared loss.
"""

import numpy as np
import pytest

from lowbit.dataset import QuantizedDataset
from lowbit.driver.train import check_built, engine_config, loss_needs, train, train_golden
from lowbit.contract.fixed import INT32_MAX, INT32_MIN, UINT64_MAX, step_to_fixed
from lowbit.contract.losses import (LOSS_TABLE, PHI_TABLE, TABLE_SEGMENTS, LossConfig, chebyshev_poly, label_signs,
                           loss_value, phi)
from lowbit.contract.quant import code_table, double_sample, levels_to_fixed, uniform_levels
from lowbit.contract.registers import Built, ErrorCode, Estimator, Loss
from lowbit.contract.golden import EngineConfig, horner, interp, margin_residuals, reference_sgd, run

ONE = 1 << 24


def rnd(x, k):
    return (x + (1 << (k - 1))) >> k


def sat(x):
    return max(INT32_MIN, min(INT32_MAX, x))


def spec_interp(table, t):
    u = max(-(8 << 24), min(8 << 24, t)) + (8 << 24)
    i = min(u >> 20, 255)
    f = u - (i << 20)
    return int(table[i]) + rnd((int(table[i + 1]) - int(table[i])) * f, 20)


def spec_margin_run(cfg, codes, labels, tm):
    """golden.py's docstring for logistic / hinge, naive / Chebyshev, with L2, in Python integers."""
    d = cfg.degree if cfg.estimator == Estimator.CHEBYSHEV else 0
    w = [0] * cfg.features
    models, losses = [], []
    for epoch in range(cfg.epochs):
        copies = [codes[(epoch + j) % cfg.copies] for j in range(d + 1)]  # factor j: copy (e + j) mod K
        loss = 0
        for start in range(0, cfg.rows, cfg.batch):
            rows = range(start, min(start + cfg.batch, cfg.rows))
            G = [0] * cfg.features
            for i in rows:
                s = 1 if labels[i] > 0 else -1
                ms = [[int(tm[c]) for c in copy[i]] for copy in copies]
                t = [sat(s * sat(rnd(sum(a * b for a, b in zip(m, w)), 15))) for m in ms]
                if d:
                    lim = 1 << (24 + cfg.margin_range)
                    h = cfg.poly[d]
                    for j in range(d - 1, -1, -1):
                        h = sat(cfg.poly[j] + rnd(h * max(-lim, min(lim, t[j + 1])), 24 + cfg.margin_range))
                elif cfg.loss == Loss.LOGISTIC:
                    h = spec_interp(PHI_TABLE, t[0])
                else:
                    h = -ONE if t[0] < ONE else 0
                r = sat(s * h)
                if cfg.loss == Loss.LOGISTIC:
                    row_loss = spec_interp(LOSS_TABLE, t[0]) + max(0, -(8 << 24) - t[0])
                else:
                    row_loss = max(0, ONE - t[0])
                loss = min(loss + (row_loss << 8), UINT64_MAX)
                for j in range(cfg.features):
                    G[j] += ms[0][j] * r
            G = [g + len(rows) * rnd(cfg.l2 * wj, 17) for g, wj in zip(G, w)]
            w = [sat(wj - rnd(sat(rnd(g, 15)) * cfg.step, 32)) for wj, g in zip(w, G)]
        models.append(list(w))
        losses.append(loss)
    return np.array(models, dtype=np.int64), losses


def margin_case(rows, features, bits, batch, epochs, copies, step, seed, **loss):
    rng = np.random.default_rng(seed)
    tm, te = code_table(levels_to_fixed(uniform_levels(bits)))
    codes = rng.integers(0, tm.size, (copies, rows, features))
    labels = np.where(rng.random(rows) < 0.5, 0, ONE)  # {0, 1} labels: the engine reads their sign
    cfg = EngineConfig(rows=rows, features=features, bits=bits, batch=batch, epochs=epochs,
                       step=step_to_fixed(step), copies=copies, **LossConfig(**loss).registers())
    return cfg, codes, labels, tm, te


# ------------------------------------------------------------------------ the spec, exactly
@pytest.mark.parametrize("rows,features,bits,batch,epochs,copies,step,loss", [
    (13, 5, 2, 4, 3, 2, 0.05, dict(loss="logistic")),
    (9, 4, 1, 3, 2, 1, 0.3, dict(loss="hinge", l2=0.01)),
    (11, 3, 4, 5, 3, 4, 0.1, dict(loss="logistic", estimator="chebyshev", degree=3, margin_range=2)),
    (8, 6, 8, 8, 2, 5, 0.2, dict(loss="hinge", estimator="chebyshev", degree=4, margin_range=1, l2=0.001)),
    (7, 3, 3, 2, 3, 2, 0.999, dict(loss="logistic", l2=0.5)),  # a huge step: margins beyond the table, clamped
])
def test_golden_margin_losses_are_its_docstring(rows, features, bits, batch, epochs, copies, step, loss):
    cfg, codes, labels, tm, te = margin_case(rows, features, bits, batch, epochs, copies, step, rows, **loss)
    g = run(cfg, codes, labels, tm, te)
    models, losses = spec_margin_run(cfg, codes, labels, tm)
    assert np.array_equal(g.models, models)
    assert g.losses == losses


def test_squared_loss_with_l2_adds_lambda_w_per_row():
    """L2 on least squares: the same G plus n_b * rnd(L2 * w0, 17), rows of a partial batch counted."""
    rng = np.random.default_rng(3)
    tm, te = code_table(levels_to_fixed(uniform_levels(2)))
    codes = rng.integers(0, tm.size, (1, 5, 3))
    labels = rng.integers(-ONE, ONE, 5)
    base = dict(rows=5, features=3, bits=2, batch=3, epochs=2, step=step_to_fixed(0.2))
    plain = run(EngineConfig(**base), codes, labels, tm, te)
    ridge = run(EngineConfig(**base, l2=step_to_fixed(0.05)), codes, labels, tm, te)
    assert plain.losses[0] == ridge.losses[0]  # the first minibatch starts at w = 0: L2 adds nothing yet
    assert np.abs(ridge.models).sum() < np.abs(plain.models).sum()  # and then it shrinks the model


def test_one_row_by_hand():
    """m = 1 (the top level), w = 0, step 1/4: the margin is 0 for either loss."""
    lq = levels_to_fixed(uniform_levels(1))
    tm, te = code_table(lq)
    top = np.array([[[2]]])  # code 2 = both samples at +1: m = 2^15
    assert tm[2] == 1 << 15
    for loss, label, w1, acc in [
        ("logistic", ONE, 1 << 21, int(LOSS_TABLE[128]) << 8),  # w = 0.25 * 0.5 * 1; loss log 2
        ("logistic", 0, -(1 << 21), int(LOSS_TABLE[128]) << 8),  # label 0 is class -1
        ("logistic", -ONE, -(1 << 21), int(LOSS_TABLE[128]) << 8),
        ("hinge", ONE, 1 << 22, ONE << 8),  # margin 0 < 1: w = 0.25 * 1 * 1; loss 1
        ("hinge", 0, -(1 << 22), ONE << 8),
    ]:
        cfg = EngineConfig(rows=1, features=1, bits=1, batch=1, epochs=1, step=1 << 30, loss=int(Loss[loss.upper()]))
        g = run(cfg, top, [label], tm, te)
        assert (g.models[0, 0], g.losses[0]) == (w1, acc), (loss, label)
    assert PHI_TABLE[128] == -(1 << 23) and LOSS_TABLE[128] == round(np.log(2) * ONE)


def test_hinge_subgradient_switches_at_margin_one():
    cfg = EngineConfig(rows=1, features=1, bits=1, batch=1, epochs=1, step=1, loss=int(Loss.HINGE))
    M = np.array([[1 << 15]])  # x = 1, so the margin is w
    for w, r in [(ONE, 0), (ONE - 1, -ONE), (ONE + 1, 0), (-5 * ONE, -ONE)]:
        got, _ = margin_residuals(cfg, M, [], np.array([w]), np.array([ONE]))
        assert got[0] == r, w
        got, _ = margin_residuals(cfg, M, [], np.array([-w]), np.array([0]))  # class -1: same margin
        assert got[0] == -r, w


def test_interp_is_the_table_at_grid_points_and_saturates_at_its_ends():
    grid = (np.arange(TABLE_SEGMENTS + 1, dtype=np.int64) << 20) - (8 << 24)
    assert np.array_equal(interp(PHI_TABLE, grid), PHI_TABLE)
    assert np.array_equal(interp(PHI_TABLE, np.array([8 << 24, (8 << 24) + 1, INT32_MAX])), [PHI_TABLE[-1]] * 3)
    assert np.array_equal(interp(PHI_TABLE, np.array([-(8 << 24), -(8 << 24) - 1, INT32_MIN])), [PHI_TABLE[0]] * 3)
    mid = grid[:-1] + (1 << 19)  # halfway: the mean of the two entries, rounded half up
    assert np.array_equal(interp(PHI_TABLE, mid), rnd(PHI_TABLE[:-1] + PHI_TABLE[1:], 1))
    t = np.arange(-(8 << 24), 8 << 24, 104729, dtype=np.int64)
    err = interp(PHI_TABLE, t) / ONE - phi(Loss.LOGISTIC, t / ONE)
    assert np.abs(err).max() < 5e-5  # h^2/8 max|phi''| for h = 1/16
    assert PHI_TABLE[0] == round(-ONE / (1 + np.exp(-8))) and PHI_TABLE[-1] == round(-ONE / (1 + np.exp(8)))


def test_horner_by_hand_with_its_clamp():
    poly = (ONE // 2, -ONE, 3 * ONE)  # P(u) = 0.5 - u + 3 u^2, margin range 2^1
    t1, t2 = np.array([ONE]), np.array([-ONE // 2])  # u1 = 0.5, u2 = -0.25
    h = 3 * ONE
    h = -ONE + rnd(h * int(t2[0]), 25)
    h = ONE // 2 + rnd(h * int(t1[0]), 25)
    assert horner(poly, [t1, t2], 1)[0] == h == round((0.5 - 0.5 * (1 + 3 * 0.25)) * ONE)
    far = np.array([50 * ONE])  # clamped to u = 1
    assert horner(poly, [far, far], 1)[0] == horner(poly, [np.array([2 * ONE])] * 2, 1)[0] == 5 * ONE // 2


def test_chebyshev_poly_interpolates_phi_at_the_nodes():
    for loss in (Loss.LOGISTIC, Loss.HINGE):
        for d in (1, 3, 6):
            a = np.array(chebyshev_poly(loss, d, 2), dtype=np.float64) / ONE
            nodes = np.cos(np.pi * (np.arange(d + 1) + 0.5) / (d + 1))
            assert np.allclose(np.polyval(a[::-1], nodes), phi(loss, 4 * nodes), atol=1e-6 * (d + 1))
    u = np.linspace(-1, 1, 201)
    a = np.array(chebyshev_poly(Loss.LOGISTIC, 8, 1), dtype=np.float64) / ONE
    assert np.abs(np.polyval(a[::-1], u) - phi(Loss.LOGISTIC, 2 * u)).max() < 1e-4


# -------------------------------------------------------------------- the estimators' bias
DRAWS = 40_000


def _margin_draws(bits, seed):
    """DRAWS independent double-sampled copies of one row; the exact and the sampled margins."""
    rng = np.random.default_rng(seed)
    F = 32
    x = rng.uniform(-1, 1, F)
    w = rng.normal(0, 0.35, F)
    lq = levels_to_fixed(uniform_levels(bits))
    tm, _ = code_table(lq)
    wq = np.rint(w * ONE).astype(np.int64)
    codes = double_sample(np.broadcast_to(x, (2, DRAWS, F)), lq, rng)
    t = np.clip(rnd(tm[codes] @ wq, 15), INT32_MIN, INT32_MAX)  # (2, DRAWS): two independent copies
    return float(x @ wq) / ONE, t


def _mean_and_se(v):
    v = np.asarray(v, dtype=np.float64) / ONE
    return v.mean(), v.std() / np.sqrt(v.size)


def test_chebyshev_estimate_is_unbiased_for_its_polynomial():
    """E[horner(P, independent margins)] = P(margin): within 4 standard errors at b = 2."""
    margin, t = _margin_draws(2, seed=1)
    poly = chebyshev_poly(Loss.LOGISTIC, 1, 2)  # degree 1 uses the two copies: estimate a0 + a1 u
    mean, se = _mean_and_se(horner(poly, [t[0]], 2))
    exact = np.polyval(np.array(poly[::-1]) / ONE, margin / 4)
    assert abs(mean - exact) < 4 * se
    square = (0, 0, ONE)  # u^2 from two independent copies ...
    mean, se = _mean_and_se(horner(square, [t[0], t[1]], 2))
    assert abs(mean - (margin / 4) ** 2) < 4 * se
    # ... and the negative control: the same copy twice estimates u^2 + Var(u), far outside the noise.
    mean_same, se_same = _mean_and_se(horner(square, [t[0], t[0]], 2))
    assert mean_same - (margin / 4) ** 2 > 15 * se_same


def test_naive_estimate_is_biased_where_phi_is_curved():
    """E[phi(noisy margin)] != phi(margin): the naive estimator's bias, ~ phi''(t) Var(t) / 2."""
    margin, t = _margin_draws(1, seed=2)
    mean, se = _mean_and_se(interp(PHI_TABLE, t[0]))
    assert abs(mean - phi(Loss.LOGISTIC, margin)) > 10 * se
    mean, se = _mean_and_se(t[0])  # the margin itself is unbiased: the bias is the non-linearity's
    assert abs(mean - margin) < 4 * se


# ------------------------------------------------------------------- configuration and errors
@pytest.mark.parametrize("kw, code", [
    (dict(loss=3), ErrorCode.BAD_LOSS),
    (dict(estimator=1, degree=2, copies=3, loss=0), ErrorCode.BAD_ESTIMATOR),  # squared has its own
    (dict(estimator=1, degree=3, copies=3, loss=1), ErrorCode.BAD_ESTIMATOR),  # needs d + 1 copies
    (dict(estimator=1, degree=0, copies=3, loss=1), ErrorCode.BAD_ESTIMATOR),
    (dict(estimator=1, degree=9, copies=10, loss=2), ErrorCode.BAD_ESTIMATOR),
    (dict(estimator=2, loss=1), ErrorCode.BAD_ESTIMATOR),
    (dict(estimator=1, degree=2, copies=3, loss=2, margin_range=8), ErrorCode.BAD_ESTIMATOR),
    (dict(estimator=1, degree=2, copies=3, loss=2), ErrorCode.NONE),
])
def test_loss_registers_are_checked_at_start(kw, code):
    base = dict(rows=10, features=5, bits=2, batch=4, epochs=1, step=100)
    assert EngineConfig(**{**base, **kw}).error(max_features=100) is code


def test_chebyshev_factor_j_reads_copy_e_plus_j():
    """Degree 1, K = 4, one epoch: copies 0 and 1 feed the row; copies 2 and 3 are not read."""
    cfg, codes, labels, tm, te = margin_case(6, 3, 2, 3, 1, 4, 0.1, 5, loss="logistic", estimator="chebyshev",
                                             degree=1, margin_range=4)
    base = run(cfg, codes, labels, tm, te).models
    unread = codes.copy()
    unread[2:] = 0
    assert np.array_equal(run(cfg, unread, labels, tm, te).models, base)
    assert not np.array_equal(run(cfg, codes[[0, 2, 1, 3]], labels, tm, te).models, base)


def test_loss_config_refuses_what_the_engine_cannot_do():
    with pytest.raises(ValueError, match="squared loss has its own"):
        LossConfig(loss="squared", estimator="chebyshev")
    with pytest.raises(ValueError, match="power of two"):
        LossConfig(loss="hinge", margin_range=3)
    with pytest.raises(ValueError, match="resolution"):
        LossConfig(l2=1e-12)
    assert LossConfig(loss="logistic", estimator="chebyshev", degree=2).samples() == 3
    assert LossConfig(loss="logistic").registers()["poly"] == ()


# ------------------------------------------------------------------------- driver and float
@pytest.fixture(scope="module")
def small_qds():
    rng = np.random.default_rng(0)
    X = np.hstack([rng.uniform(-1, 1, (40, 6)), np.ones((40, 1))])
    y = np.sign(X[:, :6] @ rng.normal(size=6) + 0.1)
    return QuantizedDataset.build(X, y, bits=3, copies=3, seed=2, progress=False)


def test_train_golden_runs_other_losses_on_the_spec(small_qds):
    lc = LossConfig(loss="hinge", estimator="chebyshev", degree=2, margin_range=2, l2=0.001)
    res = train_golden(small_qds, step=0.05, batch=8, epochs=3, loss=lc)
    cfg = engine_config(small_qds, step=0.05, batch=8, epochs=3, loss=lc)
    g = run(cfg, small_qds.codes, small_qds.labels_q, small_qds.table_m, small_qds.table_e)
    assert res.config == cfg and res.config.poly == chebyshev_poly(Loss.HINGE, 2, 1)
    assert np.array_equal(res.models, g.models) and res.losses == g.losses
    with pytest.raises(ValueError, match="reads 4 independent copies"):
        engine_config(small_qds, step=0.05, batch=8, epochs=3, loss=LossConfig(loss="hinge", estimator="chebyshev"))


def test_the_rtl_backends_refuse_what_their_engine_was_not_built_for(small_qds):
    """The driver asks the engine (its BUILT register) and refuses, before touching buffers or
    registers, a run needing a datapath the engine lacks, naming it."""
    assert loss_needs(None) == loss_needs(LossConfig()) == Built.NONE
    assert loss_needs(LossConfig(loss="hinge")) == Built.NONLINEAR
    assert loss_needs(LossConfig(loss="logistic", l2=0.01)) == Built.NONLINEAR | Built.L2
    assert loss_needs(LossConfig(loss="logistic", estimator="chebyshev")) == Built.NONLINEAR | Built.CHEBYSHEV
    check_built(loss_needs(LossConfig(loss="logistic")), Built.NONLINEAR, "sim")
    with pytest.raises(ValueError, match="the sim engine is built without LOSS logistic and hinge"):
        check_built(loss_needs(LossConfig(loss="logistic")), Built.NONE, "sim")

    class Untouchable:  # any use of the device beyond its backend's name and BUILT fails the test
        built = Built.NONLINEAR

        class backend:
            name = "sim"

    with pytest.raises(ValueError, match="built without L2 regularisation"):
        train(Untouchable(), small_qds, step=0.1, batch=4, epochs=1, loss=LossConfig(loss="hinge", l2=0.01))


def test_reference_sgd_logistic_is_one_gradient_step_by_hand():
    X = np.array([[1.0, 0.5], [-0.5, 1.0], [0.25, -1.0]])
    y = np.array([1.0, 0.0, -1.0])  # {0, 1} and {-1, +1} labels mean the same classes
    models, losses = reference_sgd(X, y, step=0.1, batch=3, epochs=1, loss="logistic", l2=0.2)
    s = np.array([1.0, -1.0, -1.0])
    # at w = 0 every margin is 0: phi(0) = -1/2, loss log 2; L2 adds nothing at w = 0
    assert np.allclose(models[0], -0.1 * X.T @ (s * -0.5))
    assert losses[0] == pytest.approx(np.log(2))
    assert np.array_equal(label_signs(y), s.astype(int))
    assert loss_value(Loss.HINGE, np.array([2.0, 0.5]))[1] == 0.5
