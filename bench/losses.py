"""Logistic regression and SVM on the engine (issue 13): test accuracy against float64 SGD and
scikit-learn, and the naive against the Chebyshev estimator at b = 1..8.

Usage::

    PYTHONPATH=host:hw:sim .venv/bin/python bench/losses.py [--data mnist49 digits38] [--bits 1 2 3 4 5 6 7 8]
        [--seeds 5] [--epochs 20] [--step-scale 16] [--l2 0.01] [--degree 3] [--margin-range 4] [--sweep]

Every run trains on the same normalised data (``lowbit.experiment.prepare``: features in [-1, 1]
plus an intercept column; the data set's own 80/20 split, seed 0) with minibatch 16, the per-sample
step ``step-scale * 0.5 / (16 * mean ||x||^2)`` (``step-scale`` times ``lowbit train``'s auto step,
which is sized for least squares; the logistic loss has a quarter of its curvature, the hinge none),
the same epochs and L2 ``lambda`` per row, from w = 0:

* ``float64``: :func:`lowbit.contract.golden.reference_sgd` with the loss's exact derivative;
* ``sklearn``: ``LogisticRegression`` / ``LinearSVC(loss="hinge")`` with ``C = 1 / (lambda N)`` (the
  same objective: mean loss + lambda/2 |w|^2, intercept column regularised like the others,
  ``fit_intercept=False``), solved to convergence;
* the engine: the golden model (:func:`lowbit.contract.golden.run`, the spec) at b bits on 8
  double-sampled copies (seed s), naive or Chebyshev (degree d, fitted on margins in [-R, R]).

Accuracy is the sign of ``x . w`` on the test rows; the final loss is the loss's mean over the
unquantized training rows (without the L2 term); the distance is ``|w - w_f| / |w_f|`` to the
float64 SGD model ``w_f`` (how closely the engine follows the full-precision trajectory).
``--sweep`` prints, instead, the final loss and distance for Chebyshev degrees 1, 3, 5, 7 on margin
ranges 4 and 8 beside naive. Engine figures are the mean and standard deviation
over ``--seeds`` quantization seeds. Nothing here is in the test suite (a few minutes on one core).
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

from lowbit import experiment as ex
from lowbit.contract.losses import LossConfig

BATCH = 16
COPIES = 8
LOSSES = ("logistic", "hinge")


def sklearn_accuracy(p, loss: str, l2: float) -> float:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import LinearSVC

    C = 1.0 / (l2 * p.rows)
    if loss == "logistic":
        model = LogisticRegression(C=C, fit_intercept=False, max_iter=10_000)
    else:
        model = LinearSVC(C=C, loss="hinge", fit_intercept=False, max_iter=1_000_000)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # a figure from an unconverged solver is refused
        model.fit(p.X, p.y)
    return float(np.mean(np.sign(ex.predict(p.X_test, model.coef_.ravel())) == np.sign(p.y_test)))


def engine_runs(p, args, step, refs, estimators):
    """{(loss, (estimator, degree, range), bits): [(test accuracy, final loss, distance to the float64
    model) per seed]}."""
    out = {}
    for bits in args.bits:
        for seed in range(args.seeds):
            qds = ex.quantize(p, bits=bits, levels="uniform", copies=COPIES, seed=seed)
            for loss in LOSSES:
                w_f = refs[loss][3]
                for est in estimators:
                    lc = LossConfig(loss=loss, estimator=est[0], degree=est[1], margin_range=est[2], l2=args.l2)
                    run = ex.run_engine(p, qds, backend="golden", step=step, batch=BATCH, epochs=args.epochs,
                                        levels_name="uniform", loss=lc)
                    dist = np.linalg.norm(run.model - w_f) / np.linalg.norm(w_f)
                    out.setdefault((loss, est, bits), []).append((run.test_metric, run.train_loss[-1], dist))
    return out


def _pm(values, scale=1.0, fmt="{:.2f}"):
    v = np.asarray(values) * scale
    return f"{fmt.format(v.mean())} ± {fmt.format(v.std(ddof=1) if v.size > 1 else 0.0)}"


def _header(name, p, args, step):
    print(f"\n### {name}: {p.rows} training rows, {p.X_test.shape[0]} test rows (one row = "
          f"{100 / p.X_test.shape[0]:.2f} pp), {p.features} features with the intercept\n")
    print(f"step {step:.4g} ({args.step_scale:g} x auto), {args.epochs} epochs, batch {BATCH}, L2 {args.l2:g}, "
          f"{COPIES} copies, Chebyshev degree {args.degree} on [-{args.margin_range}, {args.margin_range}], "
          f"{args.seeds} seeds\n")

def report(name, p, args, step, refs, runs):
    _header(name, p, args, step)
    print("| loss | float64 acc % | sklearn acc % | float64 final loss |")
    print("|---|---|---|---|")
    for loss in LOSSES:
        f_acc, f_loss, s_acc, _ = refs[loss]
        print(f"| {loss} | {100 * f_acc:.2f} | {100 * s_acc:.2f} | {f_loss:.4f} |")
    naive, cheb = ("naive", 1, 1), ("chebyshev", args.degree, args.margin_range)
    for loss in LOSSES:
        f_acc, f_loss, s_acc, _ = refs[loss]
        print(f"\n{loss}: test accuracy %, final training loss and distance to the float64 model "
              f"|w - w_f| / |w_f|, mean ± sd over seeds; Δ = mean accuracy minus float64 / sklearn, in pp\n")
        print("| b | naive acc % | Chebyshev acc % | naive Δ float / sklearn | Chebyshev Δ float / sklearn "
              "| naive loss | Chebyshev loss | naive dist | Chebyshev dist |")
        print("|---|---|---|---|---|---|---|---|---|")
        for bits in args.bits:
            n, c = np.array(runs[(loss, naive, bits)]), np.array(runs[(loss, cheb, bits)])
            dn = f"{100 * (n[:, 0].mean() - f_acc):+.2f} / {100 * (n[:, 0].mean() - s_acc):+.2f}"
            dc = f"{100 * (c[:, 0].mean() - f_acc):+.2f} / {100 * (c[:, 0].mean() - s_acc):+.2f}"
            print(f"| {bits} | {_pm(n[:, 0], 100)} | {_pm(c[:, 0], 100)} | {dn} | {dc} | "
                  f"{_pm(n[:, 1], fmt='{:.4f}')} | {_pm(c[:, 1], fmt='{:.4f}')} | "
                  f"{_pm(n[:, 2], fmt='{:.3f}')} | {_pm(c[:, 2], fmt='{:.3f}')} |")


def report_sweep(name, p, args, step, refs, runs, estimators):
    """The Chebyshev estimator's degree and range against naive: final loss and distance to float64."""
    _header(name, p, args, step)
    for loss in LOSSES:
        print(f"\n{loss} (float64 final loss {refs[loss][1]:.4f}): final training loss / distance to the "
              f"float64 model, mean over seeds\n")
        print("| estimator | " + " | ".join(f"b={b}" for b in args.bits) + " |")
        print("|---|" + "---|" * len(args.bits))
        for est in estimators:
            label = "naive" if est[0] == "naive" else f"chebyshev d={est[1]} R={est[2]}"
            cells = [np.array(runs[(loss, est, b)]) for b in args.bits]
            print(f"| {label} | " + " | ".join(f"{c[:, 1].mean():.4f} / {c[:, 2].mean():.3f}" for c in cells) + " |")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", nargs="+", default=["mnist49", "digits38"])
    ap.add_argument("--bits", type=int, nargs="+", default=list(range(1, 9)))
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--step-scale", type=float, default=16.0)
    ap.add_argument("--l2", type=float, default=0.01)
    ap.add_argument("--degree", type=int, default=3)
    ap.add_argument("--margin-range", type=int, default=4)
    ap.add_argument("--sweep", action="store_true",
                    help="Chebyshev degree 1, 3, 5, 7 on ranges 4 and 8 against naive, instead of the main tables")
    args = ap.parse_args(argv)
    if args.sweep:
        estimators = [("naive", 1, 1)] + [("chebyshev", d, r) for r in (4, 8) for d in (1, 3, 5, 7)]
    else:
        estimators = [("naive", 1, 1), ("chebyshev", args.degree, args.margin_range)]
    t0 = time.perf_counter()
    for name in args.data:
        p = ex.prepare(name, seed=0)
        step = args.step_scale * 0.5 / (BATCH * float(np.mean(np.sum(p.X * p.X, axis=1))))
        refs = {}
        for loss in LOSSES:
            f = ex.run_float(p, step=step, batch=BATCH, epochs=args.epochs, loss=LossConfig(loss=loss, l2=args.l2))
            refs[loss] = (f.test_metric, f.train_loss[-1], sklearn_accuracy(p, loss, args.l2), f.model)
        runs = engine_runs(p, args, step, refs, estimators)
        if args.sweep:
            report_sweep(name, p, args, step, refs, runs, estimators)
        else:
            report(name, p, args, step, refs, runs)
    print(f"\n({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
