"""Float SGD on this CPU against the engine at b = 2, 4, 8: training loss vs time, bytes per epoch.

The engine's time is modelled from the simulated engine's cycle counts at a stated clock, and
bounded below by the time its bytes take over a stated host-memory bandwidth:
``t_epoch = max(cycles / fmax, bytes / bandwidth)``. The float time is measured here (NumPy, float32
and float64, minibatch SGD, same step and batch).

    .venv/bin/python bench/compare.py [--data synthetic:6000:1000] [--epochs 5] [--backend sim|golden]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from lowbit import experiment as ex
from lowbit.cli import auto_step


def float_sgd_timed(X, y, *, step, batch, epochs, dtype):
    X = X.astype(dtype)
    y = y.astype(dtype)
    w = np.zeros(X.shape[1], dtype=dtype)
    losses, times, spent = [], [], 0.0
    for _ in range(epochs):
        t0 = time.perf_counter()
        for s in range(0, X.shape[0], batch):
            A, yb = X[s : s + batch], y[s : s + batch]
            w -= dtype(step) * (A.T @ (A @ w - yb))
        spent += time.perf_counter() - t0  # training time only, not the loss evaluation below
        times.append(spent)
        r = X.astype(np.float64) @ w.astype(np.float64) - y.astype(np.float64)
        losses.append(float(np.mean(r * r)))
    return losses, times


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="synthetic:4000:1000")
    ap.add_argument("--bits", default="2,4,8")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--backend", choices=("sim", "golden"), default="sim")
    ap.add_argument("--fmax", type=float, default=ex.DEFAULT_FMAX_MHZ, help="engine clock, MHz")
    ap.add_argument("--bandwidth", type=float, default=12.8, help="host memory bandwidth, GB/s (CCI-P: 64 B x 200 MHz)")
    ap.add_argument("--plot", default="out/compare.png")
    args = ap.parse_args(argv)

    p = ex.prepare(args.data)
    step = auto_step(p.X, args.batch)
    print(f"{p.name}: {p.rows} x {p.features}, batch {args.batch}, step {step:.3g}, {args.epochs} epochs")
    rows = []
    runs = []
    for dtype in (np.float32, np.float64):
        losses, times = float_sgd_timed(p.X, p.y, step=step, batch=args.batch, epochs=args.epochs, dtype=dtype)
        name = f"CPU {np.dtype(dtype).name}"
        rows.append((name, losses[-1], times[-1] / args.epochs, p.X.size * np.dtype(dtype).itemsize))
        runs.append(ex.RunSummary(label=name, backend="float", bits=None, levels=None, epochs=args.epochs,
                                  batch=args.batch, step=step, train_loss=losses, elapsed_s=times))
    device = None
    if args.backend == "sim":
        from lowbit.driver import open_device

        device = open_device("sim")
    try:
        line_bits = device.caps["LINE_BITS"] if device else 512
        for bits in [int(b) for b in args.bits.split(",")]:
            qds = ex.quantize(p, bits=bits, levels="uniform", copies=min(args.epochs, 4), seed=0, line_bits=line_bits)
            run = ex.run_engine(p, qds, backend=args.backend, step=step, batch=args.batch, epochs=args.epochs,
                                device=device, fmax_mhz=args.fmax, levels_name="uniform")
            if run.epoch_cycles:
                per_epoch_cycles = np.diff([0] + run.epoch_cycles)
                t = np.maximum(per_epoch_cycles / (args.fmax * 1e6), run.bytes_per_epoch / (args.bandwidth * 1e9))
                run.elapsed_s = list(np.cumsum(t))
            else:  # golden: no cycles; model the bandwidth bound alone
                t = run.bytes_per_epoch / (args.bandwidth * 1e9)
                run.elapsed_s = [t * (e + 1) for e in range(args.epochs)]
            runs.append(run)
            rows.append((f"engine b={bits}", run.train_loss[-1], run.elapsed_s[-1] / args.epochs, run.bytes_per_epoch))
    finally:
        if device is not None:
            device.close()
    print(f"\n{'run':16s} {'final loss':>12s} {'s/epoch':>12s} {'MB/epoch':>10s}")
    for name, loss, spe, nbytes in rows:
        print(f"{name:16s} {loss:12.6f} {spe:12.3e} {nbytes / 1e6:10.3f}")
    print(f"\nengine time = max(cycles / {args.fmax:g} MHz, bytes / {args.bandwidth:g} GB/s); CPU time measured here.")
    from lowbit.plots import plot_runs

    plot_runs(runs, args.plot, title=f"{p.name}: CPU vs engine (modelled)")
    print(f"plot: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
