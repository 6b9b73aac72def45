"""docs/sklearn.md's example: GridSearchCV over bits x levels on scikit-learn's diabetes set.

Usage::

    .venv/bin/python bench/sklearn_diabetes.py [--backend golden|sim] [--bits 1 2 4 8]
        [--levels uniform optimal] [--epochs 20] [--cv 5] [--seed 0] [--socket PATH]

Scores (R^2 on the held-out folds of a shuffled K-fold) for each (bits, levels) of
``lowbit.sklearn.LowbitRegressor``, next to the float64 SGD run of the same estimator
(``backend="float"``, same epochs, step and shuffle) and scikit-learn's exact least squares
(``LinearRegression``). On ``--backend sim`` each configuration is refitted once on all 442 rows to
report its engine cycles and the modelled time at ``lowbit.experiment.MEASURED_FMAX_MHZ``.
Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.datasets import load_diabetes
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score

from lowbit.experiment import MEASURED_FMAX_MHZ
from lowbit.sklearn import LEVELS, LowbitRegressor


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backend", choices=("golden", "sim"), default="golden")
    ap.add_argument("--bits", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--levels", nargs="+", choices=LEVELS, default=list(LEVELS))
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--cv", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--socket", default=None, help="attach to a running simulator (make sim-server)")
    args = ap.parse_args(argv)

    X, y = load_diabetes(return_X_y=True)
    cv = KFold(args.cv, shuffle=True, random_state=args.seed)
    options = {"socket": args.socket} if args.socket else None
    base = LowbitRegressor(epochs=args.epochs, random_state=args.seed, backend=args.backend, device_options=options)
    t0 = time.perf_counter()
    grid = GridSearchCV(base, {"bits": args.bits, "levels": args.levels}, cv=cv, scoring="r2").fit(X, y)
    wall = time.perf_counter() - t0
    ref = cross_val_score(LowbitRegressor(epochs=args.epochs, random_state=args.seed, backend="float"), X, y, cv=cv)
    exact = cross_val_score(LinearRegression(), X, y, cv=cv)

    sim = args.backend == "sim"
    print(f"diabetes: {X.shape[0]} rows x {X.shape[1]} features; {args.cv}-fold CV R^2 (mean +- std over folds); "
          f"{args.epochs} epochs, batch 16, step auto, backend {args.backend}; grid search {wall:.1f} s wall\n")
    head = "| bits | levels | R^2 |" + (" engine cycles (full fit) | modelled ms at "
                                        f"{MEASURED_FMAX_MHZ:g} MHz |" if sim else "")
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    res = grid.cv_results_
    for params, mean, std in zip(res["params"], res["mean_test_score"], res["std_test_score"]):
        row = f"| {params['bits']} | {params['levels']} | {mean:.4f} +- {std:.4f} |"
        if sim:
            est = LowbitRegressor(**(base.get_params() | params)).fit(X, y)
            row += f" {est.engine_cycles_:,} | {est.modelled_time_s_ * 1e3:.3f} |"
        print(row)
    pad = " - | - |" if sim else ""
    print(f"| float64 SGD | - | {ref.mean():.4f} +- {ref.std():.4f} |{pad}")
    print(f"| exact least squares | - | {exact.mean():.4f} +- {exact.std():.4f} |{pad}")
    print(f"\nbest: {grid.best_params_} (R^2 {grid.best_score_:.4f})")
    return grid


if __name__ == "__main__":
    main()
