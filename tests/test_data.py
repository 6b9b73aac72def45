"""Data loaders and the Normalizer (lowbit.data)."""

import re

import numpy as np
import pytest

import lowbit.data
from lowbit.data import (Dataset, DrawnRows, Normalizer, column_room, load_dataset, load_test_libsvm, read_libsvm,
                         synthetic)


def test_synthetic_default_and_sized():
    d = load_dataset("synthetic")
    assert d.X.shape == (10000, 100) and d.y.shape == (10000,) and d.task == "regression"
    assert d.X_test.shape == (2000, 100)
    assert d.X.min() >= -1 and d.X.max() <= 1
    s = load_dataset("synthetic:50:7", seed=3)
    assert s.X.shape == (50, 7) and s.name == "synthetic:50:7"
    assert np.array_equal(s.X, load_dataset("synthetic:50:7", seed=3).X)  # seeded
    assert not np.array_equal(s.X, load_dataset("synthetic:50:7", seed=4).X)


def test_synthetic_is_linear_at_signal_to_noise_10():
    d = synthetic(4000, 20, seed=0)
    A = np.c_[d.X, np.ones(len(d.y))]
    w = np.linalg.lstsq(A, d.y, rcond=None)[0]
    r2 = 1 - np.var(A @ w - d.y) / np.var(d.y)
    assert 0.98 < r2 < 0.995  # noise sd = 0.1 x signal sd: R^2 = 1 / 1.01


def test_mnist49_is_offline_binary_and_split():
    d = load_dataset("mnist49")
    assert d.task == "classification" and d.X.shape[1] == 784
    assert d.X.shape[0] + d.X_test.shape[0] == 1000  # 500 fours and 500 nines in the 5k subset
    assert d.X_test.shape[0] == 200
    assert set(np.unique(d.y)) == {-1.0, 1.0} and set(np.unique(d.y_test)) == {-1.0, 1.0}
    assert 0.4 < np.mean(d.y == 1) < 0.6
    assert d.X.min() == 0 and d.X.max() == 255
    assert np.array_equal(load_dataset("mnist49", seed=0).y, d.y)
    assert not np.array_equal(load_dataset("mnist49", seed=1).y, d.y)


def test_libsvm_file_two_classes_become_plus_minus_one(tmp_path):
    p = tmp_path / "tiny.svm"
    p.write_text("2 1:0.5 3:1.5\n7 2:-1\n2 1:2 2:1 3:0.25\n")
    d = load_dataset(str(p))
    assert d.name == "tiny" and d.task == "classification"
    assert d.X.shape == (3, 3)
    assert d.y.tolist() == [-1.0, 1.0, -1.0]
    assert np.array_equal(d.X[0], [0.5, 0, 1.5])


def test_libsvm_regression_labels_are_kept(tmp_path):
    p = tmp_path / "reg.svm"
    p.write_text("0.5 1:1\n-2.5 1:2\n3 2:1\n")
    d = load_dataset(str(p))
    assert d.task == "regression" and d.y.tolist() == [0.5, -2.5, 3.0]


@pytest.mark.parametrize("text,match", [
    ("1 1:0.5\n-1 x:y\n", "malformed LIBSVM file .*bad.svm"),
    ("1 1:0.5 1:2\n", "malformed LIBSVM file .*bad.svm"),
    ("", "bad.svm"),
    ("1 1:nan\n-1 1:2\n", "bad.svm.*NaN or inf"),
    # ... and the parser's own errors name the line
    *((text, f"malformed LIBSVM file .*bad.svm.*{re.escape(message)}") for text, message in [
        ("1 1:1\n-1 x:1\n", "a feature index that is not an integer (line 2)"),
        ("1 1:1\n\n# c\n1 3:1 2:1\n", "feature indices not sorted and unique (line 4)"),
        ("1 2:\n", "a feature without a value (line 1)"),
        ("1 2:1 3\n", "a feature that is not index:value (line 1)"),
        ("1 1:abc\n", "a label or value that is not a number (line 1)"),
        ("1 -3:1\n", "invalid feature index -3 (line 1)"),
    ]),
])
def test_malformed_libsvm_file_is_named(tmp_path, text, match):
    p = tmp_path / "bad.svm"
    p.write_text(text)
    with pytest.raises(ValueError, match=match):
        load_dataset(str(p))


@pytest.mark.parametrize("spec,kw,match", [
    ("nope", {}, "unknown dataset 'nope'"),
    ("synthetic:10", {}, "bad synthetic spec"),
    ("synthetic:a:b", {}, "bad synthetic spec"),
    ("synthetic:10:50", {"max_features": 20}, "50 features, more than max_features = 20"),
    ("mnist49", {"max_features": 100}, "784 features"),
])
def test_bad_specs_are_named(spec, kw, match):
    with pytest.raises(ValueError, match=match):
        load_dataset(spec, **kw)


def test_libsvm_over_max_features(tmp_path):
    p = tmp_path / "wide.svm"
    p.write_text("1 30:1\n-1 1:1\n")
    with pytest.raises(ValueError, match="30 features, more than max_features = 8"):
        load_dataset(str(p), max_features=8)


# ------------------------------------------------------------------ LIBSVM in blocks, float32
def libsvm_text(rng, rows, features, *, zero_based, density):
    """A LIBSVM file's text (rows of varying density, some empty) and its dense float64 matrix."""
    X = np.round(rng.normal(0, 10, (rows, features)), 3)
    X[rng.random((rows, features)) > density] = 0
    X[rng.random(rows) < 0.1] = 0  # empty rows
    y = rng.integers(0, 3, rows).astype(float)
    lines = []
    for i in range(rows):
        nz = np.flatnonzero(X[i])
        lines.append(" ".join([f"{y[i]:g}"] + [f"{j + (0 if zero_based else 1)}:{X[i, j]:.17g}" for j in nz]))
    return "\n".join(lines) + "\n", X, y


@pytest.mark.parametrize("block_bytes", [64, 1000, 1 << 24])
@pytest.mark.parametrize("zero_based, density, suffix", [(False, 0.9, ".svm"), (True, 0.05, ".svm"),
                                                         (False, 0.3, ".svm.gz")])
def test_libsvm_read_in_blocks_equals_scikit_learn(tmp_path, monkeypatch, block_bytes, zero_based, density, suffix):
    """Any block size gives scikit-learn's whole-file parse (zero_based="auto" over the file),
    dense and sparse blocks alike, as float32 with room for the intercept column."""
    from sklearn.datasets import load_svmlight_file

    text, _, _ = libsvm_text(np.random.default_rng(1), 60, 9, zero_based=zero_based, density=density)
    path = tmp_path / f"f{suffix}"
    if suffix.endswith(".gz"):
        import gzip

        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text("# a comment line\n" + text[:-1])  # and no newline at the end
    monkeypatch.setattr(lowbit.data, "LIBSVM_BLOCK_BYTES", block_bytes)
    X, y = read_libsvm(path, what="f", extra_columns=1)
    Xs, ys = load_svmlight_file(str(path))
    assert X.dtype == np.float32 and X.shape == Xs.shape
    assert np.array_equal(X, Xs.toarray().astype(np.float32)) and np.array_equal(y, ys)
    room = column_room(X, 1)
    assert room is not None and room.shape == (X.shape[0], X.shape[1] + 1)


def test_libsvm_block_parser_agrees_with_scikit_learn_on_random_text():
    """Random lines (signs, exponents, tabs, CRLF, comments, qid, blank lines, empty rows) parse
    to scikit-learn's CSR; a malformed line anywhere is refused by both."""
    import io

    from sklearn.datasets import load_svmlight_file

    from lowbit.data import parse_libsvm_block

    rng = np.random.default_rng(7)
    forms = ["{:.17g}", "{:.3e}", "{:+.4f}", "{:g}", "{:.6E}"]

    def number():
        return forms[rng.integers(len(forms))].format(rng.normal() * 10.0 ** rng.integers(-3, 4))

    def line():
        parts = [number() if rng.random() < 0.8 else str(rng.integers(-1, 2))]
        if rng.random() < 0.1:
            parts.append(f"qid:{rng.integers(9)}")
        parts += [f"{j}:{number()}" for j in np.sort(rng.choice(50, rng.integers(0, 12), replace=False))]
        text = [" ", "\t", " \t "][rng.integers(3)].join(parts)
        text += " # a comment 3:4 qid:1 ::" if rng.random() < 0.1 else ""
        text = rng.choice([text, text, text, text, text, "# a comment line", "   ", " " + text + " "])
        return text + ("\r\n" if rng.random() < 0.1 else "\n")

    bad = ["1 x:1", "1 1:", "1 :2", "1 2:3:4", "a 1:2", "1 3:1 2:1", "1 1:1 1:2", "1 -1:2", "1 1.5:2", "1 1:abc",
           "1:2 3:4", "1 qid 2:1", "1 1:2x", "1 99999999999:1", "1 2:1 qid:3"]
    for trial in range(120):
        lines = [line() for _ in range(rng.integers(1, 30))]
        broken = trial % 4 == 0
        if broken:
            lines.insert(rng.integers(len(lines) + 1), bad[trial // 4 % len(bad)] + "\n")
        text = "".join(lines).encode()
        if broken:
            with pytest.raises((ValueError, OverflowError)):  # scikit-learn: an index over a C int overflows
                load_svmlight_file(io.BytesIO(text), zero_based=True)
            with pytest.raises(ValueError, match=r"\(line \d+\)"):
                parse_libsvm_block(text)
            continue
        y, indptr, indices, values = parse_libsvm_block(text)
        Xs, ys = load_svmlight_file(io.BytesIO(text), zero_based=True)
        assert np.array_equal(y, ys) and np.array_equal(indptr, Xs.indptr)
        assert np.array_equal(indices, Xs.indices) and np.array_equal(values, Xs.data)


def test_libsvm_test_file_is_zero_padded_to_the_training_features(tmp_path):
    p = tmp_path / "t.svm"
    p.write_text("1 1:0.5\n-1 2:2\n")
    X, y = load_test_libsvm(p, features=4, task="classification", extra_columns=1)
    assert X.shape == (2, 4) and X.dtype == np.float32 and column_room(X, 1) is not None
    assert np.array_equal(X, [[0.5, 0, 0, 0], [0, 2, 0, 0]]) and y.tolist() == [1.0, -1.0]
    with pytest.raises(ValueError, match="has 2 features, the training set 1"):
        load_test_libsvm(p, features=1, task="classification")


def test_libsvm_refused_as_its_blocks_arrive(tmp_path, monkeypatch):
    """The feature count and the dense size are checked per block, before the rest is parsed."""
    p = tmp_path / "big.svm"
    p.write_text("1 1:1\n" * 50 + "1 5000:1\n" + "1 1:1\n" * 50)
    monkeypatch.setattr(lowbit.data, "LIBSVM_BLOCK_BYTES", 64)
    with pytest.raises(ValueError, match="5000 features, more than max_features = 100 .its largest feature index is 5000"):
        read_libsvm(p, what="big.svm", max_features=100)
    monkeypatch.setattr(lowbit.data, "available_memory", lambda: 100_000)
    with pytest.raises(ValueError, match=r"big.svm: 5\d rows x 5000 features is .* as dense float32"):
        read_libsvm(p, what="big.svm")  # at the block holding row 51 of 101


def test_synthetic_is_float32_drawn_in_blocks_as_one_float64_draw():
    """float32 synthetic data are the float64 draws rounded (labels from the float64 draws), with
    room for the intercept column when asked; the test split is drawn again when read, the same
    values; float64 (engine_problem) is the one draw, stored."""
    a = synthetic(3000, 150, seed=5, extra_columns=1)
    b = synthetic(3000, 150, seed=5, dtype=np.float64)
    assert a.X.dtype == np.float32 and b.X.dtype == np.float64 and a.X_test.dtype == np.float32
    assert isinstance(a.X_test, DrawnRows) and a.X_test.shape == (600, 150) and isinstance(b.X_test, np.ndarray)
    assert np.array_equal(a.X, b.X.astype(np.float32)) and np.array_equal(a.X_test, b.X_test.astype(np.float32))
    np.testing.assert_allclose(a.y, b.y, rtol=0, atol=1e-12)  # the same labels, up to the matvec's blocking
    np.testing.assert_allclose(a.y_test, b.y_test, rtol=0, atol=1e-12)
    assert column_room(a.X, 1).shape == (3000, 151) and column_room(b.X, 1) is None
    # any block of rows, in any order, is the same rows
    full = b.X_test.astype(np.float32)
    assert np.array_equal(a.X_test[417:599], full[417:599]) and np.array_equal(a.X_test[5], full[5])
    assert np.array_equal(a.X_test[-1], full[-1]) and np.array_equal(a.X_test[10:20, 3], full[10:20, 3])
    assert a.X_test[600:700].shape == (0, 150)
    with pytest.raises(TypeError, match="contiguous slices"):
        a.X_test[[1, 2]]
    # a generator that cannot jump ahead stores its test split
    mt = synthetic(100, 4, rng=np.random.Generator(np.random.MT19937(1)))
    assert isinstance(mt.X_test, np.ndarray) and mt.X_test.dtype == np.float32


def test_drawn_test_split_is_normalised_as_it_is_drawn():
    from lowbit.experiment import prepare, predict

    p = prepare("synthetic:2000:30", seed=3)
    d = load_dataset("synthetic:2000:30", seed=3)
    assert isinstance(p.X_test, DrawnRows) and p.X_test.shape == (400, 31)
    ref = p.normalizer.transform_X(np.asarray(d.X_test))
    assert np.array_equal(np.asarray(p.X_test), ref) and np.array_equal(p.X_test[100:250], ref[100:250])
    w = np.random.default_rng(0).normal(size=31)
    np.testing.assert_allclose(predict(p.X_test, w), ref.astype(np.float64) @ w, rtol=1e-12)


def test_normalizer_in_place_equals_a_new_array():
    d = synthetic(500, 30, seed=2, extra_columns=1)
    n = Normalizer().fit(d.X, d.y)
    ref = n.transform_X(d.X.copy())
    assert ref.dtype == np.float32
    room = column_room(d.X, 1)
    got = n.transform_X(d.X, out=room)
    assert got is room and np.array_equal(got, ref) and np.all(got[:, -1] == 1.0)
    # float64 input keeps float64 and the old arithmetic
    X, y = raw_data()
    assert Normalizer().fit(X, y).transform_X(X).dtype == np.float64
    with pytest.raises(ValueError, match="not overlapping X"):
        n.transform_X(room[:, 1:31], out=room)


@pytest.mark.parametrize("X,y,match", [
    (np.zeros((0, 3)), np.zeros(0), "empty"),
    (np.array([[1.0, np.inf]]), np.zeros(1), "NaN or inf"),
    (np.array([[1.0, 2.0]]), np.array([np.nan]), "NaN or inf"),
    (np.zeros(3), np.zeros(3), "2-D"),
    (np.zeros((3, 2)), np.zeros(2), "shape"),
])
def test_dataset_rejects_bad_data(X, y, match):
    with pytest.raises(ValueError, match=match):
        Dataset("bad", X, y)


# ------------------------------------------------------------------------------- Normalizer
def raw_data(seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(5, 3, (200, 4)) * [1, 10, 0.01, 1]
    X[:, 3] = 7.0  # a constant feature
    y = X[:, :3] @ [2.0, -0.1, 50.0] + 3.0 + rng.normal(0, 0.1, 200)
    return X, y


def test_normalizer_ranges():
    X, y = raw_data()
    n = Normalizer().fit(X, y)
    Xn, yn = n.transform_X(X), n.transform_y(y)
    assert Xn.shape == (200, 5)
    assert np.allclose(Xn[:, :3].min(axis=0), -1) and np.allclose(Xn[:, :3].max(axis=0), 1)
    assert np.all(Xn[:, 3] == 0)  # constant feature -> 0
    assert np.all(Xn[:, 4] == 1.0)  # intercept column, exactly the top level
    assert np.abs(yn).max() == pytest.approx(1.0)
    # test data outside the training range is clipped into the engine's range
    assert n.transform_X(X * 3).max() <= 1 and n.transform_X(X * 3).min() >= -1
    assert Normalizer(intercept=False).fit(X, y).transform_X(X).shape == (200, 4)


@pytest.mark.parametrize("intercept", [True, False])
def test_model_maps_back_to_original_units(intercept):
    """A model fitted in normalised units predicts the same in original units via (coef, intercept)."""
    X, y = raw_data()
    n = Normalizer(intercept=intercept).fit(X, y)
    Xn, yn = n.transform_X(X), n.transform_y(y)
    w = np.linalg.lstsq(Xn, yn, rcond=None)[0]
    coef, b = n.model_to_original(w)
    assert coef.shape == (4,) and coef[3] == 0.0
    assert np.allclose(X @ coef + b, n.inverse_y(Xn @ w), atol=1e-9)
    if intercept:  # the least-squares fit recovers the generating model in original units
        assert np.allclose(coef[:3], [2.0, -0.1, 50.0], rtol=0.02) and b == pytest.approx(3.0, abs=0.5)


def test_normalizer_errors():
    X, y = raw_data()
    with pytest.raises(ValueError, match="not fitted"):
        Normalizer().transform_X(X)
    n = Normalizer().fit(X, y)
    with pytest.raises(ValueError, match="shape"):
        n.transform_X(X[:, :2])
    with pytest.raises(ValueError, match="5 weights"):
        n.model_to_original(np.zeros(4))
    with pytest.raises(ValueError, match="NaN or inf"):
        n.transform_X(np.full((1, 4), np.nan))
