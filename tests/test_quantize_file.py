"""``lowbit quantize X.npy`` (memory-mapped, streamed into the .npz) and ``lowbit train --data FILE.npz``."""

import json

import numpy as np
import pytest

from lowbit.cli import main
from lowbit.contract.fixed import loss_to_float
from lowbit.data import Normalizer
from lowbit.dataset import QuantizedDataset
from lowbit.driver.train import train_golden


@pytest.fixture
def npy(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(3.0, 2.0, (700, 45)).astype(np.float32)
    y = X[:, :5].sum(axis=1) + rng.normal(0, 0.1, 700)
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    return tmp_path, X, y


def test_streamed_file_equals_the_in_memory_build(npy, capsys):
    tmp, X, y = npy
    out = tmp / "q.npz"
    assert main(["quantize", str(tmp / "X.npy"), "--labels", str(tmp / "y.npy"), "--bits", "3",
                 "--copies", "3", "--seed", "4", "--line-bits", "256", "-o", str(out)]) == 0
    got = QuantizedDataset.load(out)
    norm = Normalizer().fit(X, y)
    ref = QuantizedDataset.build(norm.transform_X(X), norm.transform_y(y), bits=3, copies=3,
                                 seed=4, line_bits=256, progress=False)
    assert (got.rows, got.features, got.copies, got.fmt) == (700, 46, 3, ref.fmt)
    assert np.array_equal(got.data_lines(), ref.data_lines())
    assert np.array_equal(got.labels_q, ref.labels_q) and np.array_equal(got.levels_q, ref.levels_q)


@pytest.mark.parametrize("levels", ["uniform", "optimal"])
def test_quantize_synthetic_streams_what_build_would_save(levels, tmp_path, capsys):
    """``lowbit quantize synthetic:...`` writes the copies straight into the file: the bytes, levels
    and metadata of ``QuantizedDataset.build`` of the prepared data with the same seed."""
    from lowbit import experiment as ex

    out = tmp_path / "q.npz"
    assert main(["quantize", "synthetic:700:45", "--bits", "3", "--copies", "3", "--seed", "4", "--levels", levels,
                 "-o", str(out)]) == 0
    got = QuantizedDataset.load(out)
    p = ex.prepare("synthetic:700:45", seed=4)
    assert p.X.dtype == np.float32
    ref = QuantizedDataset.build(p.X, p.y, bits=3, copies=3, seed=4, levels=levels, progress=False)
    assert np.array_equal(got.data_lines(), ref.data_lines()) and np.array_equal(got.levels_q, ref.levels_q)
    assert (got.level_kind, got.seed, got.copies) == (levels, 4, 3) and np.array_equal(got.labels_q, ref.labels_q)


def test_train_on_a_saved_file_equals_train_golden(npy, capsys):
    tmp, _, _ = npy
    out = tmp / "q.npz"
    assert main(["quantize", str(tmp / "X.npy"), "--labels", str(tmp / "y.npy"), "--bits", "4",
                 "--levels", "optimal", "--copies", "2", "-o", str(out)]) == 0
    capsys.readouterr()
    assert main(["train", "--data", str(out), "--step", "0.001", "--epochs", "3", "--json"]) == 0
    run = json.loads(capsys.readouterr().out)["runs"][0]
    res = train_golden(QuantizedDataset.load(out), step=0.001, batch=16, epochs=3)
    assert run["engine_loss"] == [loss_to_float(a, 700) for a in res.losses]
    assert run["bits"] == 4 and run["levels"] == "optimal"


def test_clear_errors(npy, capsys):
    tmp, _, _ = npy
    assert main(["quantize", str(tmp / "X.npy"), "--bits", "2", "-o", str(tmp / "q.npz")]) == 2
    assert "--labels" in capsys.readouterr().err
    np.save(tmp / "short.npy", np.zeros(3))
    assert main(["quantize", str(tmp / "X.npy"), "--labels", str(tmp / "short.npy"), "--bits", "2",
                 "-o", str(tmp / "q.npz")]) == 2
    assert "expected 700 labels" in capsys.readouterr().err
    main(["quantize", str(tmp / "X.npy"), "--labels", str(tmp / "y.npy"), "--bits", "2", "-o", str(tmp / "q.npz")])
    capsys.readouterr()
    assert main(["train", "--data", str(tmp / "q.npz")]) == 2
    assert "give --step" in capsys.readouterr().err


def test_load_rejects_labels_out_of_range(npy, tmp_path):
    tmp, _, _ = npy
    out = tmp / "q.npz"
    main(["quantize", str(tmp / "X.npy"), "--labels", str(tmp / "y.npy"), "--bits", "2", "-o", str(out)])
    with np.load(out) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["labels_q"] = arrays["labels_q"].copy()
    arrays["labels_q"][5] = (1 << 24) + 1
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match="labels out of range"):
        QuantizedDataset.load(tmp_path / "bad.npz")
