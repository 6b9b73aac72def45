"""Time of the optimal-level dynamic program (lowbit.contract.levels.optimal_levels) on 1M values.

Usage::

    .venv/bin/python bench/dp_time.py [--values 1000000] [--bits 4] [--repeat 3] [--max-candidates 1024]

Prints the best-of-``repeat`` wall time per data distribution, and the total rounding variance of
the optimal levels against the uniform ones (the DP's point). The issue's figure is the 16-level
(b = 4) time on 1M values; ``--bits 2 4 8`` shows how it scales with L (O(n log n + L C^2)).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from lowbit.contract.levels import optimal_levels, rounding_variance
from lowbit.contract.quant import uniform_levels


def distributions(n, rng):
    return {
        "uniform[-1,1]": rng.uniform(-1, 1, n),
        "beta(0.5,4) skewed": rng.beta(0.5, 4.0, n) * 2 - 1,
        "normal(0,0.25) clipped": np.clip(rng.normal(0, 0.25, n), -1, 1),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--values", type=int, default=1_000_000)
    ap.add_argument("--bits", type=int, nargs="+", default=[4])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--max-candidates", type=int, default=1024)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    print(f"{'data':<24} {'b':>2} {'levels':>6} {'time s':>8} | {'var optimal':>12} {'var uniform':>12} {'ratio':>6}")
    for name, v in distributions(args.values, rng).items():
        for b in args.bits:
            best = np.inf
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                lv = optimal_levels(v, b, max_candidates=args.max_candidates)
                best = min(best, time.perf_counter() - t0)
            vo, vu = rounding_variance(v, lv), rounding_variance(v, uniform_levels(b))
            print(f"{name:<24} {b:>2} {1 << b:>6} {best:>8.3f} | {vo:>12.4g} {vu:>12.4g} {vo / vu:>6.3f}", flush=True)
    print(f"({args.values} values, max_candidates={args.max_candidates}, best of {args.repeat})")


if __name__ == "__main__":
    main()
