"""Level sets (lowbit.contract.levels): the variance-minimising DP is exact, never worse than uniform, and valid."""

import itertools

import numpy as np
import pytest

from lowbit.contract.format import MAX_BITS
from lowbit.contract.levels import make_levels, optimal_levels, rounding_variance
from lowbit.contract.quant import levels_to_fixed, uniform_levels


def skewed(n, seed=0):
    """Most mass near -1 with a long tail towards 1, like pixel intensities."""
    return np.random.default_rng(seed).beta(0.5, 4.0, n) * 2 - 1


def brute_force(values, bits, grid):
    """Least total variance over every choice of the 2^b - 2 interior levels from ``grid``."""
    interior = np.setdiff1d(grid, [-1.0, 1.0])
    best = np.inf
    for combo in itertools.combinations(interior, (1 << bits) - 2):
        best = min(best, rounding_variance(values, np.r_[-1.0, combo, 1.0]))
    return best


def test_rounding_variance_by_hand():
    # 0.5 between -1 and 1: (1 - 0.5)(0.5 + 1) = 0.75; -1 on a level: 0; 0.25 in [0, 1]: 0.1875.
    assert rounding_variance([0.5, -1.0], [-1.0, 1.0]) == pytest.approx(0.75)
    assert rounding_variance([0.25], [-1.0, 0.0, 1.0]) == pytest.approx(0.1875)
    assert rounding_variance([0.0, 1.0], [-1.0, 0.0, 1.0]) == 0.0


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("bits", [2, 3])
def test_dp_equals_brute_force_on_small_inputs(bits, seed):
    values = skewed(9, seed)
    lv = optimal_levels(values, bits)
    assert rounding_variance(values, lv) == pytest.approx(brute_force(values, bits, np.union1d(values, [-1, 1])),
                                                          rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_data_points_are_enough_no_level_set_on_a_fine_grid_does_better(seed):
    """The optimum over real positions lies on data points (docs/quantization.md): a brute force
    over a fine grid (which holds no data point) cannot beat the DP over the data points."""
    values = np.round(skewed(7, seed), 3) + 0.0004
    lv = optimal_levels(values, 2)
    grid = np.linspace(-1, 1, 41)
    assert rounding_variance(values, lv) <= brute_force(values, 2, grid) + 1e-12


@pytest.mark.parametrize("bits", range(1, MAX_BITS + 1))
def test_optimal_levels_are_valid_and_beat_uniform_on_skewed_data(bits):
    values = skewed(20000, bits)
    lv = optimal_levels(values, bits, max_candidates=max(64, 2 << bits))  # 512 at b = 8 keeps it fast
    assert lv.dtype == np.float64 and lv.shape == (1 << bits,)
    assert lv[0] == -1.0 and lv[-1] == 1.0 and np.all(np.diff(lv) > 0)
    levels_to_fixed(lv)  # the engine accepts it
    opt, uni = rounding_variance(values, lv), rounding_variance(values, uniform_levels(bits))
    assert opt <= uni
    if 2 <= bits <= 6:
        assert opt < 0.75 * uni  # and by a clear margin where there is room to move


def test_candidate_reduction_keeps_the_uniform_guarantee_on_large_data():
    """With more distinct values than max_candidates the DP runs on quantiles plus the uniform grid."""
    values = skewed(200_000, 7)
    for bits in (4, 8):
        lv = optimal_levels(values, bits, max_candidates=600)
        assert np.all(np.diff(lv) > 0)
        assert rounding_variance(values, lv) <= rounding_variance(values, uniform_levels(bits))


def test_few_distinct_values_get_zero_variance():
    values = np.array([-0.5, 0.25, 0.25, 0.7])
    lv = optimal_levels(values, 3)
    assert lv.size == 8 and np.all(np.diff(lv) > 0)
    assert rounding_variance(values, lv) == 0.0


def test_make_levels():
    assert np.array_equal(make_levels("uniform", 3), uniform_levels(3))
    v = skewed(1000)
    assert np.array_equal(make_levels("optimal", 3, v), optimal_levels(v, 3))
    custom = np.array([-1.0, -0.9, 0.0, 1.0])
    assert np.array_equal(make_levels(custom, 2), custom)


@pytest.mark.parametrize("call,match", [
    (lambda: optimal_levels([0.1, np.nan], 2), "NaN or inf"),
    (lambda: optimal_levels([], 2), "empty"),
    (lambda: optimal_levels([0.1, 1.5], 2), r"normalised to \[-1, 1\]"),
    (lambda: optimal_levels([0.1], 9), "bits"),
    (lambda: optimal_levels([0.1], 0), "bits"),
    (lambda: optimal_levels([0.1], 4, max_candidates=20), "max_candidates"),
    (lambda: make_levels("optimal", 2), "need the"),
    (lambda: make_levels("log", 2), "unknown level kind"),
    (lambda: make_levels(np.array([-1.0, 1.0]), 2), "need 4 entries"),
    (lambda: make_levels(np.array([-1.0, 0.5, 0.1, 1.0]), 2), "sorted"),
    (lambda: rounding_variance([0.0], [1.0, -1.0]), "levels must be sorted"),
])
def test_bad_input_is_named(call, match):
    with pytest.raises(ValueError, match=match):
        call()
