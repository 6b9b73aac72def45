"""QSGD codec benchmark on real gradients: bits per coordinate and encode/decode throughput.

The gradients are those of an MLP (784-1024-1024-10, 1.86 M parameters) on the MNIST 5k subset,
taken at initialisation and after one epoch of SGD (so both early, large and later, small
gradients are measured). For s = 1, 2, 4, 8, 16 (and 7 / 127, the demo's 4- and 8-bit dense
codes) and both wire formats it prints the message size in bits per coordinate, the relative
quantization error against the variance bound, and the throughput of encode (quantize + encode)
and decode (decode + dequantize) in MB of float32 gradient per second on one core.

    .venv/bin/python bench/qsgd_codec.py [--reps 5] [--bucket 512] [--norm l2]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")     # one core: the figure asked for is per core

import numpy as np

from lowbit.qsgd import decode, encode, quantize, variance_bound
from lowbit.qsgd.demo import load_mnist


def real_gradients(seed: int = 0) -> dict[str, np.ndarray]:
    """Flattened MLP gradients at initialisation and after one epoch of SGD on MNIST 5k."""
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(1)
    Xtr, ytr, _, _ = load_mnist()
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(784, 1024), torch.nn.ReLU(),
                                torch.nn.Linear(1024, 1024), torch.nn.ReLU(),
                                torch.nn.Linear(1024, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    X, y = torch.from_numpy(Xtr), torch.from_numpy(ytr)

    def grad(i: int) -> np.ndarray:
        opt.zero_grad()
        F.cross_entropy(model(X[i:i + 64]), y[i:i + 64]).backward()
        return torch.cat([p.grad.reshape(-1) for p in model.parameters()]).numpy().copy()

    out = {"init": grad(0)}
    for i in range(0, len(ytr) - 64, 64):
        grad(i)
        opt.step()
    out["epoch1"] = grad(0)
    return out


def timed(fn, reps: int) -> tuple[float, object]:
    """Median wall time of ``reps`` calls and the last result."""
    times, res = [], None
    for _ in range(reps):
        t = time.perf_counter()
        res = fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times)), res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--bucket", type=int, default=512)
    p.add_argument("--norm", choices=("l2", "max"), default="l2")
    p.add_argument("--levels", type=int, nargs="+", default=[1, 2, 4, 8, 16, 7, 127])
    args = p.parse_args(argv)

    grads = real_gradients()
    n = len(next(iter(grads.values())))
    mb = 4 * n / 1e6
    print(f"MLP gradients: {n} coordinates ({mb:.1f} MB float32), bucket {args.bucket}, "
          f"norm {args.norm}, median of {args.reps} runs, one core")
    print(f"{'grad':7s} {'s':>4s} {'format':6s} {'bits/coord':>10s} {'err/bound':>9s} "
          f"{'enc MB/s':>9s} {'dec MB/s':>9s} {'enc+dec MB/s':>12s}")
    rng = np.random.default_rng(0)
    worst = np.inf
    for name, g in grads.items():
        for s in args.levels:
            for fmt in ("dense", "elias"):
                t_enc, msg = timed(lambda: encode(quantize(g, s, args.bucket, args.norm, rng), fmt),
                                   args.reps)
                t_dec, x = timed(lambda: decode(msg).dequantize(), args.reps)
                # Relative squared error of this draw against the bound's worst case (<= 1 expected).
                scales = decode(msg).scales.astype(np.float64)
                err = float(((x.astype(np.float64) - g) ** 2).sum())
                bound = variance_bound(args.bucket, s, args.norm) * float((scales ** 2).sum())
                both = mb / (t_enc + t_dec)
                worst = min(worst, both)
                print(f"{name:7s} {s:4d} {fmt:6s} {8 * len(msg) / n:10.3f} {err / bound:9.3f} "
                      f"{mb / t_enc:9.1f} {mb / t_dec:9.1f} {both:12.1f}")
    print(f"slowest encode+decode: {worst:.1f} MB/s of float32 gradient per core")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
