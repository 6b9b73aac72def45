"""The ``lowbit`` command line.

``lowbit quantize``   a data set -> packed double-sampled copies + level table + metadata (.npz)
``lowbit train``      train at one or more precisions on a backend; loss table, metrics, plot, JSON
``lowbit demo``       the README's main job: MNIST 4-vs-9 on the simulated engine at 2, 4, 8 bits
``lowbit info``       open a device and print its capabilities
``lowbit qsgd-demo``  data-parallel training with QSGD-compressed gradients (lowbit.qsgd)
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

from .contract.format import MAX_BITS, SUPPORTED_LINE_BITS
from .driver.sim_engines import SIM_ENGINES
from .experiment import ASSUMED_HARP_FMAX_MHZ, DEFAULT_FMAX_MHZ, auto_step, describe_clock
from .outputs import PLOT_SUFFIXES, output_path, strict_json

BACKENDS = ("sim", "serial", "golden", "float")


def bits_list(text: str) -> list[int]:
    try:
        bits = [int(b) for b in text.split(",") if b.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--bits takes a comma-separated list of integers, got {text!r}")
    if not bits or any(not 1 <= b <= MAX_BITS for b in bits):
        raise argparse.ArgumentTypeError(f"every bit width must be in 1..{MAX_BITS}, got {text!r}")
    return bits


def _checked(convert, ok, message: str):
    """An argparse type: ``convert(text)``, refused with ``message`` (``{text!r}`` filled in) when it
    does not convert or ``ok`` says no."""
    def parse(text: str):
        try:
            v = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(message.format(text=text)) from None
        if not ok(v):
            raise argparse.ArgumentTypeError(message.format(text=text))
        return v
    return parse


positive_int = _checked(int, lambda v: v >= 1, "expected a positive integer, got {text!r}")
_seed = _checked(int, lambda v: v >= 0, "--seed takes a non-negative integer, got {text!r}")
_fmax = _checked(float, lambda v: math.isfinite(v) and v > 0, "--fmax takes a positive clock in MHz, got {text!r}")


_degree = _checked(int, lambda v: 1 <= v <= 8, "--degree takes an integer in 1..8, got {text!r}")
_margin_range = _checked(int, lambda v: 1 <= v <= 128 and v & (v - 1) == 0,
                         "--margin-range takes a power of two in 1..128, got {text!r}")
_l2 = _checked(float, lambda v: 0 <= v < 1, "--l2 takes a number in [0, 1), got {text!r}")
_fraction = _checked(float, lambda v: 0 < v < 1, "--holdout takes a fraction in (0, 1), got {text!r}")


def loss_config(args):
    """The run's :class:`lowbit.contract.losses.LossConfig` from the options (ValueError naming the problem)."""
    from .contract.losses import LossConfig

    if args.loss == "squared" and args.estimator != "naive":
        raise ValueError("--estimator chebyshev is for --loss logistic or hinge (least squares has its own "
                         "unbiased estimator, double sampling)")
    lc = LossConfig(loss=args.loss, estimator=args.estimator, degree=args.degree, margin_range=args.margin_range,
                    l2=args.l2)
    if args.copies is not None and args.copies < lc.samples():
        raise ValueError(f"--estimator chebyshev --degree {lc.degree} reads {lc.samples()} independent copies of "
                         f"each row: give --copies >= {lc.samples()} (got {args.copies})")
    if args.backend == "sim" and not getattr(args, "socket", None):  # (--socket, serial: the device says, BUILT)
        from .driver.sim_engines import SIM_BUILT
        from .driver.train import check_built, loss_needs

        engine = _sim_engine(args)
        from .contract.registers import Built

        pipelined = Built.DELAYED if getattr(args, "pipelined", False) else Built.NONE
        check_built(loss_needs(lc) | pipelined, SIM_BUILT[engine], f"sim ({engine})")
    return lc


def _step(text: str):
    if text == "auto":
        return "auto"
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--step takes a number or 'auto', got {text!r}")
    if not 0 < v < 1:
        raise argparse.ArgumentTypeError(f"--step must be in (0, 1), got {text!r}")
    return v


def _add_training_args(p: argparse.ArgumentParser, *, demo: bool = False):
    p.add_argument("--data", default="mnist49" if demo else "synthetic",
                   help="synthetic | synthetic:N:F | mnist49 | PATH to a LIBSVM file | FILE.npz written by "
                        "lowbit quantize (default: %(default)s)")
    p.add_argument("--bits", type=bits_list, default=[2, 4, 8] if demo else [4],
                   help="comma-separated bit widths, e.g. 2,4,8 (default: %(default)s)")
    p.add_argument("--levels", choices=("uniform", "optimal"), default="uniform")
    p.add_argument("--engine", choices=("auto",) + tuple(SIM_ENGINES), default="auto",
                   help="simulated engine: woven (bit-serial, time ~ bits; uniform levels only) or planes "
                        "(lane-parallel, any levels); auto: woven for uniform levels, planes for optimal")
    p.add_argument("--epochs", type=positive_int, default=8 if demo else 10)
    p.add_argument("--batch", type=positive_int, default=16)
    p.add_argument("--step", type=_step, default="auto",
                   help="per-sample step: w -= step * sum over the minibatch of the gradients (default: auto)")
    p.add_argument("--copies", type=positive_int, default=None,
                   help="independently quantized copies, cycled over epochs (default: one per epoch, up to 8)")
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--backend", choices=BACKENDS, default="sim" if demo else "golden",
                   help="engine backend for the quantized runs; float runs float64 SGD only")
    p.add_argument("--no-float", action="store_true", help="skip the float64 reference run")
    # Issue 13: the loss, its estimator, L2, and a held-out test set.
    from .contract.losses import ESTIMATOR_NAMES, LOSS_NAMES

    p.add_argument("--loss", choices=LOSS_NAMES, default="squared",
                   help="squared (least squares), logistic or hinge (classification; labels by sign)")
    p.add_argument("--estimator", choices=ESTIMATOR_NAMES, default="naive",
                   help="logistic/hinge gradient from quantized rows: naive (one copy through the loss's "
                        "derivative) or chebyshev (ZipML's polynomial estimator, --degree + 1 copies per row)")
    p.add_argument("--degree", type=_degree, default=3, help="Chebyshev polynomial degree (default: %(default)s)")
    p.add_argument("--margin-range", type=_margin_range, default=4,
                   help="the Chebyshev polynomial is fitted on margins in [-R, R], R a power of two "
                        "(default: %(default)s)")
    p.add_argument("--l2", type=_l2, default=0.0, help="L2 regularisation per row: each row adds l2 * w to the "
                   "gradient (default: 0)")
    p.add_argument("--pipelined", action="store_true",
                   help="pipelined SGD (MODEL_DELAY 1): each minibatch's residuals against the model one minibatch "
                        "old, so the engine streams across minibatch boundaries; the woven engine needs --batch "
                        "equal to its rows per line (16 at 512 bits)")
    split = p.add_mutually_exclusive_group()
    split.add_argument("--test", default=None, metavar="PATH",
                       help="LIBSVM test file (replaces the data set's own test split)")
    split.add_argument("--holdout", type=_fraction, default=None, metavar="FRAC",
                       help="hold out this fraction of the training rows as the test set (fixed seed, "
                            "lowbit.experiment.HOLDOUT_SEED)")
    p.add_argument("--fmax", type=_fmax, default=DEFAULT_FMAX_MHZ,
                   help="engine clock in MHz for modelled time (default: %(default)s, the fmax make bitstream "
                        f"measured; {ASSUMED_HARP_FMAX_MHZ:g} is ZipML's HARP clock, an assumption)")
    p.add_argument("--plot", type=Path, default=Path("out/demo.png") if demo else None, help="write a PNG plot")
    p.add_argument("--json", action="store_true", help="print one JSON summary instead of tables")
    p.add_argument("--save-model", type=Path, default=None,
                   help="save the final models (normalised and original units) to this .npz")
    p.add_argument("--socket", default=None, help="attach to a running simulator (make sim-server)")
    _add_serial_args(p)


def _add_scaleout_args(p: argparse.ArgumentParser):
    from .scaleout import DEFAULT_LINK_GBPS, EXCHANGE_NAMES, STEP_SCALINGS

    g = p.add_argument_group("several engines (docs/scaleout.md)")
    g.add_argument("--engines", type=_checked(int, lambda v: 1 <= v <= 16, "--engines takes 1..16, got {text!r}"),
                   default=None, help="K engines in K worker processes (torch.distributed, gloo), each on its own "
                                      "shard of the rows; --backend golden, or sim on an engine with RESUME (the woven one)")
    g.add_argument("--sync-every", type=positive_int, default=32, metavar="T",
                   help="average the engines' models every T minibatches (default: %(default)s)")
    g.add_argument("--exchange", choices=EXCHANGE_NAMES, default="fp32",
                   help="how model deltas travel: float32, or QSGD at 8 or 4 bits (default: %(default)s)")
    g.add_argument("--link-gbps", type=_checked(float, lambda v: math.isfinite(v) and v > 0,
                                                "--link-gbps takes a positive rate in Gb/s, got {text!r}"),
                   default=DEFAULT_LINK_GBPS, help="link rate of the modelled exchange time (default: %(default)s)")
    g.add_argument("--step-scaling", choices=STEP_SCALINGS, default="linear",
                   help="linear: each engine's step is K x --step, capped at 3/4 of the least-squares stability "
                        "bound 2 / max lambda(minibatch Hessian); none: --step as given (default: %(default)s)")


def _print_table(runs, prepared, out=None):
    out = sys.stdout if out is None else out  # looked up per call, so redirection works
    names = [r.label for r in runs]
    w = max(12, *(len(n) + 2 for n in names))
    what = "MSE" if runs[0].loss == "squared" else f"mean {runs[0].loss} loss"
    print(f"\nTraining loss ({what} on normalised data) per epoch, {prepared.name}: "
          f"{prepared.rows} rows x {prepared.features} features", file=out)
    print("epoch".rjust(6) + "".join(n.rjust(w) for n in names), file=out)
    for e in range(max(len(r.train_loss) for r in runs)):
        cells = "".join((f"{r.train_loss[e]:.6f}" if e < len(r.train_loss) else "").rjust(w) for r in runs)
        print(f"{e + 1:6d}{cells}", file=out)
    print(file=out)
    header = ["run", "backend", "final loss", "metric", "cycles", "lines/cycle", "modelled s", "host s", "MB/epoch",
              "wall s"]
    rows = []
    for r in runs:
        rows.append([
            r.label, r.backend, f"{r.train_loss[-1]:.6f}",
            f"{r.metric_name}={r.test_metric:.4f}" if r.test_metric is not None else "-",
            f"{r.cycles:,}" if r.cycles else "-",
            f"{r.lines_per_cycle:.3f}" if r.lines_per_cycle else "-",
            f"{r.elapsed_s[-1]:.4g}" if r.elapsed_s else "-",
            f"{r.host_s:.3f}" if r.host_s is not None else "-",
            f"{r.bytes_per_epoch / 1e6:.3f}" if r.bytes_per_epoch else "-",
            f"{r.wall_s:.1f}",
        ])
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    print("  ".join(h.ljust(widths[i]) for i, h in enumerate(header)), file=out)
    for row in rows:
        print("  ".join(c.ljust(widths[i]) for i, c in enumerate(row)), file=out)
    fmax = next((r.fmax_mhz for r in runs if r.fmax_mhz), None)
    if fmax:
        print(f"\nmodelled s = engine cycles at {describe_clock(fmax)}; host s = quantize + pack into the "
              f"engine's lines on this CPU (once per data set); float64 time is measured on this CPU.", file=out)


def _device_options(args) -> dict:
    """``open_device`` options from ``--socket`` (sim) or ``--port`` (serial), and ``--engine``."""
    if args.backend == "serial":
        if not args.port:
            raise ValueError("--backend serial needs --port (e.g. /dev/ttyUSB0)")
        return {"port": args.port, "baud": args.baud}
    if args.socket:
        return {"socket": args.socket}
    return dict(SIM_ENGINES[_sim_engine(args)])


def _add_serial_args(p: argparse.ArgumentParser):
    """The board's link (``--backend serial``): its port and its UART rate."""
    p.add_argument("--port", default=None, help="serial port of the ULX3S board (--backend serial)")
    p.add_argument("--baud", type=_baud, default=1_000_000,
                   help="the board's UART rate (--backend serial; make bitstream's report says it: "
                        "default %(default)s)")


def _baud(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        v = 0
    if v <= 0:
        raise argparse.ArgumentTypeError(f"--baud takes a positive whole number of bits per second, got {text!r}")
    return v


def _sim_engine(args) -> str:
    """The simulated engine ``--engine`` names (auto: woven, or planes for optimal levels)."""
    engine = getattr(args, "engine", "auto")
    if engine == "auto":
        engine = "planes" if getattr(args, "levels", "uniform") == "optimal" else "woven"
    return engine


def _train_file(args) -> int:
    """``lowbit train --data FILE.npz``: train on a saved QuantizedDataset (its b, levels and copies)."""
    from types import SimpleNamespace

    from . import experiment as ex
    from .dataset import QuantizedDataset

    if args.step == "auto":
        raise ValueError("--data FILE.npz holds no float data to derive a step from: give --step")
    if args.backend == "float":
        raise ValueError("--data FILE.npz holds quantized data only: use --backend golden, sim or serial")
    lc = loss_config(args)
    qds = QuantizedDataset.load(args.data)
    device = None
    try:
        if args.backend in ("sim", "serial"):
            from .driver import open_device

            device = open_device(args.backend, **_device_options(args))
        run = ex.run_engine(None, qds, backend=args.backend, step=args.step, batch=args.batch, epochs=args.epochs,
                            device=device, fmax_mhz=args.fmax, levels_name=qds.level_kind, progress=not args.json,
                            loss=lc, model_delay=int(args.pipelined))
    finally:
        if device is not None:
            device.close()
    info = SimpleNamespace(name=str(args.data), rows=qds.rows, features=qds.features)
    if args.json:
        print(json.dumps({"data": info.name, "rows": qds.rows, "features": qds.features, "runs": [run.to_json()]}))
    else:
        _print_table([run], info)
        print("(training loss = the engine's loss accumulator: the file holds no float data)")
    return 0


# ------------------------------------------------------------------------- checks before any work
def check_engine_limits(args) -> None:
    """Batch, copies and epochs against the engine's limits (lowbit.contract.registers), before any work."""
    if args.backend == "float":
        return  # float64 SGD has no engine limits
    from .contract.registers import MAX_BATCH, MAX_COPIES, MAX_EPOCHS

    for option, value, limit in (("--batch", args.batch, MAX_BATCH), ("--copies", args.copies, MAX_COPIES),
                                 ("--epochs", args.epochs, MAX_EPOCHS)):
        if value is not None and value > limit:
            raise ValueError(f"{option} {value} is more than the engine takes (at most {limit})")


# ----------------------------------------------------------------------------------- divergence
#: A run whose training loss exceeds this many times the loss of the all-zero model (mean y^2:
#: predicting nothing) has diverged: a converging run stays below it from the first epoch on.
DIVERGENCE_FACTOR = 100.0


class Diverged(Exception):
    """A run's loss became non-finite or grew past the divergence bound."""


def check_divergence(run, zero_loss: float, auto: float) -> None:
    """Raise :class:`Diverged` naming the run, the epoch and a smaller step if ``run`` diverged."""
    bound = DIVERGENCE_FACTOR * max(zero_loss, 1e-12)
    for epoch, loss in enumerate(run.train_loss, 1):
        if not math.isfinite(loss) or loss > bound:
            raise Diverged(f"{run.label} diverged at epoch {epoch}: training loss {loss:.3g}, more than "
                           f"{DIVERGENCE_FACTOR:g} x the all-zero model's {zero_loss:.3g}; use a smaller --step "
                           f"(this run: {run.step:.3g}; --step auto would use {auto:.3g})")


def _emit_json(prepared, runs, plot, diverged: str | None):
    summary, replaced = strict_json({"data": prepared.name, "rows": prepared.rows, "features": prepared.features,
                                     "runs": [r.to_json() for r in runs], "plot": str(plot) if plot else None,
                                     "diverged": diverged})
    summary["nonfinite_as_null"] = replaced  # the flag: some number was NaN or infinite
    print(json.dumps(summary, allow_nan=False))


def cmd_train(args) -> int:
    if getattr(args, "engines", None) is not None:
        from .scaleout_cli import train_engines

        if getattr(args, "pipelined", False):
            raise ValueError("--pipelined is for one engine: the scale-out rounds (--engines) run exact SGD")

        return train_engines(args)
    import numpy as np

    from . import experiment as ex

    # Everything that can be refused is refused before any work: options, output paths, engine
    # limits, then (with the engine's MAX_FEATURES) the data's size, before it is densified.
    check_engine_limits(args)
    lc = loss_config(args)
    if str(args.data).endswith(".npz"):
        return _train_file(args)
    plot = output_path(args.plot, "--plot", ".png", PLOT_SUFFIXES) if args.plot else None
    model_path = output_path(args.save_model, "--save-model", ".npz") if args.save_model else None
    quiet = args.json
    runs = []
    device = None
    try:
        if args.backend in ("sim", "serial"):
            from .driver import open_device

            options = _device_options(args)
            if args.backend == "sim" and not args.socket:
                from .driver.sim import require_simulator

                require_simulator()
                if not quiet:
                    print("starting the simulated engine (the first run exports the AFU and builds the Verilator "
                          "simulator: 80 s on a 2-core machine for the 512-bit engine, cached in $LOWBIT_BUILD_DIR or "
                          "~/.cache/lowbit)",
                          file=sys.stderr, flush=True)
            device = open_device(args.backend, **options)
            from .driver.train import check_built, loss_needs

            check_built(loss_needs(lc), device.built, args.backend)  # what this engine says it has
            if not quiet:
                c = device.caps
                print(f"engine: {c['LINE_BITS']}-bit lines, {c['LANES']} lanes, up to {c['MAX_FEATURES']} features",
                      file=sys.stderr)
            max_features = device.caps["MAX_FEATURES"]
            line_bits = device.caps["LINE_BITS"]
            from .driver.train import engine_layout

            layout = engine_layout(device.caps)
        elif args.backend == "golden":  # the golden model stands for the sim engine this run would open
            engine = _device_options(args)
            max_features, line_bits, layout = engine["max_features"], engine["line_bits"], "planes"
        else:
            max_features, line_bits, layout = None, 512, "planes"
        prepared = ex.prepare(args.data, seed=args.seed, max_features=max_features, test=args.test,
                              holdout=args.holdout)
        if lc.loss != "squared" and prepared.task != "classification":
            raise ValueError(f"--loss {lc.loss} needs a classification data set (two label values); "
                             f"{prepared.name} is {prepared.task}")
        auto = auto_step(prepared.X, args.batch)
        step = auto if args.step == "auto" else args.step
        copies = args.copies or max(min(args.epochs, 8), lc.samples())  # Chebyshev: d + 1 distinct copies
        zero_loss = float(ex.training_loss(prepared.X, prepared.y, np.zeros(prepared.features), lc.loss)[0])
        try:
            if not args.no_float:
                runs.append(ex.run_float(prepared, step=step, batch=args.batch, epochs=args.epochs, loss=lc))
                check_divergence(runs[-1], zero_loss, auto)
                if not quiet:
                    print(f"float64: final loss {runs[-1].train_loss[-1]:.6f}", file=sys.stderr)
            if args.backend != "float":
                # The quantizer's compiled kernels, loaded (compiled on a machine's first run) before
                # any host time is taken: that one-time cost is not the first precision's.
                warm_s = ex.warm_quantizer(prepared, levels=args.levels, line_bits=line_bits,
                                           max_features=max_features, layout=layout)
                if not quiet and warm_s >= 1.0:
                    print(f"quantizer kernels compiled in {warm_s:.1f} s (first run on this machine; "
                          "not in host s)", file=sys.stderr)
                for bits in args.bits:
                    t0 = time.perf_counter()
                    # Quantized and packed in the engine's own layout in one pass: all of it is host time.
                    qds = ex.quantize(prepared, bits=bits, levels=args.levels, copies=copies, seed=args.seed,
                                      line_bits=line_bits, max_features=max_features, progress=not quiet,
                                      layout=layout)
                    host_s = time.perf_counter() - t0
                    run = ex.run_engine(prepared, qds, backend=args.backend, step=step, batch=args.batch,
                                        epochs=args.epochs, device=device, fmax_mhz=args.fmax,
                                        levels_name=args.levels, progress=not quiet, loss=lc,
                                        model_delay=int(args.pipelined))
                    run.host_s = host_s
                    runs.append(run)
                    check_divergence(run, zero_loss, auto)
                    if not quiet:
                        print(f"{run.label} on {run.backend}: final loss {run.train_loss[-1]:.6f}", file=sys.stderr)
        except Diverged as exc:
            if args.json:
                _emit_json(prepared, runs, None, runs[-1].label)
            print(f"lowbit: error: {exc}", file=sys.stderr)
            return 1
    finally:
        if device is not None:
            device.close()
    if model_path:
        model_path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {}
        for r in runs:
            key = r.label.replace(" ", "_").replace("=", "")
            coef, intercept = prepared.normalizer.model_to_original(r.model)
            arrays[f"{key}_normalised"] = r.model
            arrays[f"{key}_coef"] = coef
            arrays[f"{key}_intercept"] = np.asarray(intercept)
        np.savez(model_path, **arrays)
        for r in runs:
            r.model_path = str(model_path)
    if plot:
        from .plots import plot_runs

        plot_runs(runs, plot, title=f"{prepared.name}: {prepared.rows} x {prepared.features}, "
                                    f"batch {args.batch}, step {step:.3g}")
    if args.json:
        _emit_json(prepared, runs, plot, None)
    else:
        _print_table(runs, prepared)
        if plot:
            print(f"plot written to {plot}")
        if model_path:
            print(f"models written to {model_path}")
    return 0


def _quantize_npy(args) -> int:
    """``lowbit quantize X.npy --labels y.npy``: X memory-mapped, normalised and quantized chunk by
    chunk, the packed copies streamed into the output file (memory independent of N)."""
    import numpy as np

    from .contract.quant import check_finite, levels_to_fixed
    from .data import Normalizer
    from .dataset import QuantizedDataset, fit_levels

    if args.labels is None:
        raise ValueError("a .npy input needs --labels y.npy (one label per row)")
    output = output_path(args.output, "-o", ".npz")
    X = np.load(args.data, mmap_mode="r")
    if X.ndim != 2 or X.shape[0] < 1 or X.shape[1] < 1 or X.dtype.kind != "f":
        raise ValueError(f"{args.data}: expected a 2-D float array (rows, features), got {X.dtype} {X.shape}")
    y = check_finite(np.load(args.labels), "labels")
    if y.shape != (X.shape[0],):
        raise ValueError(f"{args.labels}: expected {X.shape[0]} labels, got shape {y.shape}")
    try:
        norm = Normalizer().fit(X, y)  # column ranges in one streaming pass over the memmap
    except ValueError as exc:
        raise ValueError(f"{args.data}: {exc}") from None
    sample = None
    if args.levels == "optimal":  # fitted to a seeded sample of rows, as QuantizedDataset.build does
        rows = np.sort(np.random.default_rng(args.seed).choice(X.shape[0], min(X.shape[0], max(1, (1 << 22) // X.shape[1])),
                                                                replace=False))
        sample = norm.transform_X(X[rows])
    lv, kind = fit_levels(sample, args.levels, args.bits, np.random.default_rng(args.seed))
    del sample
    output.parent.mkdir(parents=True, exist_ok=True)
    fmt = QuantizedDataset.write_file(output, X, norm.transform_y(y), bits=args.bits, levels_q=levels_to_fixed(lv),
                                      levels=lv, level_kind=kind, copies=args.copies, seed=args.seed,
                                      line_bits=args.line_bits, transform=norm.transform_X,
                                      features=norm.features_out, progress=True)
    n = X.shape[0]
    print(f"{args.data}: {n} rows x {fmt.features} features at b={fmt.bits} ({args.levels} levels), "
          f"{args.copies} copies, {fmt.bytes_per_copy(n) / 1e6:.3f} MB per copy -> {output}")
    return 0


def cmd_quantize(args) -> int:
    """``lowbit quantize``: the packed copies go straight into the output file (never all in memory)."""
    if str(args.data).endswith(".npy"):
        return _quantize_npy(args)
    import numpy as np

    from . import experiment as ex
    from .contract.quant import levels_to_fixed
    from .dataset import QuantizedDataset, fit_levels

    output = output_path(args.output, "-o", ".npz")  # np.savez appends .npz: report what is written
    prepared = ex.prepare(args.data, seed=args.seed)
    # The levels and the copies' codes are those QuantizedDataset.build would make (same seed).
    lv, kind = fit_levels(prepared.X, args.levels, args.bits, np.random.default_rng(args.seed))
    output.parent.mkdir(parents=True, exist_ok=True)
    fmt = QuantizedDataset.write_file(output, prepared.X, prepared.y, bits=args.bits, levels_q=levels_to_fixed(lv),
                                      levels=lv, level_kind=kind, copies=args.copies, seed=args.seed,
                                      line_bits=args.line_bits, progress=True)
    n = prepared.rows
    print(f"{prepared.name}: {n} rows x {fmt.features} features at b={fmt.bits} ({args.levels} levels), "
          f"{args.copies} copies, {fmt.bytes_per_copy(n) / 1e6:.3f} MB per copy "
          f"({fmt.bytes_per_copy(n) / fmt.information_bytes(n):.3f} x information content) "
          f"-> {output}")
    return 0


def cmd_info(args) -> int:
    from .driver import open_device

    with open_device(args.backend, **_device_options(args)) as dev:
        for k, v in dev.caps.items():
            print(f"{k:16s} {v}")
        for k, v in dev.arith.items():              # equal to lowbit.contract.fixed (checked at open)
            print(f"{k:16s} {v}")
        # the optional datapaths (BUILT): what --loss, --l2, --estimator, resumed runs and
        # --pipelined can ask of this engine
        names = [flag.name for flag in _built_flags(getattr(dev, "built", 0))]
        print(f"{'BUILT':16s} {','.join(names) or 'none'}")
    return 0


def _built_flags(built):
    from .contract.registers import Built

    return [flag for flag in Built if flag and flag & Built(built)]


def cmd_qsgd_demo(argv: list[str]) -> int:
    from .qsgd.demo import main

    return main(argv)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lowbit", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train at one or more precisions and compare with float64")
    _add_training_args(p)
    _add_scaleout_args(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("demo", help="MNIST 4-vs-9 on the simulated engine at 2, 4 and 8 bits, with a plot")
    _add_training_args(p, demo=True)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("quantize", help="quantize a data set into packed lines (.npz)")
    p.add_argument("data", help="synthetic | synthetic:N:F | mnist49 | PATH to a LIBSVM file | X.npy "
                                "(memory-mapped; with --labels)")
    p.add_argument("--labels", default=None, help="y.npy: the labels of an X.npy input")
    p.add_argument("--bits", type=int, choices=range(1, MAX_BITS + 1), metavar="B", required=True)
    p.add_argument("--levels", choices=("uniform", "optimal"), default="uniform")
    p.add_argument("--copies", type=positive_int, default=1)
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--line-bits", type=int, choices=SUPPORTED_LINE_BITS, default=512)
    p.add_argument("-o", "--output", type=Path, required=True)
    p.set_defaults(func=cmd_quantize)

    p = sub.add_parser("info", help="open a device and print its capabilities")
    p.add_argument("--backend", choices=("sim", "serial"), default="sim")
    p.add_argument("--socket", default=None, help="attach to a running simulator (make sim-server)")
    _add_serial_args(p)
    p.add_argument("--engine", choices=tuple(SIM_ENGINES), default="woven",
                   help="simulated engine to build and open (default: %(default)s)")
    p.set_defaults(func=cmd_info)

    sub.add_parser("qsgd-demo", help="QSGD data-parallel demo (options: lowbit qsgd-demo --help)", add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "qsgd-demo":
        return cmd_qsgd_demo(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    from . import interrupts
    from .driver.errors import DriverError

    interrupts.install()  # a Ctrl-C swallowed by a library's catch-all still stops a run
    from .extras import MissingExtra
    from .scaleout import WorkerFailed

    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("lowbit: interrupted", file=sys.stderr)
        return 130
    except MissingExtra as exc:
        print(f"lowbit: error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError) as exc:
        print(f"lowbit: error: {exc}", file=sys.stderr)
        return 2
    except DriverError as exc:
        print(f"lowbit: device error: {exc}", file=sys.stderr)
        return 1
    except WorkerFailed as exc:
        print(f"lowbit: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # a folder that cannot be created, a full disk, an unusable build folder
        what = f"{exc.strerror}: {exc.filename}" if exc.strerror and exc.filename else str(exc)
        print(f"lowbit: error: {what}", file=sys.stderr)
        return 1
    except RuntimeError as exc:
        # A Ctrl-C during an import (numba's, loaded when the first data set is packed) arrives
        # wrapped: "Error calling __set_name__ ..." with the KeyboardInterrupt as its cause.
        if not _caused_by_interrupt(exc):
            raise
        print("lowbit: interrupted", file=sys.stderr)
        return 130


def _caused_by_interrupt(exc: BaseException) -> bool:
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False

if __name__ == "__main__":
    sys.exit(main())
