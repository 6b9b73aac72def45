"""Host speed: quantize + pack MB/s per b (uniform and optimal levels, 1 and 2 cores), the golden
model's values/s with a fresh copy per epoch (its quantization included), and the peak RSS of the
``lowbit`` commands against issue 15's bound.

Usage::

    .venv/bin/python bench/host_speed.py [--rows 8000] [--features 2000] [--repeat 3] [--reference]
    .venv/bin/python bench/host_speed.py --rss-only [--rss-sizes 20000x2000,100000x1000] [--rss-libsvm]

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

Peak RSS (``--rss``, or ``--rss-only`` for just this part): each command runs as a child process
(``python -m lowbit.cli``, the interpreter and ``PYTHONPATH`` of this one) and its peak RSS is the
``ru_maxrss`` that ``os.wait4`` reports for it (what ``/usr/bin/time -v`` prints as "Maximum
resident set size"), for every ``--rss-sizes`` N x F: ``lowbit quantize X.npy`` (random float32,
memory-mapped) and ``lowbit train`` from the file it writes, ``lowbit quantize synthetic:N:F``,
``lowbit train --data synthetic:N:F`` with and without the float64 baseline, and with
``--rss-libsvm`` the same data as a LIBSVM text file. All at b = 4 with 5 copies (``--epochs 5``).
The bound (issue 15) is the float32 input of the training rows (``4 N F`` bytes; a synthetic
set's N / 5 test rows are not counted in it) + the packed copies (``5 x bytes_per_copy`` at
F + 1 features, the intercept column) + 256 MB; MB = 10^6 bytes throughout.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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


# --------------------------------------------------------------------------------- peak RSS
#: Issue 15's allowance above the float32 input and the packed copies.
RSS_MARGIN = 256e6
RSS_BITS, RSS_COPIES = 4, 5


#: Runs argv[1:] and prints its ru_maxrss (KiB). A process's maxrss counts the memory it had
#: before exec, which after a fork is its parent's: measured from this bench (numpy and numba
#: loaded, ~100 MB) every command would seem to take at least that. This stub, a bare
#: interpreter (~10 MB), is the parent instead, as /usr/bin/time is.
_MEASURE = """
import os, subprocess, sys
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(proc.pid, 0)
print(usage.ru_maxrss, os.waitstatus_to_exitcode(status))
"""


def child_peak_rss(argv, *, env=None) -> tuple[int, float, str]:
    """``(peak RSS in bytes, wall seconds, stderr)`` of ``argv`` run as a child process: the
    ``ru_maxrss`` ``os.wait4`` reports for it (KiB on Linux), what ``/usr/bin/time -v`` prints as
    "Maximum resident set size". Raises RuntimeError with the child's stderr if it fails."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        out = subprocess.run([sys.executable, "-c", _MEASURE, *map(str, argv)], stdout=subprocess.PIPE, stderr=err,
                             env=env, text=True)
        err.seek(0)
        text = err.read().decode(errors="replace")
    try:
        kib, code = (int(v) for v in out.stdout.split())
    except ValueError:
        raise RuntimeError(f"measuring {' '.join(map(str, argv))} failed:\n{text[-3000:]}") from None
    if code != 0:
        raise RuntimeError(f"{' '.join(map(str, argv))} exited with {code}:\n{text[-3000:]}")
    return kib * 1024, time.perf_counter() - t0, text


def rss_bound(rows: int, features: int, *, bits: int = RSS_BITS, copies: int = RSS_COPIES,
              margin: float = RSS_MARGIN) -> tuple[float, float, float]:
    """``(bound, float32 input, packed copies)`` in bytes for ``rows x features`` raw features: the
    input is ``4 rows features``, the copies ``copies x bytes_per_copy`` with the intercept column."""
    data = 4.0 * rows * features
    packed = float(copies * LineFormat(bits, features + 1).bytes_per_copy(rows))
    return data + packed + margin, data, packed


def write_npy(folder: Path, rows: int, features: int, seed: int = 0) -> tuple[Path, Path]:
    """A random float32 ``X.npy`` (uniform in [-3, 5], written a block of rows at a time) and a
    float64 ``y.npy`` of a noisy linear model."""
    rng = np.random.default_rng(seed)
    w = rng.normal(0, 1 / np.sqrt(features), features)
    X = np.lib.format.open_memmap(folder / "X.npy", mode="w+", dtype=np.float32, shape=(rows, features))
    y = np.empty(rows)
    step = max(1, (1 << 20) // features)
    for r in range(0, rows, step):
        block = rng.uniform(-3, 5, (min(step, rows - r), features))
        X[r : r + step] = block
        y[r : r + step] = block @ w + rng.normal(0, 0.1, block.shape[0])
    X.flush()
    del X
    np.save(folder / "y.npy", y)
    return folder / "X.npy", folder / "y.npy"


def write_libsvm(folder: Path, X_path: Path, y_path: Path) -> Path:
    """The ``.npy`` data as a LIBSVM text file (values rounded to 4 decimals, one-based indices)."""
    from sklearn.datasets import dump_svmlight_file

    X = np.load(X_path, mmap_mode="r")
    y = np.load(y_path)
    path = folder / "X.svm"
    step = max(1, (1 << 20) // X.shape[1])
    with open(path, "wb") as fh:
        for r in range(0, X.shape[0], step):
            dump_svmlight_file(np.round(X[r : r + step].astype(np.float64), 4), y[r : r + step], fh)
    return path


def rss_commands(rows: int, features: int, folder: Path, *, libsvm: bool = False):
    """``(what, data, argv)`` of the commands measured at one size (files written into ``folder``)."""
    X, y = write_npy(folder, rows, features)
    synth = f"synthetic:{rows}:{features}"
    common = ["--bits", str(RSS_BITS), "--epochs", str(RSS_COPIES), "--backend", "golden"]
    cmds = [
        ("quantize X.npy", "random .npy", ["quantize", str(X), "--labels", str(y), "--bits", str(RSS_BITS),
                                           "--copies", str(RSS_COPIES), "-o", str(folder / "q.npz")]),
        ("train --data q.npz", "its file", ["train", "--data", str(folder / "q.npz"), "--step", "1e-4", "--epochs",
                                            str(RSS_COPIES), "--backend", "golden", "--no-float"]),
        ("quantize synthetic", synth, ["quantize", synth, "--bits", str(RSS_BITS), "--copies", str(RSS_COPIES), "-o",
                                       str(folder / "qs.npz")]),
        ("train golden + float64", synth, ["train", "--data", synth, *common]),
        ("train golden --no-float", synth, ["train", "--data", synth, *common, "--no-float"]),
    ]
    if libsvm:
        svm = write_libsvm(folder, X, y)
        cmds += [
            ("quantize X.svm", f"LIBSVM, {svm.stat().st_size / 1e6:.0f} MB", ["quantize", str(svm), "--bits", str(RSS_BITS),
                                                                           "--copies", str(RSS_COPIES), "-o",
                                                                           str(folder / "ql.npz")]),
            ("train golden + float64", "LIBSVM", ["train", "--data", str(svm), *common]),
        ]
    return cmds


def measure_rss(sizes, *, libsvm: bool = False, tmp: str | None = None) -> bool:
    """Print the peak RSS of every command at every size against the bound; True if all hold."""
    ok = True
    print(f"\npeak RSS per command (child process, ru_maxrss; MB = 10^6 bytes), b = {RSS_BITS}, {RSS_COPIES} copies; "
          f"bound = float32 input + packed copies + {RSS_MARGIN / 1e6:.0f} MB")
    print(f"{'size':>12} | {'command':<24} {'data':<22} | {'peak RSS':>9} {'bound':>7} {'margin':>7} | {'wall s':>6} | check")
    for rows, features in sizes:
        bound, data, packed = rss_bound(rows, features)
        with tempfile.TemporaryDirectory(dir=tmp) as folder:
            for what, data_name, argv in rss_commands(rows, features, Path(folder), libsvm=libsvm):
                rss, wall, _ = child_peak_rss([sys.executable, "-m", "lowbit.cli", *argv])
                good = rss <= bound
                ok &= good
                print(f"{rows:>6}x{features:<5} | {what:<24} {data_name:<22} | {rss / 1e6:>6.0f} MB {bound / 1e6:>7.0f} "
                      f"{(bound - rss) / 1e6:>+7.0f} | {wall:>6.1f} | {'holds' if good else 'EXCEEDED'}", flush=True)
        print(f"{'':>12} | bound = {data / 1e6:.0f} (float32 input) + {packed / 1e6:.0f} (packed copies) + "
              f"{RSS_MARGIN / 1e6:.0f} MB")
    return ok


def _sizes(text: str):
    try:
        sizes = [tuple(int(v) for v in part.lower().split("x")) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--rss-sizes takes NxF[,NxF...], got {text!r}") from None
    if not sizes or any(len(s) != 2 or min(s) < 1 for s in sizes):
        raise argparse.ArgumentTypeError(f"--rss-sizes takes NxF[,NxF...], got {text!r}")
    return sizes


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=8000)
    ap.add_argument("--features", type=int, default=2000)
    ap.add_argument("--bits", type=int, nargs="+", default=list(range(1, 9)))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--reference", action="store_true", help="also time the NumPy reference (slow: ~25 MB/s)")
    ap.add_argument("--rss", action="store_true", help="also measure the peak RSS of the lowbit commands")
    ap.add_argument("--rss-only", action="store_true", help="only measure the peak RSS of the lowbit commands")
    ap.add_argument("--rss-sizes", type=_sizes, default=[(20000, 2000), (100000, 1000)], metavar="NxF,...")
    ap.add_argument("--rss-libsvm", action="store_true", help="with --rss: a LIBSVM text input too (slow to write)")
    ap.add_argument("--tmp", default=None, help="folder for the --rss files (default: the system's)")
    args = ap.parse_args(argv)
    if args.rss_only:
        ok = measure_rss(args.rss_sizes, libsvm=args.rss_libsvm, tmp=args.tmp)
        print(f"load average after: {load()}")
        print(f"peak RSS bound: {'holds for every command' if ok else 'EXCEEDED'}")
        return 0 if ok else 1

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
    if args.rss:
        rss_ok = measure_rss(args.rss_sizes, libsvm=args.rss_libsvm, tmp=args.tmp)
        ok &= rss_ok
        ok_cpu &= rss_ok
    print(f"load average after: {load()}")
    print(f"targets by wall clock: {'all met' if ok else 'MISSED'}; per core by cpu time (scaling not included): "
          f"{'all met' if ok_cpu else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
