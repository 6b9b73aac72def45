"""Logistic regression and SVM on the engine (issue 13): test accuracy against float64 SGD and
scikit-learn, and the naive against the Chebyshev estimator at b = 1..8.

Usage::

    PYTHONPATH=host:hw:sim .venv/bin/python bench/losses.py [--data mnist49 digits38] [--bits 1 2 3 4 5 6 7 8]
        [--seeds 5] [--epochs 50] [--step-scale 4] [--l2 0.1] [--degree 3] [--margin-range 4]
        [--sweep | --check-references | --settings L2,SCALE,EPOCHS ...]

Every run trains on the same normalised data (``lowbit.experiment.prepare``: features in [-1, 1]
plus an intercept column; the data set's own 80/20 split, seed 0) with minibatch 16, the per-sample
step ``step-scale * 0.5 / (16 * mean ||x||^2)`` (``step-scale`` times ``lowbit train``'s auto step,
which is sized for least squares; the logistic loss has a quarter of its curvature, the hinge none),
the same epochs and L2 ``lambda`` per row, from w = 0. The defaults (L2 0.1, 4 x the auto step, 50 epochs) are the setting under which
float64 SGD reaches the objective's minimiser closely enough that the two references below agree
(docs/zipml.md: at L2 0.01 constant-step SGD on the MNIST hinge stalls 0.28 from it even after 500
epochs, and the references then differ by a test row):

* ``float64``: :func:`lowbit.contract.golden.reference_sgd` with the loss's exact derivative;
* ``sklearn``: ``LogisticRegression`` / ``LinearSVC(loss="hinge")`` with ``C = 1 / (lambda N)`` (the
  same objective: mean loss + lambda/2 |w|^2, intercept column regularised like the others,
  ``fit_intercept=False``), solved to convergence (``tol=1e-8``: with the default 1e-4 the MNIST
  logistic model stopped 0.9% (relative distance) from the independent solve of
  ``--check-references``), i.e. the objective's minimiser. ``LinearSVC``'s default loss is the
  *squared* hinge, hence ``loss="hinge"``; ``fit_intercept=False`` because the engine's intercept is
  an ordinary, regularised column of ``X`` (liblinear's own intercept would be a second one,
  penalised through ``intercept_scaling``). ``--l2 0`` has no finite ``C``: the bench then uses
  :data:`C_NO_L2` (the hard-margin SVM on separable data) and prints it;
* the engine: the golden model (:func:`lowbit.contract.golden.run`, the spec) at b bits on 8
  double-sampled copies (seed s), naive or Chebyshev (degree d, fitted on margins in [-R, R]).

Accuracy is the sign of ``x . w`` on the test rows; the final loss is the loss's mean over the
unquantized training rows (without the L2 term); the distance is ``|w - w_f| / |w_f|`` to the
float64 SGD model ``w_f`` (how closely the engine follows the full-precision trajectory). The
reference table also gives each reference's objective (mean loss + lambda/2 |w|^2), the float64
model's distance to the scikit-learn minimiser, the test rows the two classify differently and
float64 SGD's test accuracy over its last five epochs (how much the final iterate itself moves).
``--sweep`` prints, instead, the final loss and distance for Chebyshev degrees 1, 3, 5, 7 on margin
ranges 4 and 8 beside naive. ``--check-references`` prints, instead, an independent check that
the scikit-learn models are the objective's minimisers: the hinge's dual (a box-constrained
quadratic) and the logistic primal, each solved by SciPy's L-BFGS-B, with the duality gap for the
hinge, the settings it does not use (scikit-learn's defaults, the squared hinge, a free intercept)
for comparison, then the reference table alone (no engine runs; with ``--epochs E`` it shows how far float64
SGD is from the minimiser after E epochs). ``--settings L2,SCALE,EPOCHS ...``
prints, instead, for each setting: the references, float64 SGD's objective over the minimum, and the
naive estimator's mean test accuracy at b = 2 and 4 with the issue's verdicts (within 0.5 pp of
both references at b = 4, 1 pp at b = 2): how much the targets depend on the setting. Engine figures are the mean and standard deviation over
``--seeds`` quantization seeds. Nothing here is in the test suite (a few minutes on one core).
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
#: scikit-learn's C for ``--l2 0`` (no finite C matches): large enough that the hinge's solution is
#: the hard-margin SVM on separable data; the logistic loss then has no minimiser at all.
C_NO_L2 = 1e6


def sklearn_C(l2: float, rows: int) -> float:
    """scikit-learn's ``C`` for the engine's objective ``mean loss + (l2/2)|w|^2``:
    ``1/2 |w|^2 + C sum loss`` is that objective times ``1 / l2`` when ``C = 1 / (l2 N)``."""
    return 1.0 / (l2 * rows) if l2 > 0 else C_NO_L2


def step_for(p, scale: float) -> float:
    """The bench's per-sample step: ``scale * 0.5 / (16 * mean ||x||^2)``, the mean over the rows'
    float32 sums of squares (``lowbit.experiment.auto_step`` sums in float64: 2e-9 relative apart
    on these data sets; the bench's tables were measured with this one)."""
    return scale * 0.5 / (BATCH * float(np.mean(np.sum(p.X * p.X, axis=1))))


def accuracy(p, w) -> float:
    return float(np.mean(np.sign(ex.predict(p.X_test, w)) == np.sign(p.y_test)))


def objective(p, w, loss: str, l2: float) -> float:
    """The objective both references minimise: mean training loss + (l2/2)|w|^2."""
    return float(ex.training_loss(p.X, p.y, w, loss)[0] + 0.5 * l2 * float(w @ w))


def sklearn_model(p, loss: str, l2: float) -> np.ndarray:
    """The scikit-learn minimiser of the engine's objective (float64 weights, intercept column included)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import LinearSVC

    C = sklearn_C(l2, p.rows)
    if loss == "logistic":
        model = LogisticRegression(C=C, fit_intercept=False, tol=1e-8, max_iter=100_000)
    else:
        model = LinearSVC(C=C, loss="hinge", fit_intercept=False, tol=1e-8, max_iter=1_000_000)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # a figure from an unconverged solver is refused
        model.fit(p.X, p.y)
    return model.coef_.ravel().astype(np.float64)


def exact_model(p, loss: str, l2: float):
    """The same minimiser by another route (``--check-references``): SciPy's L-BFGS-B on the
    hinge's dual ``min 1/2 |Z^T a|^2 - sum a, 0 <= a <= C`` (``Z`` the rows times their label's sign,
    ``w = Z^T a``), or on the logistic primal. Returns ``(w, relative duality gap or None)``."""
    from scipy.optimize import minimize

    from lowbit.contract.losses import label_signs

    Z = np.asarray(p.X, dtype=np.float64) * label_signs(p.y)[:, None]
    n = Z.shape[0]
    opts = dict(maxiter=100_000, maxfun=1_000_000, ftol=1e-15, gtol=1e-12)
    if loss == "hinge":
        C = sklearn_C(l2, n)

        def dual(a):
            w = Z.T @ a
            return 0.5 * float(w @ w) - float(a.sum()), Z @ w - 1.0

        r = minimize(dual, np.zeros(n), jac=True, method="L-BFGS-B", bounds=[(0.0, C)] * n, options=opts)
        w = Z.T @ r.x
        primal = 0.5 * float(w @ w) + C * float(np.maximum(0.0, 1.0 - Z @ w).sum())
        return w, (primal + r.fun) / primal

    def primal(w):  # mean logistic loss + l2/2 |w|^2
        t = Z @ w
        return (float(np.logaddexp(0.0, -t).mean()) + 0.5 * l2 * float(w @ w),
                Z.T @ (-0.5 * (1.0 - np.tanh(t / 2))) / n + l2 * w)

    r = minimize(primal, np.zeros(Z.shape[1]), jac=True, method="L-BFGS-B", options=opts)
    return r.x, None


def check_references(name, p, args):
    print(f"\n### {name}: the scikit-learn references against an independent solve (L2 {args.l2:g}, "
          f"C = {sklearn_C(args.l2, p.rows):.4g})\n")
    print("| loss | sklearn objective | L-BFGS-B objective | relative distance | duality gap | sklearn acc % "
          "| L-BFGS-B acc % |")
    print("|---|---|---|---|---|---|---|")
    for loss in LOSSES:
        ws = sklearn_model(p, loss, args.l2)
        we, gap = exact_model(p, loss, args.l2)
        print(f"| {loss} | {objective(p, ws, loss, args.l2):.6f} | {objective(p, we, loss, args.l2):.6f} | "
              f"{np.linalg.norm(ws - we) / np.linalg.norm(we):.1e} | {'-' if gap is None else f'{gap:.1e}'} | "
              f"{100 * accuracy(p, ws):.2f} | {100 * accuracy(p, we):.2f} |")
    variants(p, args)


def variants(p, args):
    """The scikit-learn settings the bench does not use, for comparison: their test accuracy and the
    engine objective of their model (a free intercept is folded into the intercept column's weight)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import LinearSVC

    C = sklearn_C(args.l2, p.rows)
    rows = [("logistic", "LogisticRegression() defaults (C = 1, fit_intercept)", LogisticRegression(max_iter=100_000)),
            ("logistic", "LogisticRegression(C, fit_intercept=True)",
             LogisticRegression(C=C, tol=1e-8, max_iter=100_000)),
            ("hinge", "LinearSVC() defaults (squared hinge, C = 1, fit_intercept)", LinearSVC(max_iter=1_000_000)),
            ("hinge", "LinearSVC(C, squared hinge, fit_intercept=False)",
             LinearSVC(C=C, fit_intercept=False, tol=1e-8, max_iter=1_000_000)),
            ("hinge", "LinearSVC(C, loss='hinge', fit_intercept=True)",
             LinearSVC(C=C, loss="hinge", tol=1e-8, max_iter=1_000_000))]
    print("\nOther scikit-learn settings (not the engine's objective):\n")
    print("| loss | model | acc % | engine objective of its model |")
    print("|---|---|---|---|")
    for loss, label, model in rows:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a comparison only: the defaults' max_iter may not converge
            model.fit(p.X, p.y)
        w = model.coef_.ravel().astype(np.float64)
        if model.fit_intercept:
            w[-1] += float(model.intercept_[0])  # the intercept column is all ones
        print(f"| {loss} | {label} | {100 * accuracy(p, w):.2f} | {objective(p, w, loss, args.l2):.4f} |")


def engine_runs(p, args, step, refs, estimators):
    """{(loss, (estimator, degree, range), bits): [(test accuracy, final loss, distance to the float64
    model) per seed]}."""
    out = {}
    for bits in args.bits:
        for seed in range(args.seeds):
            qds = ex.quantize(p, bits=bits, levels="uniform", copies=COPIES, seed=seed)
            for loss in LOSSES:
                w_f = refs[loss]["w_f"]
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
    print(f"step {step:.4g} ({args.step_scale:g} x auto), {args.epochs} epochs, batch {BATCH}, L2 {args.l2:g} "
          f"(sklearn C = {sklearn_C(args.l2, p.rows):.4g}{'' if args.l2 > 0 else ': no finite C for L2 0'}), "
          f"{COPIES} copies, Chebyshev degree {args.degree} on [-{args.margin_range}, {args.margin_range}], "
          f"{args.seeds} seeds\n")


def references(p, args, step):
    """{loss: Ref}: float64 SGD (the issue's "same loss, step and epochs") and the scikit-learn minimiser."""
    from lowbit.contract.golden import reference_sgd

    refs = {}
    for loss in LOSSES:
        f = ex.run_float(p, step=step, batch=BATCH, epochs=args.epochs, loss=LossConfig(loss=loss, l2=args.l2))
        models, _ = reference_sgd(p.X, p.y, step=step, batch=BATCH, epochs=args.epochs, loss=loss, l2=args.l2)
        assert np.array_equal(models[-1], f.model)
        ws = sklearn_model(p, loss, args.l2)
        refs[loss] = dict(f_acc=f.test_metric, f_loss=f.train_loss[-1], s_acc=accuracy(p, ws), w_f=f.model,
                          f_obj=objective(p, f.model, loss, args.l2), s_obj=objective(p, ws, loss, args.l2),
                          f_to_s=float(np.linalg.norm(f.model - ws) / np.linalg.norm(ws)),
                          f_last=[accuracy(p, w) for w in models[-5:]],
                          disagree=int(np.sum(np.sign(ex.predict(p.X_test, f.model))
                                              != np.sign(ex.predict(p.X_test, ws)))))
    return refs


def print_references(refs):
    print("| loss | float64 acc % | float64 acc %, last 5 epochs | sklearn acc % | test rows float64 ≠ sklearn "
          "| float64 final loss | objective float64 / sklearn | float64 distance to the sklearn model |")
    print("|---|---|---|---|---|---|---|---|")
    for loss in LOSSES:
        r = refs[loss]
        print(f"| {loss} | {100 * r['f_acc']:.2f} | {' '.join(f'{100 * a:.2f}' for a in r['f_last'])} | "
              f"{100 * r['s_acc']:.2f} | {r['disagree']} | {r['f_loss']:.4f} | {r['f_obj']:.4f} / {r['s_obj']:.4f} | {r['f_to_s']:.3f} |")


def report(name, p, args, step, refs, runs):
    _header(name, p, args, step)
    print_references(refs)
    naive, cheb = ("naive", 1, 1), ("chebyshev", args.degree, args.margin_range)
    for loss in LOSSES:
        f_acc, s_acc = refs[loss]["f_acc"], refs[loss]["s_acc"]
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
        print(f"\n{loss} (float64 final loss {refs[loss]['f_loss']:.4f}): final training loss / distance to the "
              f"float64 model, mean over seeds\n")
        print("| estimator | " + " | ".join(f"b={b}" for b in args.bits) + " |")
        print("|---|" + "---|" * len(args.bits))
        for est in estimators:
            label = "naive" if est[0] == "naive" else f"chebyshev d={est[1]} R={est[2]}"
            cells = [np.array(runs[(loss, est, b)]) for b in args.bits]
            print(f"| {label} | " + " | ".join(f"{c[:, 1].mean():.4f} / {c[:, 2].mean():.3f}" for c in cells) + " |")


#: The issue's accuracy targets: {bits: largest |engine - reference| in pp, against both references}.
TARGET_PP = {4: 0.5, 2: 1.0}


def parse_setting(text: str):
    try:
        l2, scale, epochs = text.split(",")
        setting = float(l2), float(scale), int(epochs)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a setting is L2,STEP_SCALE,EPOCHS (e.g. 0.1,4,50), got {text!r}") from None
    if setting[0] < 0 or setting[1] <= 0 or setting[2] < 1:
        raise argparse.ArgumentTypeError(f"need L2 >= 0, STEP_SCALE > 0, EPOCHS >= 1, got {text!r}")
    return setting


def report_settings(name, p, args):
    """The naive estimator against both references under each setting (``--settings``)."""
    print(f"\n### {name}: the targets under other settings (naive estimator, mean of {args.seeds} seeds; "
          f"one test row = {100 / p.X_test.shape[0]:.2f} pp)\n")
    print("| L2 | step x auto | epochs | loss | float64 acc % | sklearn acc % | float64 objective / minimum "
          "| b=4 acc % (Δ float / sklearn) | b=2 acc % (Δ float / sklearn) | targets |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for l2, scale, epochs in args.settings:
        step = step_for(p, scale)
        qds = {(b, s): ex.quantize(p, bits=b, levels="uniform", copies=COPIES, seed=s)
               for b in TARGET_PP for s in range(args.seeds)}
        for loss in LOSSES:
            lc = LossConfig(loss=loss, l2=l2)
            f = ex.run_float(p, step=step, batch=BATCH, epochs=epochs, loss=lc)
            ws = sklearn_model(p, loss, l2)
            refs = (f.test_metric, accuracy(p, ws))
            cells, ok = [], True
            for b in (4, 2):
                acc = np.mean([ex.run_engine(p, qds[(b, s)], backend="golden", step=step, batch=BATCH, epochs=epochs,
                                             levels_name="uniform", loss=lc).test_metric for s in range(args.seeds)])
                d = [100 * (acc - r) for r in refs]
                ok &= max(abs(x) for x in d) <= TARGET_PP[b] + 1e-9
                cells.append(f"{100 * acc:.2f} ({d[0]:+.2f} / {d[1]:+.2f})")
            print(f"| {l2:g} | {scale:g} | {epochs} | {loss} | {100 * refs[0]:.2f} | {100 * refs[1]:.2f} | "
                  f"{objective(p, f.model, loss, l2) / objective(p, ws, loss, l2):.3f} | {cells[0]} | {cells[1]} | "
                  f"{'met' if ok else 'missed'} |", flush=True)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", nargs="+", default=["mnist49", "digits38"])
    ap.add_argument("--bits", type=int, nargs="+", default=list(range(1, 9)))
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--step-scale", type=float, default=4.0)
    ap.add_argument("--l2", type=float, default=0.1)
    ap.add_argument("--degree", type=int, default=3)
    ap.add_argument("--margin-range", type=int, default=4)
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--sweep", action="store_true",
                      help="Chebyshev degree 1, 3, 5, 7 on ranges 4 and 8 against naive, instead of the main tables")
    mode.add_argument("--check-references", action="store_true",
                      help="only the references: scikit-learn against an independent L-BFGS-B solve, and the "
                           "reference table (float64 SGD at --epochs), no engine runs")
    mode.add_argument("--settings", type=parse_setting, nargs="+", metavar="L2,SCALE,EPOCHS",
                      help="the naive estimator's accuracy targets under each of these settings, instead of the "
                           "main tables")
    return ap


def main(argv=None):
    ap = build_parser()
    args = ap.parse_args(argv)
    if args.l2 < 0:
        ap.error("--l2 must be >= 0")
    if args.sweep:
        estimators = [("naive", 1, 1)] + [("chebyshev", d, r) for r in (4, 8) for d in (1, 3, 5, 7)]
    else:
        estimators = [("naive", 1, 1), ("chebyshev", args.degree, args.margin_range)]
    t0 = time.perf_counter()
    for name in args.data:
        p = ex.prepare(name, seed=0)
        if args.settings:
            report_settings(name, p, args)
            continue
        step = step_for(p, args.step_scale)
        refs = references(p, args, step)
        if args.check_references:
            check_references(name, p, args)
            print(f"\nfloat64 SGD after {args.epochs} epochs (step {step:.4g}) against the scikit-learn minimiser:\n")
            print_references(refs)
            continue
        runs = engine_runs(p, args, step, refs, estimators)
        if args.sweep:
            report_sweep(name, p, args, step, refs, runs, estimators)
        else:
            report(name, p, args, step, refs, runs)
    print(f"\n({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
