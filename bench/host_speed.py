"""Host speed: quantize + pack MB/s per b (uniform and optimal levels, 1 and 2 cores), the golden
model's values/s with a fresh copy per epoch (its quantization included), and peak RSS.

Usage::

    .venv/bin/python bench/host_speed.py [--rows 8000] [--features 2000] [--repeat 3] [--reference]

Rates are MB/s of float32 input (``N * F * 4`` bytes / seconds), best of ``--repeat``. Each is
given twice: by wall-clock time, and by the process's CPU time (``time.process_time``, all
threads), which on a machine shared with other jobs is the honest "per core" figure (the wall
clock also counts the time the scheduler gave to others). The 2-core scaling is wall-clock only.
The machine's load average is printed before and after.
``fast`` is ``lowbit.fastquant.quantize_pack`` (double sampling and packing in one compiled pass)
with ``numba.set_num_threads(1)`` and ``(2)``; ``--reference`` adds the NumPy reference
(``lowbit.contract.quant.double_sample`` then ``lowbit.contract.format.pack_codes``, one core: the "before").
Optimal levels are fitted once per b outside the timing (bench/dp_time.py times the DP).

The golden rows time ``QuantizedDataset.build`` of ``--epochs`` copies plus
``lowbit.driver.train.train_golden`` over ``--epochs`` epochs (copy e in epoch e, batch 16), one
core, and report ``N * F * epochs / seconds``. Targets (issue 15): quantize >= 1000 MB/s per core
uniform, >= 500 MB/s optimal, 2 cores >= 1.7x one; golden >= 200M values/s per core.
Exits 1 if a target is missed by the wall-clock figures (the CPU-time verdict is printed too).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time

import numba
import numpy as np

from lowbit.contract.format import LineFormat, pack_codes
from lowbit.contract.levels import optimal_levels
from lowbit.contract.quant import double_sample, levels_to_fixed, uniform_levels
from lowbit.dataset import QuantizedDataset
from lowbit.driver.train import train_golden
from lowbit.fastquant import quantize_pack, set_threads

TARGET_UNIFORM, TARGET_OPTIMAL, TARGET_SCALING, TARGET_GOLDEN = 1000.0, 500.0, 1.7, 200e6


def best(fn, repeat):
    """``(wall, cpu)``: the shortest wall-clock and the shortest CPU time of ``repeat`` runs."""
    wall = cpu = np.inf
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall, cpu = min(wall, time.perf_counter() - t0), min(cpu, time.process_time() - c0)
    return wall, cpu


def load() -> str:
    return ", ".join(f"{v:.2f}" for v in os.getloadavg())


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=8000)
    ap.add_argument("--features", type=int, default=2000)
    ap.add_argument("--bits", type=int, nargs="+", default=list(range(1, 9)))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--reference", action="store_true", help="also time the NumPy reference (slow: ~25 MB/s)")
    args = ap.parse_args(argv)

    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (args.rows, args.features)).astype(np.float32)
    skew = (rng.beta(0.5, 3, X.shape).astype(np.float32) * 2 - 1)
    mb = X.nbytes / 1e6
    threads = min(2, numba.config.NUMBA_NUM_THREADS)
    ok = ok_cpu = True
    print(f"load average before: {load()} ({os.cpu_count()} cores)")
    print(f"quantize + pack, {args.rows} x {args.features} float32 ({mb:.0f} MB), MB/s of input, best of {args.repeat}; "
          f"wall clock (cpu time)")
    print(f"{'levels':>8} {'b':>2} | {'fast 1 core':>16} {'fast 2 cores':>12} {'x':>5}"
          + (" | reference" if args.reference else "") + " | check")
    for kind in ("uniform", "optimal"):
        data = X if kind == "uniform" else skew
        for b in args.bits:
            fmt = LineFormat(b, args.features)
            lv = uniform_levels(b) if kind == "uniform" else optimal_levels(data.ravel()[: 1 << 20], b)
            lq = levels_to_fixed(lv)
            quantize_pack(data[:64], fmt, lq)  # compile (or load from cache) outside the timing
            times = []
            for n in (1, threads):
                set_threads(n)
                times.append(best(lambda: quantize_pack(data, fmt, lq, seed=1), args.repeat))
            set_threads(None)
            one, two = mb / times[0][0], mb / times[1][0]
            one_cpu = mb / times[0][1]
            ref = ""
            if args.reference:
                g = np.random.default_rng(1)
                ref = f" | {mb / best(lambda: pack_codes(double_sample(data, lq, g), fmt), 1)[0]:>9.1f}"
            target = TARGET_UNIFORM if kind == "uniform" else TARGET_OPTIMAL
            good = one >= target and two >= TARGET_SCALING * one
            ok &= good
            ok_cpu &= one_cpu >= target
            print(f"{kind:>8} {b:>2} | {one:>7.0f} ({one_cpu:>6.0f}) {two:>12.0f} {two / one:>5.2f}{ref} | "
                  f"{'ok' if good else 'MISS'}", flush=True)

    print(f"\ngolden model, {args.epochs} epochs, a fresh copy per epoch (build + train_golden), batch 16, 1 core, "
          f"values/s wall clock (cpu time)")
    set_threads(1)
    y = rng.uniform(-1, 1, args.rows)
    for b in (1, 4, 8):
        def job():
            qds = QuantizedDataset.build(X, y, bits=b, copies=args.epochs, seed=0, progress=False)
            train_golden(qds, step=1e-5, batch=16, epochs=args.epochs)

        small = QuantizedDataset.build(X[:32], y[:32], bits=b, copies=1, seed=0, progress=False)
        train_golden(small, step=1e-5, batch=16, epochs=1)  # compile (or load from cache) outside the timing
        wall, cpu = best(job, args.repeat)
        rate, rate_cpu = X.size * args.epochs / wall, X.size * args.epochs / cpu
        good = rate >= TARGET_GOLDEN
        ok &= good
        ok_cpu &= rate_cpu >= TARGET_GOLDEN
        print(f"b={b}: {rate / 1e6:.0f}M ({rate_cpu / 1e6:.0f}M) values/s ({wall:.2f} s, cpu {cpu:.2f} s, "
              f"for {args.epochs} epochs) | {'ok' if good else 'MISS'}", flush=True)
    set_threads(None)
    print(f"\npeak RSS of this process: {peak_rss_mb():.0f} MB (float32 input {mb:.0f} MB + skewed copy {mb:.0f} MB)")
    print(f"load average after: {load()}")
    print(f"targets by wall clock: {'all met' if ok else 'MISSED'}; per core by cpu time (scaling not included): "
          f"{'all met' if ok_cpu else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
