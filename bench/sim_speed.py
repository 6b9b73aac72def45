"""Simulated engine cycles per wall second of the simulator backend.

``python bench/sim_speed.py``               the CLI's simulated engine (``--engine woven``, the
                                            512-bit woven AFU; ``--engine planes`` the lane-parallel
                                            one) under a real training run (2000 x 784 at b = 4,
                                            4 epochs), with the random-latency memory model
                                            (100-400 cycles, out of order).
``python bench/sim_speed.py --afu double``  the harness and memory model alone, around the tiny
                                            DMA test double (tests/driver_fixtures.py): the
                                            ceiling the harness allows.

Cycles/s = the engine's CYCLES counter for the run / wall seconds. With the real AFU the wall time
is the whole ``train()`` call, so the upload of the data, labels and code table is timed with
the run (the figure is a lower bound on the simulator's own speed); with the double it is from
START to the status record. The server build is never timed (it is cached in the build folder).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def bench_afu(args) -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    from driver_fixtures import make_dataset

    from lowbit.driver import open_device
    from lowbit.driver.sim_engines import SIM_ENGINES
    from lowbit.driver.train import engine_layout, train
    from lowbit_sim.simserver import build_afu_server

    eng = SIM_ENGINES[args.engine]
    t0 = time.perf_counter()
    exe = build_afu_server(**eng)
    print(f"server: {args.engine} engine {eng}, {exe} (build or cache hit: {time.perf_counter() - t0:.1f} s)")
    with open_device("sim", server=exe, memory=256 << 20) as dev:
        qds = make_dataset(args.rows, args.features, bits=args.bits, copies=1, seed=0,
                           line_bits=dev.caps["LINE_BITS"], layout=engine_layout(dev.caps))
        for rep in range(args.repeat):
            t0 = time.perf_counter()
            res = train(dev, qds, step=0.001, batch=args.batch, epochs=args.epochs, progress=False)
            wall = time.perf_counter() - t0
            print(f"run {rep}: {args.rows} x {args.features} at b={args.bits}, batch {args.batch}, "
                  f"{args.epochs} epochs: {res.cycles} engine cycles in {wall:.2f} s wall (incl. upload) "
                  f"= {res.cycles / wall:,.0f} cycles/s; read {res.read_lines} lines, "
                  f"{res.stall_cycles} stall cycles")


def bench_double(args) -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    from driver_fixtures import export_double

    from lowbit.driver import open_device
    from lowbit_sim.simserver import build_root, build_server

    exe = build_server(export_double(build_root() / "double"))
    lines = 200_000
    with open_device("sim", server=exe, memory=64 << 20) as dev:
        src = dev.allocate((lines, 64), np.uint8)
        dst = dev.allocate((lines, 64), np.uint8)
        status = dev.allocate(64, np.uint8)
        for name, v in (("DATA_ADDR", src.line_address), ("MODEL_ADDR", dst.line_address),
                        ("STATUS_ADDR", status.line_address), ("ROWS", lines), ("RUN_ID", 1)):
            dev.write_reg(name, v)
        t0 = time.perf_counter()
        dev.start()
        rec = dev.wait(600, status_buffer=status, run_id=1)
        wall = time.perf_counter() - t0
        print(f"DMA test double: {lines} lines copied, {rec['cycles']} cycles in {wall:.2f} s "
              f"= {rec['cycles'] / wall:,.0f} cycles/s (harness + memory model ceiling)")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--afu", choices=("real", "double"), default="real")
    p.add_argument("--engine", choices=("woven", "planes"), default="woven",
                   help="which of the CLI's simulated engines (lowbit.driver.sim_engines)")
    p.add_argument("--rows", type=int, default=2000)
    p.add_argument("--features", type=int, default=784)
    p.add_argument("--bits", type=int, default=4)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--repeat", type=int, default=2)
    args = p.parse_args(argv)
    (bench_double if args.afu == "double" else bench_afu)(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
