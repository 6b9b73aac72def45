"""``lowbit train --loss / --estimator / --degree / --l2 / --test / --holdout`` (issue 13): what the
JSON reports, what is refused before any work, and a held-out split that does not move."""

import json

import numpy as np
import pytest
from sklearn.datasets import dump_svmlight_file

from driver_fixtures import woven_server  # noqa: F401  (pytest fixture)
from lowbit.cli import main
from lowbit.experiment import HOLDOUT_SEED, prepare


def run_cli(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def libsvm(tmp_path_factory):
    """A separable two-class LIBSVM training file with {0, 1} labels, and a test file whose last
    feature is never set (so LIBSVM stores one feature fewer)."""
    d = tmp_path_factory.mktemp("libsvm")
    rng = np.random.default_rng(4)
    w = rng.normal(size=6)
    X = rng.uniform(-1, 1, (300, 6))
    Xt = rng.uniform(-1, 1, (80, 6))
    Xt[:, -1] = 0
    dump_svmlight_file(X, (X @ w > 0).astype(int), str(d / "train.svm"))
    dump_svmlight_file(Xt[:, :5], (Xt @ w > 0).astype(int), str(d / "test.svm"))
    return d / "train.svm", d / "test.svm"


def test_json_reports_loss_estimator_and_test_accuracy(capsys, tmp_path):
    plot = tmp_path / "acc.png"
    code, out, _ = run_cli(capsys, "train", "--data", "digits38", "--bits", "4", "--epochs", "3", "--loss",
                           "logistic", "--estimator", "chebyshev", "--degree", "2", "--l2", "0.001", "--json",
                           "--plot", str(plot))
    assert code == 0
    runs = json.loads(out)["runs"]
    assert [(r["label"], r["loss"], r["estimator"], r["degree"]) for r in runs] == [
        ("float64", "logistic", "exact", None), ("b=4 uniform logistic chebyshev2 l2=0.001", "logistic", "chebyshev", 2)]
    for r in runs:
        assert r["metric_name"] == "test accuracy" and r["test_metric"] > 0.9 and r["l2"] == 0.001
        assert r["train_loss"][-1] < np.log(2)  # below the all-zero model's logistic loss
    assert plot.stat().st_size > 10_000


def test_test_file_and_holdout(capsys, libsvm):
    train, test = libsvm
    code, out, _ = run_cli(capsys, "train", "--data", str(train), "--test", str(test), "--loss", "hinge",
                           "--epochs", "3", "--json")
    assert code == 0
    assert all(r["test_metric"] > 0.85 for r in json.loads(out)["runs"])
    a = prepare(str(train), seed=0, holdout=0.25)
    b = prepare(str(train), seed=7, holdout=0.25)  # the split's seed is HOLDOUT_SEED, not --seed
    assert HOLDOUT_SEED == 13 and a.X_test.shape == (75, 7) and a.X.shape == (225, 7)
    assert np.array_equal(a.X_test, b.X_test) and np.array_equal(a.y, b.y)
    assert set(np.unique(a.y_test)) == {-1.0, 1.0}


@pytest.mark.parametrize("argv, message", [
    (["--backend", "sim", "--loss", "logistic", "--levels", "optimal", "--data", "digits38"],
     r"the sim \(planes\) engine is built without LOSS logistic and hinge"),
    (["--backend", "sim", "--engine", "planes", "--loss", "hinge", "--data", "digits38"],
     r"the sim \(planes\) engine is built without LOSS logistic"),
    (["--backend", "sim", "--engine", "planes", "--l2", "0.01"],
     r"the sim \(planes\) engine is built without L2 regularisation"),
    (["--backend", "sim", "--engine", "planes", "--loss", "hinge", "--estimator", "chebyshev", "--degree", "1",
      "--copies", "2", "--data", "digits38"], r"the sim \(planes\) engine is built without .*ESTIMATOR.KIND chebyshev"),
    (["--loss", "logistic"], "needs a classification data set"),
    (["--estimator", "chebyshev"], "--estimator chebyshev is for --loss logistic or hinge"),
    (["--loss", "hinge", "--estimator", "chebyshev", "--degree", "4", "--copies", "3", "--data", "digits38"],
     "reads 5 independent copies .*--copies >= 5"),
    (["--data", "digits38", "--test", "/nonexistent.svm"], "does not exist"),
])
def test_refused_before_any_work_with_one_line(capsys, argv, message):
    code, out, err = run_cli(capsys, "train", *argv)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1
    assert __import__("re").search(message, err), err


@pytest.mark.parametrize("argv, message", [
    (["--degree", "0"], "--degree takes an integer in 1..8"),
    (["--margin-range", "6"], "power of two"),
    (["--l2", "-1"], "--l2 takes a number in"),
    (["--holdout", "1"], "--holdout takes a fraction"),
    (["--test", "a.svm", "--holdout", "0.2"], "not allowed with"),
    (["--loss", "cubic"], "invalid choice"),
])
def test_bad_loss_options_exit_2(capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        main(["train", *argv])
    assert exc.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("loss, extra", [("logistic", []), ("hinge", []), ("squared", ["--l2", "0.01"]),
                                         ("logistic", ["--l2", "0.01"]), ("hinge", ["--l2", "0.003"]),
                                         ("logistic", ["--estimator", "chebyshev", "--degree", "3", "--copies", "5"]),
                                         ("hinge", ["--estimator", "chebyshev", "--degree", "2", "--copies", "3",
                                                    "--l2", "0.001"])])
def test_sim_backend_equals_the_golden_model_bit_for_bit(capsys, libsvm, woven_server, tmp_path, loss, extra):
    """``--backend sim`` (the woven core's RTL under Verilator, BUILT.NONLINEAR, L2 and CHEBYSHEV)
    trains logistic and hinge with either estimator, and every loss with L2, exactly as
    ``--backend golden`` (the spec): every epoch's loss, the final model. (Least squares on {0, 1}
    labels is still a regression.)"""
    from lowbit.contract.simprocess import start_server

    train, _ = libsvm
    common = ["train", "--data", str(train), "--loss", loss, *extra, "--bits", "2,4", "--epochs", "2", "--no-float",
              "--json"]
    server = start_server(woven_server, once=True)
    try:
        code, out, _ = run_cli(capsys, *common, "--backend", "sim", "--socket", str(server.socket_path),
                               "--save-model", str(tmp_path / "sim.npz"))
    finally:
        server.stop()
    assert code == 0
    sim = json.loads(out)["runs"]
    code, out, _ = run_cli(capsys, *common, "--backend", "golden", "--save-model", str(tmp_path / "golden.npz"))
    assert code == 0
    gold = json.loads(out)["runs"]
    assert [r["backend"] for r in sim] == ["sim", "sim"] and [r["backend"] for r in gold] == ["golden", "golden"]
    assert [(r["label"], r["train_loss"]) for r in sim] == [(r["label"], r["train_loss"]) for r in gold]
    assert all(r["train_loss"][-1] < r["train_loss"][0] for r in sim)
    with np.load(tmp_path / "sim.npz") as a, np.load(tmp_path / "golden.npz") as b:
        assert sorted(a.files) == sorted(b.files) and len(a.files) == 6
        for key in a.files:
            assert np.array_equal(a[key], b[key]), key
