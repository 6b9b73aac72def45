"""Engine against CPU SGD, side by side in one run on this machine (issue 10, part 4).

Contestants, all on the same problem (same normalised data, batch, per-sample step, epochs):

* **NumPy float32** minibatch SGD, ``w -= step * A.T @ (A @ w - y)`` per minibatch (the engine's
  update, :func:`lowbit.baselines.numpy_sgd`): the reference every speedup is relative to.
* **scikit-learn SGDRegressor**: squared loss, no penalty, constant learning rate ``eta0 = step``,
  no shuffling, no intercept (the data has its own column). What differs:
  :data:`lowbit.baselines.SKLEARN_DIFFERENCES`.
* **The engine**: real runs of the Verilated 512-bit AFU through the ``sim`` backend
  (:func:`lowbit.driver.train`, random 100-400-cycle out-of-order memory). Its cycle counts are
  exact; its time is cycles at ``lowbit.experiment.MEASURED_FMAX_MHZ`` (the fmax ``make bitstream``
  measured), with a separate column at the 200 MHz HARP clock, labelled as an assumption.

Host work for the engine (``QuantizedDataset.build`` as ``lowbit train`` calls it, for
``min(epochs, 8)`` copies, quantized and packed in the engine's layout in one compiled pass; plus
the label lines) has its own column, and is also shown
amortised over the epochs and added to the engine's time. CPU times are the best of ``--repeats``
runs (the machine is shared); engine cycles need no repeats.

    python bench/speedup.py                                  # gisette-shaped 6000 x 5000 and MNIST 4-vs-9, b = 1..8
    python bench/speedup.py --rows 600 --features 500 --bits 2,4 --epochs 2   # a quick check
    python bench/speedup.py --pipelined                      # the engine with pipelined SGD (MODEL_DELAY 1)

Prints, per data set, a Markdown table and whether the issue's targets hold (b = 2 at >= 6.5x
NumPy float32 per epoch, b = 4 at >= 4x, at the measured clock).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass

import numpy as np

from lowbit import experiment as ex
from lowbit.baselines import SKLEARN_DIFFERENCES, best_of, numpy_sgd, sklearn_sgd
from lowbit.cli import bits_list, positive_int
from lowbit.experiment import auto_step
from lowbit.driver.train import engine_format, engine_layout

#: Issue 10's targets: bits -> minimum engine speedup over NumPy float32 per epoch (measured clock).
TARGETS = {2: 6.5, 4: 4.0}
REFERENCE = "NumPy float32"


@dataclass
class Row:
    """One contestant on one data set. Engine rows carry cycles and host time; CPU rows do not."""

    name: str
    loss: float
    ms_per_epoch: float  # measured (CPU) or at MEASURED_FMAX_MHZ (engine)
    bits: int | None = None
    cycles_per_epoch: float | None = None
    lines_per_cycle: float | None = None
    host_s: float | None = None  # quantize + pack, all copies
    epochs: int = 1

    @property
    def ms_per_epoch_assumed(self) -> float | None:
        """Engine time at the 200 MHz assumption (None for CPU rows)."""
        if self.cycles_per_epoch is None:
            return None
        return engine_ms(self.cycles_per_epoch, ex.ASSUMED_HARP_FMAX_MHZ)

    @property
    def host_ms_per_epoch(self) -> float | None:
        return None if self.host_s is None else 1e3 * self.host_s / self.epochs


def engine_ms(cycles: float, fmax_mhz: float) -> float:
    """Milliseconds that ``cycles`` take at ``fmax_mhz``."""
    if not fmax_mhz > 0:
        raise ValueError(f"fmax must be positive, got {fmax_mhz!r} MHz")
    return 1e3 * cycles / (fmax_mhz * 1e6)


def mse(X, y, w) -> float:
    """Mean squared residual in float64: the loss every contestant is judged by."""
    r = np.asarray(X, dtype=np.float64) @ np.asarray(w, dtype=np.float64) - y
    return float(np.mean(r * r))


def speedup(ref_ms: float, ms: float | None) -> float | None:
    return None if ms is None else ref_ms / ms


def clock_needed_mhz(cycles_per_epoch: float, ref_ms: float, target: float) -> float:
    """The engine clock at which ``cycles_per_epoch`` is ``target`` times faster than ``ref_ms``.

    The engine's cycles are set by the lines it streams and the rate it takes them at, not by its
    clock, so this is what a target asks of the clock against this machine's CPU.
    """
    if not ref_ms > 0:
        raise ValueError(f"reference time must be positive, got {ref_ms!r} ms")
    return cycles_per_epoch * target / (ref_ms * 1e3)


def verdicts(rows: list[Row], targets: dict[int, float] = TARGETS) -> list[tuple[int, float, float | None, float | None, bool]]:
    """``(bits, target, speedup at the measured clock, speedup at 200 MHz assumed, holds)`` per target.

    Speedups are per epoch of engine time over NumPy float32 (host work excluded, as the target
    is stated); ``None`` and ``holds = False`` if that precision was not run.
    """
    ref = next(r for r in rows if r.name == REFERENCE).ms_per_epoch
    out = []
    for bits, target in targets.items():
        eng = next((r for r in rows if r.bits == bits), None)
        if eng is None:
            out.append((bits, target, None, None, False))
            continue
        s = speedup(ref, eng.ms_per_epoch)
        out.append((bits, target, s, speedup(ref, eng.ms_per_epoch_assumed), s >= target))
    return out


def _f(v, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def render(title: str, rows: list[Row]) -> str:
    """A Markdown table of the rows, then one line per target saying whether it holds."""
    ref = next(r for r in rows if r.name == REFERENCE)
    mhz, assumed = f"{ex.MEASURED_FMAX_MHZ:g}", f"{ex.ASSUMED_HARP_FMAX_MHZ:g}"
    head = ["contestant", f"ms/epoch (engine at {mhz} MHz, measured fmax)", "speedup vs NumPy f32",
            "host quantize+pack s", "host ms/epoch (amortised)", "speedup incl. host",
            "final loss", "loss / NumPy f32", "engine cycles/epoch", "lines/cycle",
            f"ms/epoch at {assumed} MHz (assumed clock)", f"speedup at {assumed} MHz (assumed)"]
    lines = [f"**{title}**", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        total = None if r.host_s is None else r.ms_per_epoch + r.host_ms_per_epoch
        cells = [r.name, _f(r.ms_per_epoch, ".3f"), _f(speedup(ref.ms_per_epoch, r.ms_per_epoch), ".3g") + "x",
                 _f(r.host_s, ".3f"), _f(r.host_ms_per_epoch, ".3f"),
                 _f(speedup(ref.ms_per_epoch, total), ".3g") + ("x" if total else ""),
                 _f(r.loss, ".6f"), _f(r.loss / ref.loss, ".4f"),
                 _f(r.cycles_per_epoch, ",.0f"), _f(r.lines_per_cycle, ".3f"),
                 _f(r.ms_per_epoch_assumed, ".3f"),
                 _f(speedup(ref.ms_per_epoch, r.ms_per_epoch_assumed), ".3g") + ("x" if r.cycles_per_epoch else "")]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for bits, target, s, s_assumed, holds in verdicts(rows):
        if s is None:
            lines.append(f"- target b = {bits} >= {target:g}x NumPy float32 per epoch: not measured (b = {bits} not run)")
            continue
        eng = next(r for r in rows if r.bits == bits)
        need = clock_needed_mhz(eng.cycles_per_epoch, ref.ms_per_epoch, target)
        lines.append(f"- target b = {bits} >= {target:g}x NumPy float32 per epoch at the measured {mhz} MHz: "
                     f"**{'holds' if holds else 'NOT MET'}** ({s:.2f}x; at {assumed} MHz, an assumed clock: "
                     f"{s_assumed:.2f}x; against this NumPy time it needs the engine at >= {need:.0f} MHz)")
    return "\n".join(lines) + "\n"


def machine_line() -> str:
    """Cores, BLAS threads and load: what the CPU contestants ran on."""
    from threadpoolctl import threadpool_info

    # OpenBLAS's kernel (its "architecture") is named: OPENBLAS_CORETYPE can pin an older one.
    blas = [f"{i.get('internal_api')} {i.get('num_threads')} threads"
            + (f" ({i['architecture']} kernels)" if i.get("architecture") else "")
            for i in threadpool_info() if i.get("user_api") == "blas"]
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    return f"{os.cpu_count()} cores, BLAS: {'; '.join(blas) or 'none found'}, load average {load}"


def cpu_rows(p, *, step: float, batch: int, epochs: int, repeats: int) -> list[Row]:
    rows = []
    for run in (best_of(repeats, numpy_sgd, p.X, p.y, step=step, batch=batch, epochs=epochs),
                best_of(repeats, sklearn_sgd, p.X, p.y, step=step, epochs=epochs)):
        rows.append(Row(run.label, mse(p.X, p.y, run.models[-1]), 1e3 * run.s_per_epoch, epochs=epochs))
    return rows


def engine_row(p, device, *, bits: int, levels: str, step: float, batch: int, epochs: int, seed: int,
               model_delay: int = 0) -> Row:
    t0 = time.perf_counter()
    # Quantized and packed straight into the engine's layout (one fused pass): train() re-packs nothing.
    qds = ex.quantize(p, bits=bits, levels=levels, copies=min(epochs, 8), seed=seed,
                      line_bits=device.caps["LINE_BITS"], max_features=device.caps["MAX_FEATURES"],
                      layout=engine_layout(device.caps))
    qds.data_lines(engine_format(qds.fmt, device.caps))  # what train() sends: the lines just built
    qds.label_lines()
    host_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    run = ex.run_engine(p, qds, backend="sim", step=step, batch=batch, epochs=epochs, device=device,
                        levels_name=levels, model_delay=model_delay)
    wall = time.perf_counter() - t0
    print(f"  b={bits}: host {host_s:.2f} s, {run.cycles:,} cycles simulated in {wall:.1f} s "
          f"({run.cycles / wall:,.0f} cycles/s)", file=sys.stderr, flush=True)
    cpe = run.cycles / epochs
    label = f"engine b={bits} {levels}{' pipelined' if model_delay else ''}"
    return Row(label, run.train_loss[-1], engine_ms(cpe, ex.MEASURED_FMAX_MHZ), bits=bits, cycles_per_epoch=cpe,
               lines_per_cycle=run.lines_per_cycle, host_s=host_s, epochs=epochs)


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="gisette,mnist49",
                    help="comma-separated data sets: gisette (synthetic --rows x --features), mnist49, "
                         "synthetic:N:F or a LIBSVM path (default: %(default)s)")
    ap.add_argument("--rows", type=positive_int, default=6000, help="rows of the gisette-shaped set (default: %(default)s)")
    ap.add_argument("--features", type=positive_int, default=5000,
                    help="features of the gisette-shaped set, before the intercept column (default: %(default)s)")
    ap.add_argument("--bits", type=bits_list, default=list(range(1, 9)), help="comma-separated, 1..8 (default: 1..8)")
    ap.add_argument("--epochs", type=positive_int, default=5)
    ap.add_argument("--batch", type=positive_int, default=16)
    ap.add_argument("--levels", choices=("uniform", "optimal"), default="uniform")
    ap.add_argument("--repeats", type=positive_int, default=3, help="CPU runs per contestant; the best is kept")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-engine", action="store_true", help="CPU contestants only (no simulator)")
    ap.add_argument("--pipelined", action="store_true",
                    help="the engine runs pipelined SGD (MODEL_DELAY 1: residuals against the model one minibatch "
                         "old; the CPU contestants stay exact SGD)")
    ap.add_argument("--engine", choices=("woven", "planes"), default="woven",
                    help="simulated engine (lowbit.driver.sim_engines; planes for --levels optimal)")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    specs = [f"synthetic:{args.rows}:{args.features}" if d.strip() == "gisette" else d.strip()
             for d in args.data.split(",") if d.strip()]
    print(f"machine: {machine_line()}")
    print(f"scikit-learn differs from the engine's SGD in: {SKLEARN_DIFFERENCES}")
    print(f"engine: cycles of the simulated AFU at {ex.MEASURED_FMAX_MHZ:g} MHz (lowbit.experiment.MEASURED_FMAX_MHZ, "
          f"the fmax make bitstream measured); {ex.ASSUMED_HARP_FMAX_MHZ:g} MHz columns are an assumption "
          f"(the HARP clock of ZipML's FPGA), not a measurement\n")
    device = None
    if not args.no_engine:
        from lowbit.driver import open_device

        print("starting the simulated engine (first run: export + Verilator build, minutes)...", file=sys.stderr,
              flush=True)
        from lowbit.driver.sim_engines import SIM_ENGINES

        device = open_device("sim", **SIM_ENGINES[args.engine])
    try:
        for spec in specs:
            p = ex.prepare(spec, seed=args.seed, max_features=device.caps["MAX_FEATURES"] if device else None)
            step = auto_step(p.X, args.batch)
            print(f"{p.name}: {p.rows} x {p.features} ...", file=sys.stderr, flush=True)
            rows = cpu_rows(p, step=step, batch=args.batch, epochs=args.epochs, repeats=args.repeats)
            if device is not None:
                # The quantizer's compiled kernels loaded once, first (compiled on a machine's first
                # run): each row's host time is its own quantize + pack, not a share of loading.
                ex.warm_quantizer(p, levels=args.levels, line_bits=device.caps["LINE_BITS"],
                                  max_features=device.caps["MAX_FEATURES"], layout=engine_layout(device.caps))
                rows += [engine_row(p, device, bits=b, levels=args.levels, step=step, batch=args.batch,
                                    epochs=args.epochs, seed=args.seed, model_delay=int(args.pipelined))
                         for b in args.bits]
            title = (f"{p.name}: {p.rows} x {p.features} (with the intercept column), batch {args.batch}, "
                     f"step {step:.3g}, {args.epochs} epochs, {args.levels} levels, "
                     f"CPU best of {args.repeats}")
            print(render(title, rows), flush=True)
    finally:
        if device is not None:
            device.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
