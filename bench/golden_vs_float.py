"""Final training loss: the golden model (the engine's exact arithmetic) vs float64 SGD.

Usage::

    .venv/bin/python bench/golden_vs_float.py [--data synthetic mnist49] [--bits 1 2 4 8]
        [--epochs E] [--batch 16] [--step-scale S] [--levels uniform optimal] [--seed 0]

Both runs use the same minibatch SGD (batch ``B``, per-sample step ``step-scale / (F * B)``, the
same epochs, model starting at 0). Defaults per data set (:data:`SETTINGS`): synthetic S = 0.5 for
10 epochs, mnist49 S = 2 for 30 epochs (near the largest stable step: S = 8 diverges) on the same normalised data (``lowbit.experiment.prepare``:
features in [-1, 1] plus an intercept column, labels / max |y|). The float64 reference trains on
the unquantized data; the golden model on ``K = epochs`` double-sampled copies at ``b`` bits (a
fresh copy each epoch). The loss is the mean squared residual of the final model on the normalised,
unquantized training data, computed in float64 for both. For classification the test accuracy
(sign of the prediction) is shown too.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from lowbit import experiment as ex
from lowbit.contract.registers import MAX_COPIES

#: (step scale, epochs) per data set when not given on the command line.
SETTINGS = {"mnist49": (2.0, 30)}
DEFAULT_SETTING = (0.5, 10)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", nargs="+", default=["synthetic", "mnist49"])
    ap.add_argument("--bits", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--levels", nargs="+", default=["uniform", "optimal"], choices=["uniform", "optimal"])
    ap.add_argument("--epochs", type=int, default=None, help="default: per data set (SETTINGS)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--step-scale", type=float, default=None,
                    help="per-sample step = scale / (F * B); default: per data set (SETTINGS)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    rows = []
    for spec in args.data:
        p = ex.prepare(spec, seed=args.seed)
        scale, epochs = SETTINGS.get(spec, DEFAULT_SETTING)
        scale = args.step_scale if args.step_scale is not None else scale
        epochs = args.epochs if args.epochs is not None else epochs
        step = scale / p.features / args.batch
        ref = ex.run_float(p, step=step, batch=args.batch, epochs=epochs)
        zero = float(np.mean(p.y ** 2))
        print(f"\n{p.name}: {p.rows} x {p.features} (with intercept), {p.task}; B={args.batch}, "
              f"step={scale:g}/(F*B)={step:.3g}, {epochs} epochs, K={min(epochs, MAX_COPIES)} copies; "
              f"loss at w=0: {zero:.4g}", flush=True)
        metric = f" {'test acc':>8}" if p.task == "classification" else ""
        print(f"{'b':>2} {'levels':<8} {'float64 loss':>13} {'golden loss':>12} {'golden/float':>12}{metric}  time s")
        acc = f" {ref.test_metric:>8.3f}" if p.task == "classification" else ""
        print(f"{'-':>2} {'float64':<8} {ref.train_loss[-1]:>13.5g} {'':>12} {'':>12}{acc}  {ref.wall_s:.1f}")
        for b in args.bits:
            for kind in args.levels:
                t0 = time.perf_counter()
                qds = ex.quantize(p, bits=b, levels=kind, copies=min(epochs, MAX_COPIES), seed=args.seed)
                run = ex.run_engine(p, qds, backend="golden", step=step, batch=args.batch, epochs=epochs,
                                    levels_name=kind)
                dt = time.perf_counter() - t0
                g, f = run.train_loss[-1], ref.train_loss[-1]
                acc = f" {run.test_metric:>8.3f}" if p.task == "classification" else ""
                print(f"{b:>2} {kind:<8} {f:>13.5g} {g:>12.5g} {g / f:>12.4f}{acc}  {dt:.1f}", flush=True)
                rows.append((p.name, b, kind, f, g))
    return rows


if __name__ == "__main__":
    main()
