"""Float SGD on this CPU against the engine at b = 2, 4, 8: training loss vs time, bytes per epoch.

The engine's time is the simulated engine's exact cycle count at the clock nextpnr measured
(``lowbit.experiment.MEASURED_FMAX_MHZ``, ``make bitstream``; ``--fmax`` states another), with a
second column at 200 MHz (ZipML's HARP clock), an assumed clock, not a measured one. The simulated
memory delivers at most one line per cycle, so the cycles already include the engine's memory
bound. The float time is measured here (NumPy, float32 and float64, minibatch SGD, same step and
batch, best of ``--repeats``). ``bench/speedup.py`` is the full side-by-side comparison.

    .venv/bin/python bench/compare.py [--data synthetic:4000:1000] [--epochs 5] [--backend sim|golden]
                                      [--engine woven|planes]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from lowbit import experiment as ex
from lowbit.baselines import best_of, numpy_sgd
from lowbit.experiment import auto_step


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="synthetic:4000:1000")
    ap.add_argument("--bits", default="2,4,8")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3, help="CPU runs per dtype; the fastest is kept")
    ap.add_argument("--backend", choices=("sim", "golden"), default="sim",
                    help="sim: cycles and times; golden: losses and bytes only (no clock)")
    ap.add_argument("--engine", choices=("woven", "planes"), default="woven",
                    help="which of the CLI's simulated engines (lowbit.driver.sim_engines; default %(default)s)")
    ap.add_argument("--fmax", type=float, default=ex.MEASURED_FMAX_MHZ,
                    help="engine clock, MHz (default: %(default)s, the fmax make bitstream measured)")
    ap.add_argument("--plot", default="out/compare.png")
    args = ap.parse_args(argv)

    p = ex.prepare(args.data)
    step = auto_step(p.X, args.batch)
    print(f"{p.name}: {p.rows} x {p.features}, batch {args.batch}, step {step:.3g}, {args.epochs} epochs")
    rows, runs = [], []
    for dtype in (np.float32, np.float64):
        cpu = best_of(args.repeats, numpy_sgd, p.X, p.y, step=step, batch=args.batch, epochs=args.epochs, dtype=dtype)
        r = cpu.models @ p.X.T - p.y[None, :]
        losses = list(np.mean(r * r, axis=1))
        name = f"CPU {np.dtype(dtype).name}"
        rows.append((name, losses[-1], cpu.s_per_epoch, None, p.X.size * np.dtype(dtype).itemsize, None))
        runs.append(ex.RunSummary(label=name, backend="float", bits=None, levels=None, epochs=args.epochs,
                                  batch=args.batch, step=step, train_loss=losses, elapsed_s=list(np.cumsum(cpu.epoch_s))))
    device = None
    if args.backend == "sim":
        from lowbit.driver import open_device
        from lowbit.driver.sim_engines import SIM_ENGINES

        device = open_device("sim", **SIM_ENGINES[args.engine])
    try:
        from lowbit.driver.train import engine_layout

        line_bits = device.caps["LINE_BITS"] if device else 512
        layout = engine_layout(device.caps) if device else "planes"
        # the quantizer's compiled kernels loaded before host time is taken (a one-time cost)
        ex.warm_quantizer(p, levels="uniform", line_bits=line_bits, layout=layout)
        for bits in [int(b) for b in args.bits.split(",")]:
            # packed straight into the engine's layout, as lowbit train does
            t0 = time.perf_counter()
            qds = ex.quantize(p, bits=bits, levels="uniform", copies=min(args.epochs, 4), seed=0, line_bits=line_bits,
                              layout=layout)
            host_s = time.perf_counter() - t0
            run = ex.run_engine(p, qds, backend=args.backend, step=step, batch=args.batch, epochs=args.epochs,
                                device=device, fmax_mhz=args.fmax, levels_name="uniform")
            runs.append(run)
            spe = spe_assumed = None
            if run.cycles:  # golden: no clock, so no time
                spe = run.cycles / args.epochs / (args.fmax * 1e6)
                spe_assumed = run.cycles / args.epochs / (ex.ASSUMED_HARP_FMAX_MHZ * 1e6)
            rows.append((f"engine b={bits}", run.train_loss[-1], spe, spe_assumed, run.bytes_per_epoch, host_s))
    finally:
        if device is not None:
            device.close()
    assumed = f"{ex.ASSUMED_HARP_FMAX_MHZ:g} MHz"
    print(f"\n{'run':16s} {'final loss':>12s} {'ms/epoch':>10s} {'ms/epoch at ' + assumed + ' (assumed)':>30s} "
          f"{'MB/epoch':>10s} {'host s':>8s} {'host ms/epoch':>14s}")
    for name, loss, spe, spe_assumed, nbytes, host_s in rows:
        cells = [f"{1e3 * v:.3f}" if v is not None else "-" for v in (spe, spe_assumed)]
        # significant digits, not decimals: with the kernels loaded first, a small set's host time is
        # well under a millisecond, and "0.000" would read as none
        host = [f"{host_s:.4g}", f"{1e3 * host_s / args.epochs:.4g}"] if host_s is not None else ["-", "-"]
        print(f"{name:16s} {loss:12.6f} {cells[0]:>10s} {cells[1]:>30s} {nbytes / 1e6:10.3f} {host[0]:>8s} "
              f"{host[1]:>14s}")
    print(f"\nengine ms/epoch = cycles at {ex.describe_clock(args.fmax)}; host s = quantize + pack into the "
          f"engine's lines on this CPU, once per data set (host ms/epoch: amortised over the {args.epochs} epochs); "
          f"CPU time measured here (best of {args.repeats}).")
    from lowbit.plots import plot_runs

    plot_runs(runs, args.plot, title=f"{p.name}: CPU vs engine (modelled)")
    print(f"plot: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
