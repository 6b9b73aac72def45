"""Data lines per cycle of the 512-bit engine at every b, whole runs, random-latency memory.

Builds the AFU (default: the bit-serial woven core, 512-bit lines, 8192 features, a 1024-line
read reorder buffer) into the simulator server, trains on synthetic data through the ``sim``
backend (host memory answering each line after a random 100..400 cycles, out of order, with the
harness's almost-full back-pressure), checks every run against the golden model bit for bit, and
prints per (F, b): cycles, data lines, data lines per cycle over the whole run (start-up, clear,
minibatch boundaries, snapshots and records included) and cycles relative to b = 2.

    .venv/bin/python bench/rate.py                               # F = 784 and 5000, b = 1..8, batch 16
    .venv/bin/python bench/rate.py --features 784 --bits 1,2,8 --rows 256
    .venv/bin/python bench/rate.py --core planes --lanes 32      # the lane-parallel core, for comparison
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--core", choices=("woven", "planes"), default="woven")
    ap.add_argument("--lanes", type=int, default=32)
    ap.add_argument("--max-features", type=int, default=8192)
    ap.add_argument("--read-depth", type=int, default=1024)
    ap.add_argument("--features", default="784,5000", help="comma-separated F values")
    ap.add_argument("--rows", type=int, default=512)
    ap.add_argument("--bits", default="1,2,3,4,5,6,7,8")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)

    sys.path.insert(0, str(ROOT / "tests"))
    from driver_fixtures import make_dataset

    from lowbit.driver import open_device
    from lowbit.driver.train import train, train_golden
    from lowbit_sim.simserver import build_afu_server

    t0 = time.perf_counter()
    exe = build_afu_server(512, args.lanes, args.max_features, args.core, args.read_depth)
    print(f"server ({args.core} core, 512-bit lines, {args.max_features} features, read depth {args.read_depth}): "
          f"{exe} ({time.perf_counter() - t0:.0f} s)", flush=True)
    out = []
    print(f"{'F':>5} {'b':>2} {'cycles':>9} {'data lines':>10} {'lines/cycle':>11} {'vs b=2':>6} {'stalls':>7} exact")
    for features in (int(f) for f in args.features.split(",")):
        base = None
        for bits in (int(b) for b in args.bits.split(",")):
            qds = make_dataset(args.rows, features, bits=bits, copies=1, seed=bits, line_bits=512)
            with open_device("sim", server=exe, memory=1 << 30) as dev:
                res = train(dev, qds, step=0.002, batch=args.batch, epochs=args.epochs, progress=False)
            gold = train_golden(qds, step=0.002, batch=args.batch, epochs=args.epochs)
            exact = bool(np.array_equal(res.models, gold.models) and list(res.losses) == list(gold.losses))
            label_lines = qds.fmt.label_lines(args.rows) * args.epochs
            data_lines = res.read_lines - label_lines
            rate = data_lines / res.cycles
            if bits == 2:
                base = res.cycles
            rel = f"{res.cycles / base:6.2f}" if base else "     -"
            print(f"{features:>5} {bits:>2} {res.cycles:>9} {data_lines:>10} {rate:>11.4f} {rel} "
                  f"{res.stall_cycles:>7} {'yes' if exact else 'NO'}", flush=True)
            out.append(dict(core=args.core, features=features, bits=bits, rows=args.rows, batch=args.batch,
                            epochs=args.epochs, cycles=int(res.cycles), data_lines=int(data_lines),
                            lines_per_cycle=rate, exact=exact))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")
    return 0 if all(r["exact"] for r in out) else 1


if __name__ == "__main__":
    sys.exit(main())
