"""Stochastic rounding and double sampling (lowbit.contract.quant, docs/zipml.md).

The claim under test: with ``m`` the mean of two independent stochastic roundings of a row ``a`` and
``e = d^2 / 4`` (``d`` their difference), ``g = m (m . w - y) - e * w`` is an unbiased estimate of the
least-squares gradient ``a (a . w - y)``, while the naive estimator ``q (q . w - y)`` from one
rounding ``q`` used twice is biased by ``Var(q_j) w_j``.
"""

import numpy as np
import pytest

from lowbit.contract.fixed import CODE_FRAC, CORR_FRAC, LEVEL_ONE
from lowbit.contract.levels import optimal_levels
from lowbit.contract.quant import (
    code_table,
    decode_codes,
    double_sample,
    fixed_levels_value,
    levels_to_fixed,
    nearest_codes,
    stochastic_round,
    uniform_levels,
)

DRAWS = 200_000
F = 8


def problem(seed=0):
    """One row ``a`` (values between levels), a model ``w`` and a label ``y`` with residual 0.1."""
    rng = np.random.default_rng(seed)
    a = rng.uniform(-1, 1, F)
    w = rng.normal(0, 1, F) / np.sqrt(F)
    return a, w, a @ w + 0.1


def z_scores(samples, expected):
    """(mean - expected) in standard errors, per component."""
    return (samples.mean(axis=0) - expected) / (samples.std(axis=0) / np.sqrt(samples.shape[0]))


def draws(a, levels_q, rng):
    """DRAWS independent double-sampled codes of ``a``: (m, e) as exact floats from the two levels."""
    lv = fixed_levels_value(levels_q)
    c = double_sample(np.broadcast_to(a, (DRAWS, a.size)), levels_q, rng)
    lo, hi = lv[c >> 1], lv[(c + 1) >> 1]
    return c, (lo + hi) / 2, (hi - lo) ** 2 / 4


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_double_sampled_gradient_is_unbiased(bits):
    a, w, y = problem()
    rng = np.random.default_rng(100 + bits)
    _, m, e = draws(a, levels_to_fixed(uniform_levels(bits)), rng)
    g = m * (m @ w - y)[:, None] - e * w
    exact = a * (a @ w - y)
    assert np.abs(z_scores(g, exact)).max() < 4.0


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_naive_estimator_has_the_predicted_bias(bits):
    """E[q (q.w - y)] = a (a.w - y) + Var(q) * w: matched within 4 standard errors at every b, and at
    b <= 4 more than 15 standard errors away from the exact gradient (at b = 8 the bias, about
    (1/255)^2 |w_j|, needs far more draws than a fast test takes to separate from noise)."""
    a, w, y = problem()
    rng = np.random.default_rng(200 + bits)
    lq = levels_to_fixed(uniform_levels(bits))
    lv = fixed_levels_value(lq)
    q = lv[stochastic_round(np.broadcast_to(a, (DRAWS, F)), lq, rng)]
    naive = q * (q @ w - y)[:, None]
    k = np.clip(np.searchsorted(lv, a, side="right") - 1, 0, lv.size - 2)
    var = (lv[k + 1] - a) * (a - lv[k])
    exact = a * (a @ w - y)
    assert np.abs(z_scores(naive, exact + var * w)).max() < 4.0
    if bits <= 4:
        assert np.abs(z_scores(naive, exact)).max() > 15.0


def test_single_rounding_is_unbiased_and_stays_in_its_interval():
    lq = levels_to_fixed(optimal_levels(np.random.default_rng(1).beta(0.5, 3, 5000) * 2 - 1, 3))
    lv = fixed_levels_value(lq)
    a = np.array([-1.0, -0.3, 0.0, 0.123, 0.77, 1.0])
    idx = stochastic_round(np.broadcast_to(a, (DRAWS, a.size)), lq, np.random.default_rng(3))
    q = lv[idx]
    assert np.abs(z_scores(q[:, 1:-1], a[1:-1])).max() < 4.0
    assert np.all(q[:, 0] == -1.0) and np.all(q[:, -1] == 1.0)  # on a level: no randomness
    k = np.searchsorted(lv, a[1:-1], side="right") - 1
    assert np.all((idx[:, 1:-1] == k) | (idx[:, 1:-1] == k + 1))


def test_code_is_the_unordered_pair():
    """c = i1 + i2: even codes are (l_k, l_k), odd codes (l_k, l_k+1); 2^(b+1) - 1 codes."""
    lq = levels_to_fixed(uniform_levels(2))
    a = np.array([-0.9, -0.2, 0.5, 0.99])
    c, m, e = draws(a, lq, np.random.default_rng(4))
    assert c.max() <= 6
    lv = fixed_levels_value(lq)
    k = np.searchsorted(lv, a, side="right") - 1
    assert np.all((c >> 1 == k) | (c == 2 * k + 2))
    # Both orders of an odd pair map to one code, so P(odd) = 2 p (1 - p).
    p = (a - lv[k]) / (lv[k + 1] - lv[k])
    assert np.allclose((c & 1).mean(axis=0), 2 * p * (1 - p), atol=0.01)


@pytest.mark.parametrize("bits", range(1, 9))
def test_engine_code_table_is_the_pair_mean_and_quarter_squared_difference(bits):
    """m is exact at 2^-15; e = d^2/4 is rounded half up to 2^-23 (error <= 2^-24)."""
    lq = levels_to_fixed(uniform_levels(bits))
    tm, te = code_table(lq)
    assert tm.size == te.size == (1 << (bits + 1)) - 1
    lv = fixed_levels_value(lq)
    c = np.arange(tm.size)
    lo, hi = lv[c >> 1], lv[(c + 1) >> 1]
    assert np.array_equal(tm / (1 << CODE_FRAC), (lo + hi) / 2)
    exact = (hi - lo) ** 2 / 4
    assert np.abs(te / (1 << CORR_FRAC) - exact).max() <= 2.0 ** -24
    assert np.all(te[0::2] == 0)  # both samples equal: no correction
    # Uniform levels start at +1 and step down by whole 2^-14 LSBs, so the bottom one may pass -1
    # by up to 127 LSBs (b = 8): m stays far inside its int17.
    assert tm.max() == 1 << 15 and tm.min() >= -(1 << 15) - 2 * 127 and te.max() <= 1 << CORR_FRAC
    m, e = decode_codes(c, lq)
    assert np.array_equal(m, tm / 2.0**CODE_FRAC) and np.array_equal(e, te / 2.0**CORR_FRAC)


@pytest.mark.parametrize("bits", range(1, 9))
def test_correction_term_is_within_one_percent_at_every_precision(bits):
    """At b = 8 the correction (1.5e-5) is half an LSB of m's 2^-15; e's own 2^-23 keeps it to 0.4%
    (at 2^-15 it rounded to twice its value: as large an error as leaving the bias uncorrected)."""
    lq = levels_to_fixed(uniform_levels(bits))
    _, te = code_table(lq)
    lv = fixed_levels_value(lq)
    c = np.arange(1, te.size, 2)                 # codes of two adjacent levels: e > 0
    exact = (lv[(c + 1) >> 1] - lv[c >> 1]) ** 2 / 4
    assert np.abs(te[c] / (1 << CORR_FRAC) / exact - 1).max() < 0.01


def test_levels_to_fixed_pins_endpoints_and_checks_its_input():
    lq = levels_to_fixed(uniform_levels(3))
    # uniform levels start at +1 (the intercept's value) and step a whole number of LSBs down,
    # so the bottom one may pass -1
    assert lq.dtype == np.int16 and lq[-1] == LEVEL_ONE and -LEVEL_ONE - 128 < lq[0] <= -LEVEL_ONE
    # an end point within rounding of +-1 is pinned onto it, so [-1, 1] stays covered
    lq = levels_to_fixed(np.array([-1 + 1e-12, 1 - 1e-12]))
    assert list(lq) == [-LEVEL_ONE, LEVEL_ONE]
    with pytest.raises(ValueError, match="2\\^b"):
        levels_to_fixed(np.linspace(-1, 1, 3))
    with pytest.raises(ValueError, match="sorted"):
        levels_to_fixed(np.array([-1.0, 0.5, 0.2, 1.0]))
    with pytest.raises(ValueError, match="span"):
        levels_to_fixed(np.array([-0.5, 1.0]))
    with pytest.raises(ValueError, match="NaN or inf"):
        levels_to_fixed(np.array([-1.0, np.nan]))


def test_bad_input_is_named():
    lq = levels_to_fixed(uniform_levels(2))
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="NaN or inf"):
        double_sample(np.array([[0.1, np.inf]]), lq, rng)
    with pytest.raises(ValueError, match="NaN or inf"):
        stochastic_round(np.array([np.nan]), lq, rng)
    with pytest.raises(ValueError, match="empty"):
        double_sample(np.zeros((0, 3)), lq, rng)
    with pytest.raises(ValueError, match="bits"):
        uniform_levels(9)
    with pytest.raises(ValueError, match="bits"):
        uniform_levels(0)


def test_nearest_codes_round_to_the_closest_level():
    lq = levels_to_fixed(uniform_levels(2))  # -1, -1/3, 1/3, 1
    c = nearest_codes(np.array([-0.9, -0.5, 0.1, 0.2, 0.7]), lq)
    assert c.tolist() == [0, 2, 4, 4, 6]


@pytest.mark.parametrize("bits", range(1, 9))
def test_engine_tables_give_an_unbiased_square_at_every_precision(bits):
    """The diagonal term, exactly in expectation over the two roundings: E[m^2 - e] = x^2 for the
    engine's fixed-point m and e (the off-diagonal E[m_j m_k] = x_j x_k holds by independence).
    The bound 2^-23 is e's own resolution; e at 2^-15 missed it by 36x at b = 6 and 64x at b = 8."""
    lq = levels_to_fixed(uniform_levels(bits))
    tm, te = code_table(lq)
    lv = fixed_levels_value(lq)
    x = np.linspace(-1, 1, 4001)
    k = np.clip(np.searchsorted(lv, x, side="right") - 1, 0, lv.size - 2)
    p = (x - lv[k]) / (lv[k + 1] - lv[k])
    m, e = tm / 2.0**CODE_FRAC, te / 2.0**CORR_FRAC
    c = 2 * k                                   # codes of (lo, lo), (lo, hi), (hi, hi)
    prob = np.stack([(1 - p) ** 2, 2 * p * (1 - p), p**2])
    sq = np.stack([m[c] ** 2 - e[c], m[c + 1] ** 2 - e[c + 1], m[c + 2] ** 2 - e[c + 2]])
    assert np.abs((prob * sq).sum(0) - x**2).max() <= 2.0**-23


@pytest.mark.parametrize("bits", range(1, 9))
def test_uniform_levels_give_an_affine_code_table(bits):
    """What the bit-serial (woven) engine needs: m(c) = m0 + c * delta and e = e_odd on odd codes."""
    lq = levels_to_fixed(uniform_levels(bits))
    lq = lq.astype(np.int64)
    assert lq[-1] == 1 << 14 and lq[0] <= -(1 << 14) and np.all(np.diff(lq) == lq[1] - lq[0])
    tm, te = code_table(lq)
    c = np.arange(tm.size)
    assert np.array_equal(tm, tm[0] + c * (tm[1] - tm[0]))
    assert np.array_equal(te, te[1] * (c & 1))
