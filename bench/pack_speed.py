"""Pack/unpack speed of the bit-plane line format, and bytes streamed vs information content.

Usage::

    .venv/bin/python bench/pack_speed.py [--values 8000000] [--repeat 3] [--features 784 5000]

For each F and b = 1..8: N = values / F rows of float32 data in [-1, 1] are double-sampled once
(``lowbit.contract.quant.double_sample``, timed separately), then ``pack_codes`` and ``unpack_codes`` are
timed (best of ``--repeat``). Rates are MB/s of *float32 input*: ``N * F * 4 bytes / seconds``, on
one core (these NumPy operations are single threaded). The issue's targets: pack and unpack
>= 200 MB/s; bytes streamed per epoch (one copy + labels) <= 1.15 x ``N * F * (b+1) / 8``.
Exits with status 1 if a target is missed.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from lowbit.contract.format import LineFormat, pack_codes, unpack_codes
from lowbit.contract.quant import double_sample, levels_to_fixed, uniform_levels

TARGET_MBS = 200.0
TARGET_OVERHEAD = 1.15


def best_time(fn, repeat):
    best = np.inf
    out = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--values", type=int, default=8_000_000, help="N * F per measurement (default %(default)s)")
    ap.add_argument("--features", type=int, nargs="+", default=[784, 5000])
    ap.add_argument("--bits", type=int, nargs="+", default=list(range(1, 9)))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--line-bits", type=int, default=512)
    args = ap.parse_args(argv)

    rng = np.random.default_rng(0)
    ok = True
    print(f"{'F':>5} {'N':>6} {'b':>2} | {'quantize':>9} {'pack':>8} {'unpack':>8} MB/s | "
          f"{'streamed/info':>13} {'(data only)':>11} | check")
    for F in args.features:
        N = max(1, args.values // F)
        X = rng.uniform(-1, 1, (N, F)).astype(np.float32)
        mb = X.nbytes / 1e6
        for b in args.bits:
            fmt = LineFormat(b, F, args.line_bits)
            lq = levels_to_fixed(uniform_levels(b))
            tq, codes = best_time(lambda: double_sample(X, lq, rng), 1)
            tp, lines = best_time(lambda: pack_codes(codes, fmt), args.repeat)
            tu, back = best_time(lambda: unpack_codes(lines, fmt, N), args.repeat)
            if not np.array_equal(back, codes):
                raise SystemExit(f"round trip failed at F={F} b={b}")
            info = fmt.information_bytes(N)
            streamed = fmt.bytes_per_copy(N) + fmt.label_lines(N) * fmt.line_bytes
            ratio, data_ratio = streamed / info, fmt.bytes_per_copy(N) / info
            good = mb / tp >= TARGET_MBS and mb / tu >= TARGET_MBS and (b < 2 or ratio <= TARGET_OVERHEAD)
            ok &= good
            print(f"{F:>5} {N:>6} {b:>2} | {mb / tq:>9.0f} {mb / tp:>8.0f} {mb / tu:>8.0f}      | "
                  f"{ratio:>13.4f} {data_ratio:>11.4f} | {'ok' if good else 'MISS'}", flush=True)
    print(f"targets: pack, unpack >= {TARGET_MBS:.0f} MB/s of float32 input; "
          f"streamed <= {TARGET_OVERHEAD} x N*F*(b+1)/8 at b = 2..8: {'all met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
