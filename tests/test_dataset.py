"""QuantizedDataset (lowbit.dataset): copies, packed lines, files, and clear errors."""

import numpy as np
import pytest

from lowbit.contract.fixed import CODE_FRAC, MODEL_FRAC
from lowbit.contract.format import FORMAT_VERSION, LineFormat, unpack_codes, unpack_words
from lowbit.contract.levels import rounding_variance
from lowbit.contract.quant import code_table, fixed_levels_value, levels_to_fixed, nearest_codes, uniform_levels
from lowbit.dataset import QuantizedDataset


def normalised(rows=300, features=37, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, (rows, features)) ** 3  # skewed towards 0: optimal levels differ from uniform
    y = np.clip(X @ rng.normal(0, 0.3, features), -1, 1)
    return X, y


@pytest.fixture(scope="module")
def qds():
    X, y = normalised()
    return QuantizedDataset.build(X, y, bits=3, levels="optimal", copies=3, seed=7, line_bits=256, progress=False)


def test_attributes(qds):
    assert qds.rows == 300 and qds.features == 37 and qds.copies == 3
    assert qds.fmt == LineFormat(bits=3, features=37, line_bits=256)
    assert qds.codes.shape == (3, 300, 37) and qds.codes.dtype == np.uint16
    assert qds.codes.max() < qds.fmt.codes
    assert qds.levels.shape == (8,) and qds.levels_q.dtype == np.int16
    assert np.array_equal(qds.levels_q, levels_to_fixed(qds.levels))
    tm, te = code_table(qds.levels_q)
    assert np.array_equal(qds.table_m, tm) and np.array_equal(qds.table_e, te)
    assert qds.labels_q.dtype == np.int32 and qds.labels_q.shape == (300,)


def test_optimal_levels_fit_the_data(qds):
    X, _ = normalised()
    assert rounding_variance(X, qds.levels) < rounding_variance(X, uniform_levels(3))


def test_copies_are_independent(qds):
    assert not np.array_equal(qds.codes[0], qds.codes[1])
    assert not np.array_equal(qds.codes[1], qds.codes[2])


#: |z| above which a value's decoded mean counts as biased: with 16 values per check, an unbiased
#: quantizer exceeds it with probability ~1e-4 (and the seeds are fixed).
Z_BIASED = 4.5


def bias_z(x: np.ndarray, codes: np.ndarray, levels_q: np.ndarray) -> np.ndarray:
    """Per value ``x[j]``: the bias of the mean decoded level ``m`` over the draws ``codes[:, j]``,
    in standard errors of an unbiased double sampling (two roundings, each to the upper level
    with probability ``p``: ``Var m = d^2 p (1 - p) / 2``). A value on a level must decode exactly."""
    lv = fixed_levels_value(levels_q)
    k = np.clip(np.searchsorted(lv, x, side="right") - 1, 0, lv.size - 2)
    d = lv[k + 1] - lv[k]
    p = (x - lv[k]) / d
    se = d * np.sqrt(p * (1 - p) / 2 / codes.shape[0])
    bias = (code_table(levels_q)[0][codes] / 2.0**CODE_FRAC).mean(axis=0) - x
    return np.where(se > 0, bias / np.where(se > 0, se, 1), np.where(bias == 0, 0.0, np.inf))


def per_value_problem(bits: int, levels: str, draws_per_copy: int = 1000, copies: int = 8):
    """16 values at chosen places between (and on) the levels, each repeated over every row: every
    row of every copy is an independent double sampling, so each value gets rows x copies draws."""
    lv = fixed_levels_value(levels_to_fixed(uniform_levels(bits)))
    k = np.array([1, 0, 1, 1, 1, 2, 2, 3, 3, 3, 4, 5, 5, 6, 6, 6]) % (lv.size - 1)
    p = np.array([0.0, 0.1, 0.25, 0.5, 0.9, 0.03, 0.6, 0.33, 0.75, 0.5, 0.2, 0.97, 0.45, 0.1, 0.8, 0.6])
    x = np.clip(lv[k] + p * (lv[k + 1] - lv[k]), -1, 1)
    X = np.tile(x, (draws_per_copy, 1))
    qds = QuantizedDataset.build(X, np.zeros(draws_per_copy), bits=bits, levels=levels, copies=copies, seed=11,
                                 line_bits=128, progress=False)
    return x, qds.codes.reshape(-1, x.size), qds.levels_q


@pytest.mark.parametrize("bits, levels", [(2, "uniform"), (3, "uniform"), (2, "optimal")])
def test_every_value_is_unbiased(bits, levels):
    """Per value, over 8000 independent draws: the decoded mean equals the value within 4.5 standard
    errors (a bias of ~0.02 level spacings is detectable; see the controls below)."""
    x, codes, levels_q = per_value_problem(bits, levels)
    z = bias_z(x, codes, levels_q)
    assert np.abs(z).max() < Z_BIASED, z


def test_the_unbiasedness_check_detects_nearest_rounding():
    """Negative control: the same check on nearest rounding (deterministic, biased) must fail."""
    x, codes, levels_q = per_value_problem(3, "uniform")
    nearest = np.tile(nearest_codes(x, levels_q), (codes.shape[0], 1))
    z = bias_z(x, nearest, levels_q)
    assert np.abs(z).max() > Z_BIASED and (np.abs(z) > Z_BIASED).sum() >= 10


def test_the_unbiasedness_check_detects_a_small_bias():
    """Negative control with little margin: stochastic rounding whose up-probability is off by
    0.03 (a bias of 3 % of a level spacing) is caught at 8000 draws per value."""
    x, codes, levels_q = per_value_problem(3, "uniform")
    lv = fixed_levels_value(levels_q)
    k = np.clip(np.searchsorted(lv, x, side="right") - 1, 0, lv.size - 2)
    p = np.clip((x - lv[k]) / (lv[k + 1] - lv[k]) + 0.03, 0, 1)
    u = np.random.default_rng(3).random((2,) + codes.shape)
    skewed = (2 * k + (u[0] < p) + (u[1] < p)).astype(np.uint16)
    assert np.abs(bias_z(x, skewed, levels_q)).max() > Z_BIASED


def test_seeded():
    X, y = normalised(50, 5)
    a = QuantizedDataset.build(X, y, bits=2, copies=2, seed=1, progress=False)
    b = QuantizedDataset.build(X, y, bits=2, copies=2, seed=1, progress=False)
    c = QuantizedDataset.build(X, y, bits=2, copies=2, seed=2, progress=False)
    assert np.array_equal(a.codes, b.codes) and not np.array_equal(a.codes, c.codes)
    # A Generator supplies the key (one draw): reproducible from its state, recorded as no seed.
    g = QuantizedDataset.build(X, y, bits=2, copies=2, seed=np.random.default_rng(1), progress=False)
    h = QuantizedDataset.build(X, y, bits=2, copies=2, seed=np.random.default_rng(1), progress=False)
    assert np.array_equal(g.codes, h.codes) and g.seed is None


def test_data_lines_hold_the_copies_back_to_back(qds):
    lines = qds.data_lines()
    per = qds.fmt.lines_per_copy(qds.rows)
    assert lines.shape == (3 * per, 32) and lines.dtype == np.uint8
    for k in range(3):
        assert np.array_equal(unpack_codes(lines[k * per : (k + 1) * per], qds.fmt, qds.rows), qds.codes[k])


def test_label_lines(qds):
    _, y = normalised()
    lines = qds.label_lines()
    assert lines.shape == (qds.fmt.label_lines(300), 32)
    words = unpack_words(lines, 300)
    assert np.array_equal(words, qds.labels_q)
    assert np.allclose(words / 2.0**MODEL_FRAC, y, atol=2.0**-MODEL_FRAC)


def test_bytes_streamed_per_epoch(qds):
    fmt = qds.fmt
    assert qds.nbytes_streamed_per_epoch() == fmt.bytes_per_copy(300) + fmt.label_lines(300) * 32
    assert qds.nbytes_host() == 3 * fmt.bytes_per_copy(300) + fmt.label_lines(300) * 32


def test_save_load_round_trip(qds, tmp_path):
    p = tmp_path / "q.npz"
    qds.save(p)
    r = QuantizedDataset.load(p)
    assert r.fmt == qds.fmt and (r.rows, r.features, r.copies) == (300, 37, 3)
    assert np.array_equal(r.codes, qds.codes) and np.array_equal(r.labels_q, qds.labels_q)
    assert np.array_equal(r.levels, qds.levels) and np.array_equal(r.levels_q, qds.levels_q)
    assert np.array_equal(r.data_lines(), qds.data_lines())
    assert r.seed == 7 and r.level_kind == "optimal"


def _resave(src, dst, **changes):
    with np.load(src) as z:
        arrays = {k: z[k] for k in z.files}
    arrays.update(changes)
    for k in [k for k, v in changes.items() if v is None]:
        del arrays[k]
    np.savez(dst, **arrays)


@pytest.mark.parametrize("change,match", [
    (dict(format_version=np.int64(FORMAT_VERSION + 1)), "line format version"),
    (dict(file_version=np.int64(99)), "file version 99"),
    (dict(rows=np.int64(301)), "packed data has shape"),
    (dict(labels_q=np.zeros(299, np.int32)), "labels have shape"),
    (dict(levels_q=np.zeros(8, np.int16)), "inconsistent level table"),
    (dict(levels=np.linspace(-1, 1, 4), levels_q=np.zeros(4, np.int16)), "level table has 4 entries"),
    (dict(bits=np.int64(9)), "bits"),
    (dict(data=None), "missing array 'data'"),
])
def test_load_rejects_inconsistent_files(qds, tmp_path, change, match):
    good, bad = tmp_path / "good.npz", tmp_path / "bad.npz"
    qds.save(good)
    _resave(good, bad, **change)
    with pytest.raises(ValueError, match=match):
        QuantizedDataset.load(bad)


def test_load_rejects_truncated_and_corrupt_files(qds, tmp_path):
    p = tmp_path / "q.npz"
    qds.save(p)
    raw = p.read_bytes()
    (tmp_path / "cut.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="cut.npz: not a readable lowbit dataset file"):
        QuantizedDataset.load(tmp_path / "cut.npz")
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(ValueError, match="text.npz"):
        QuantizedDataset.load(tmp_path / "text.npz")
    data = qds.data_lines().copy()
    data[: qds.fmt.code_bits] = 0xFF  # all-ones codes = 15, invalid for 3 bits (0..14)
    _resave(p, tmp_path / "codes.npz", data=data)
    with pytest.raises(ValueError, match="corrupt"):
        QuantizedDataset.load(tmp_path / "codes.npz")


@pytest.mark.parametrize("kw,match", [
    (dict(X=np.zeros((0, 3)), y=np.zeros(0)), "empty"),
    (dict(X=np.array([[0.1, np.nan]]), y=np.zeros(1)), "X contains NaN or inf"),
    (dict(X=np.zeros((2, 2)), y=np.array([0.0, np.inf])), "y contains NaN or inf"),
    (dict(bits=0), "bits must be an integer in 1..8"),
    (dict(bits=9), "bits must be an integer in 1..8"),
    (dict(max_features=10), "37 features exceed max_features = 10"),
    (dict(X=np.full((2, 3), 1.5), y=np.zeros(2)), r"X must be normalised to \[-1, 1\]"),
    (dict(y=np.full(300, 2.0)), r"y must be normalised"),
    (dict(y=np.zeros(5)), "y must have shape"),
    (dict(copies=0), "copies"),
    (dict(levels="log"), "unknown level kind"),
    (dict(line_bits=100), "line_bits"),
])
def test_build_rejects_bad_input_by_name(kw, match):
    X, y = normalised()
    args = dict(X=X, y=y, bits=3, progress=False) | kw
    with pytest.raises(ValueError, match=match):
        QuantizedDataset.build(args.pop("X"), args.pop("y"), **args)


def test_explicit_levels_and_single_row_single_feature():
    lv = np.array([-1.0, -0.2, 0.3, 1.0])
    q = QuantizedDataset.build(np.array([[0.05]]), np.array([0.5]), bits=2, levels=lv, progress=False)
    assert q.level_kind == "custom" and np.array_equal(q.levels, lv)
    assert q.codes.shape == (1, 1, 1) and q.codes[0, 0, 0] in (2, 3, 4)
    assert q.data_lines().shape == (3, 64)


@pytest.mark.parametrize("levels", ["uniform", "optimal"])
def test_built_in_the_engines_layout_in_one_pass(levels, tmp_path):
    """build(layout="woven") packs the same codes straight into the woven layout: its lines are
    the planes build's re-laid, its golden run is the same, and its file holds the planes lines."""
    from lowbit.driver.train import train_golden

    X, y = normalised(rows=150, features=70, seed=3)
    args = dict(bits=4, levels=levels, copies=2, seed=5, line_bits=128, progress=False)
    planes = QuantizedDataset.build(X, y, **args)
    woven = QuantizedDataset.build(X.astype(np.float32), y, layout="woven", **args)
    assert woven.fmt.layout == "woven" and woven.copies == 2
    np.testing.assert_array_equal(woven.data_lines(), planes.data_lines(woven.fmt))
    np.testing.assert_array_equal(woven.codes, planes.codes)
    a = train_golden(planes, step=0.01, batch=4, epochs=3)
    b = train_golden(woven, step=0.01, batch=4, epochs=3)
    np.testing.assert_array_equal(a.models, b.models)
    assert a.losses == b.losses
    woven.save(tmp_path / "w.npz")
    back = QuantizedDataset.load(tmp_path / "w.npz")
    assert back.fmt == planes.fmt
    np.testing.assert_array_equal(back.data_lines(), planes.data_lines())


def test_float32_data_is_quantized_as_is():
    """No float64 copy of X is made, and float32 input gives float64 input's codes."""
    X, y = normalised(rows=80, features=33, seed=4)
    X32 = X.astype(np.float32)
    a = QuantizedDataset.build(X32, y, bits=5, copies=1, seed=2, progress=False)
    b = QuantizedDataset.build(X32.astype(np.float64), y, bits=5, copies=1, seed=2, progress=False)
    np.testing.assert_array_equal(a.data_lines(), b.data_lines())
