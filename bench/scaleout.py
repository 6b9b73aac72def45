"""Several engines on one model: the scaling table and plot of issue 14 (``make scaleout-demo``).

For each data set, runs launched as ``lowbit train --engines K`` does (:func:`lowbit.scaleout.launch`:
K gloo worker processes on this machine), on golden or simulated engines (``--backend``):

* K = 1, 2, 4, 8 with the fp32 exchange, and K = 4 with qsgd8 and qsgd4;
* the same epochs, batch, bits, seed and base step everywhere (each engine's step is scaled by
  ``--step-scaling``, default linear: K x step, capped at the stability bound).

Columns: final training loss (float64 MSE on the normalised data), its change against K = 1,
test metric, bytes each worker sent per epoch (the largest worker) and fp32's multiple of it,
engine cycles per worker and epoch and whether they are MEASURED or MODELLED, the epoch time (per
round, the slowest engine's cycles at the measured fmax plus the largest exchange's bytes at
``--link-gbps``) and its speedup against K = 1, the exchange's wall time measured here, and the
run's wall time here (2 shared cores: K workers share them).

``--backend sim``: every worker runs every bounded round (warm start from the shared model, at most
T minibatches) on its own Verilated woven engine, and the cycles are the CYCLES each round
measured (its status record): the epoch time is then measured cycles at the measured clock.
``--backend golden``: golden engines, whose cycles are MODELLED per round by
``lowbit.scaleout.round_cycles``, a model calibrated against rounds measured on the sim
(``bench/round_cycles.py``; tested within 10 %). One backend for every data set, or one per
``--data`` entry (``--backend golden,sim``). Default: sim (MNIST 4-vs-9 and the gisette-shaped
set both run in ~7 min here).

``--sim-check`` also measures, on the Verilated woven engine, the cycles of one plain epoch over
the whole set and over each K's largest shard.

    python bench/scaleout.py --data gisette,mnist49 --backend golden,sim   # make scaleout-demo
    python bench/scaleout.py --data mnist49 --engines 1,2 --epochs 2 --backend sim   # a quick check

Writes ``--out``/scaleout.json, .md and .png, and says which of the issue's targets hold.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from lowbit import experiment as ex
from lowbit.cli import bits_list, positive_int
from lowbit.scaleout import launch, shard_bounds

TARGET_LOSS = 0.01        # K = 4 within 1 % of K = 1
TARGET_SPEEDUP = 3.2      # modelled epoch time at K = 4
TARGET_BYTES = 7.0        # qsgd4 against fp32
TARGET_QSGD_LOSS = 0.005  # qsgd4 within 0.5 % of fp32


def _spec(name: str) -> str:
    return "synthetic:6000:5000" if name == "gisette" else name


def run_one(args, spec: str, engines: int, exchange: str):
    argv = ["train", "--data", spec, "--bits", str(args.bits), "--epochs", str(args.epochs), "--batch",
            str(args.batch), "--seed", str(args.seed), "--copies", str(args.copies), "--engines", str(engines),
            "--sync-every", str(args.sync_every), "--exchange", exchange, "--link-gbps", repr(args.link_gbps),
            "--step-scaling", args.step_scaling, "--backend", args.backend, "--json"]
    t0 = time.perf_counter()
    run, info = launch(argv, engines, timeout_s=args.timeout)
    run.wall_s = time.perf_counter() - t0
    print(f"  K={engines} {exchange} ({args.backend}): loss {run.train_loss[-1]:.6f}, modelled epoch {run.modelled_epoch_s * 1e3:.3f} ms, "
          f"{run.wall_s:.1f} s", file=sys.stderr, flush=True)
    return run, info


def configurations(engines: list[int]) -> list[tuple[int, str]]:
    out = [(k, "fp32") for k in engines]
    if 4 in engines:
        out += [(4, "qsgd8"), (4, "qsgd4")]
    return out


def sim_cycles(args, spec: str, engines: list[int]) -> dict[int, int]:
    """Measured cycles of one plain epoch on the Verilated woven engine: the whole set and each K's
    largest shard (quantized as that worker quantizes it)."""
    from lowbit.driver import open_device
    from lowbit.driver.sim_engines import SIM_ENGINES
    from lowbit.driver.train import train
    from lowbit.scaleout import SEED_STRIDE

    p = ex.prepare(spec, seed=args.seed, max_features=SIM_ENGINES["woven"]["max_features"])
    out = {}
    with open_device("sim", **SIM_ENGINES["woven"]) as dev:
        for k in engines:
            b = shard_bounds(p.rows, k)
            sizes = np.diff(b)
            r = int(np.argmax(sizes))
            from lowbit.dataset import QuantizedDataset

            qds = QuantizedDataset.build(p.X[b[r]:b[r + 1]], p.y[b[r]:b[r + 1]], bits=args.bits, copies=1,
                                         seed=args.seed + SEED_STRIDE * r, progress=False)
            res = train(dev, qds, step=1e-4, batch=args.batch, epochs=1, progress=False)
            out[k] = int(res.cycles)
            print(f"  sim: K={k} shard of {sizes[r]} rows: {res.cycles:,} cycles per epoch", file=sys.stderr,
                  flush=True)
    return out


def table(name: str, runs: list, sim: dict[int, int] | None, fmax: float) -> str:
    base = next(r for r in runs if r.engines == 1)
    fp32 = {r.engines: r for r in runs if r.exchange == "fp32"}
    head = ["K", "exchange", "T", "engine step", "final loss", "vs K=1", "metric", "bytes/worker/epoch", "fp32 / this",
            "cycles/worker/epoch", "cycles are", "epoch ms at fmax", "speedup", "host quantize+pack s (slowest worker)",
            "exchange wall ms/epoch (measured)", "wall s"]
    if sim:
        head.insert(11, "sim cycles, one plain epoch of the largest shard (measured)")
    lines = [f"### {name}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in runs:
        ref = fp32.get(r.engines)
        nbytes = max(r.exchange_bytes) / r.epochs
        ratio = (max(ref.exchange_bytes) / max(1, max(r.exchange_bytes))) if ref and r.engines > 1 else None
        cells = [str(r.engines), r.exchange if r.engines > 1 else "-", str(r.sync_every), f"{r.engine_step:.3g}",
                 f"{r.train_loss[-1]:.6f}", f"{(r.train_loss[-1] / base.train_loss[-1] - 1) * 100:+.2f} %",
                 f"{r.test_metric:.4f}" if r.test_metric is not None else "-", f"{nbytes:,.0f}",
                 f"{ratio:.2f}" if ratio else "-", f"{max(r.engine_cycles) / r.epochs:,.0f}",
                 "measured (sim)" if r.backend == "sim" else "modelled (calibrated)",
                 f"{r.modelled_epoch_s * 1e3:.3f}", f"{base.modelled_epoch_s / r.modelled_epoch_s:.2f}x",
                 f"{r.host_s:.3f}", f"{max(r.exchange_wall_s) / r.epochs * 1e3:.1f}", f"{r.wall_s:.1f}"]
        if sim:
            cells.insert(11, f"{sim[r.engines]:,}" if r.engines in sim else "-")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    how = ("MEASURED cycles of each bounded round on its Verilated woven engine (sim backend)"
           if base.backend == "sim" else
           "MODELLED cycles (golden engines: lowbit.scaleout.round_cycles per bounded round, calibrated "
           "against the sim's measured rounds, not a measurement)")
    lines.append(f"Metric: {base.metric_name}. Epoch time = per round, the slowest engine's {how} at "
                 f"{ex.describe_clock(fmax)}, plus the largest exchange's bytes at {base.link_gbps:g} Gb/s.")
    return "\n".join(lines)


def targets(runs: list) -> list[str]:
    by = {(r.engines, r.exchange): r for r in runs}
    one, out = by.get((1, "fp32")), []
    four, q4 = by.get((4, "fp32")), by.get((4, "qsgd4"))
    # the loss and speed targets, for K = 4 with each exchange run (the issue names none for them;
    # its QSGD-coded exchange is qsgd4, fp32 is the uncoded baseline)
    for exchange in ("fp32", "qsgd8", "qsgd4"):
        k4 = by.get((4, exchange))
        if not (one and k4):
            continue
        d = abs(k4.train_loss[-1] / one.train_loss[-1] - 1)
        out.append(f"K=4 {exchange} final loss within 1 % of K=1: {d * 100:.2f} % -> "
                   f"{'HOLDS' if d <= TARGET_LOSS else 'FAILS'}")
        s = one.modelled_epoch_s / k4.modelled_epoch_s
        kind = "measured-cycle" if k4.backend == "sim" else "modelled-cycle"
        out.append(f"K=4 {exchange} {kind} epoch >= {TARGET_SPEEDUP}x shorter: {s:.2f}x -> "
                   f"{'HOLDS' if s >= TARGET_SPEEDUP else 'FAILS'}")
    if four and q4:
        ratio = max(four.exchange_bytes) / max(q4.exchange_bytes)
        d = abs(q4.train_loss[-1] / four.train_loss[-1] - 1)
        out.append(f"qsgd4 moves >= 7x fewer bytes than fp32: {ratio:.2f}x -> {'HOLDS' if ratio >= TARGET_BYTES else 'FAILS'}")
        out.append(f"qsgd4 final loss within 0.5 % of fp32: {d * 100:.3f} % -> "
                   f"{'HOLDS' if d <= TARGET_QSGD_LOSS else 'FAILS'}")
    return out


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    fig, axes = plt.subplots(2, len(names), figsize=(5.5 * len(names), 8), squeeze=False)
    for col, name in enumerate(names):
        runs = results[name]
        fp = [r for r in runs if r.exchange == "fp32"]
        ax = axes[0, col]
        ks = [r.engines for r in fp]
        ax.plot(ks, [fp[0].modelled_epoch_s / r.modelled_epoch_s for r in fp], "o-",
                label=f"epoch-time speedup (fp32, cycles {'measured' if fp[0].backend == 'sim' else 'modelled'})")
        ax.plot(ks, ks, ":", color="grey", label="linear")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("engines K")
        ax.set_ylabel("epoch time, K=1 / K")
        ax.set_title(name)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        ax = axes[1, col]
        for r in runs:
            ax.plot(range(1, len(r.train_loss) + 1), r.train_loss, marker="o", ms=2, label=r.label)
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel("training loss (MSE, normalised)")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3, which="both")
    fig.suptitle("lowbit scale-out: model averaging over gloo (epoch time at the measured fmax; see the table "
                 "for which cycles are measured)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="gisette,mnist49", help="comma-separated: gisette (synthetic 6000 x 5000), "
                                                              "mnist49, synthetic:N:F (default: %(default)s)")
    ap.add_argument("--engines", default="1,2,4,8", help="comma-separated K (default: %(default)s)")
    ap.add_argument("--bits", type=int, default=4)
    ap.add_argument("--epochs", type=positive_int, default=10)
    ap.add_argument("--batch", type=positive_int, default=16)
    ap.add_argument("--copies", type=positive_int, default=2)
    ap.add_argument("--sync-every", type=positive_int, default=32)
    ap.add_argument("--step-scaling", choices=("linear", "none"), default="linear")
    ap.add_argument("--link-gbps", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds per run (default: %(default)s)")
    ap.add_argument("--backend", default="sim", help="engines: golden (cycles modelled) or sim (every bounded "
                                                        "round on a Verilated woven engine, cycles measured); "
                                                        "comma-separated per --data entry (default: %(default)s)")
    ap.add_argument("--sim-check", action="store_true", help="measure plain-epoch cycles on the sim engine too")
    ap.add_argument("--out", type=Path, default=Path("out/scaleout"))
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    engines = [int(k) for k in args.engines.split(",")]
    results, text, summary = {}, [], {}
    names = [d.strip() for d in args.data.split(",") if d.strip()]
    backends = [b.strip() for b in args.backend.split(",")]
    if len(backends) == 1:
        backends *= len(names)
    if len(backends) != len(names) or not set(backends) <= {"golden", "sim"}:
        raise SystemExit("--backend: golden or sim, one for all --data entries or one per entry")
    for name, backend in zip(names, backends):
        args.backend = backend
        spec = _spec(name)
        print(f"{spec}: K = {engines}", file=sys.stderr, flush=True)
        runs, info = [], None
        for k, exch in configurations(engines):
            run, info = run_one(args, spec, k, exch)
            runs.append(run)
        sim = sim_cycles(args, spec, engines) if args.sim_check else None
        title = (f"{info['name']} ({info['rows']} x {info['features']} with the intercept), {backend} engines "
                 f"(cycles {'MEASURED' if backend == 'sim' else 'MODELLED'}), b={args.bits}, "
                 f"batch {args.batch}, {args.epochs} epochs, {args.copies} copies, T = {args.sync_every}")
        text.append(table(title, runs, sim, runs[0].fmax_mhz))
        text += ["", *[f"- {t}" for t in targets(runs)], ""]
        results[info["name"]] = runs
        summary[info["name"]] = {"backend": backend, "runs": [r.to_json() for r in runs], "sim_cycles": sim, "targets": targets(runs)}
    md = "\n".join(text)
    print(md)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scaleout.md").write_text(md + "\n")
    (args.out / "scaleout.json").write_text(json.dumps({"argv": sys.argv, **summary}, indent=1))
    plot(results, args.out / "scaleout.png")
    print(f"\nwritten: {args.out}/scaleout.md, .json, .png", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
