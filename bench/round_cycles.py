"""Calibrate the cycle model of one scale-out round (golden engines) against the Verilated woven engine.

A scale-out worker's round is one bounded, warm-started run of ``count`` minibatches (docs/scaleout.md).
This measures such rounds on the sim backend's woven engine (``SIM_ENGINES["woven"]``: 512-bit lines,
100..400-cycle random memory latency) over a grid of features and minibatch counts (b = 4, batch 16,
the demo's), fits :func:`lowbit.scaleout.round_cycles`' coefficients by least squares, and prints them
with each point's relative error.

    python bench/round_cycles.py            # measure, fit, print ROUND_CYCLES
    python bench/round_cycles.py --check    # measure, compare with the current ROUND_CYCLES
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np

from lowbit.dataset import QuantizedDataset
from lowbit.driver import open_device
from lowbit.driver.sim_engines import SIM_ENGINES
from lowbit.driver.train import Resume, train
from lowbit.scaleout import ROUND_CYCLES, round_cycles, round_terms

FEATURES = (100, 785, 2000, 5001)
MINIBATCHES = (1, 4, 13, 32)


def measure(features, minibatches, *, bits=4, batch=16, seed=0, latency_seed=0):
    """[(features, minibatches, terms, measured cycles)] of warm-started rounds on the sim engine."""
    out = []
    eng = SIM_ENGINES["woven"]
    with open_device("sim", **eng, seed=latency_seed) as dev:
        for f in features:
            for mb in minibatches:
                rows = (mb + 2) * batch
                rng = np.random.default_rng(seed + f + mb)
                X = rng.uniform(-1, 1, (rows, f))
                y = rng.uniform(-1, 1, rows)
                qds = QuantizedDataset.build(X, y, bits=bits, copies=1, seed=seed, progress=False,
                                             line_bits=eng["line_bits"], layout=eng["core"])
                w = (rng.integers(-(1 << 20), 1 << 20, qds.features)).astype(np.int32)
                res = train(dev, qds, step=1e-4, batch=batch, epochs=2, progress=False, resume=Resume(w, 1, mb))
                fmt = dataclasses.replace(qds.fmt, layout=eng["core"])
                out.append((f, mb, round_terms(fmt, batch, mb), int(res.cycles)))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args(argv)
    pts = measure(FEATURES, MINIBATCHES)
    A = np.array([t for _, _, t, _ in pts], dtype=float)
    y = np.array([c for *_, c in pts], dtype=float)
    coef = np.array(ROUND_CYCLES, dtype=float) if args.check else np.linalg.lstsq(A, y, rcond=None)[0]
    pred = A @ coef
    for (f, mb, t, c), p in zip(pts, pred):
        print(f"features {f:5d} minibatches {mb:3d}: measured {c:8d}, model {p:10.0f} ({(p / c - 1) * 100:+.1f} %)")
    print("ROUND_CYCLES =", tuple(round(float(x), 3) for x in coef))
    print(f"max |error| {np.max(np.abs(pred / y - 1)) * 100:.1f} %")


if __name__ == "__main__":
    main()
