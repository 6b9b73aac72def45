"""``lowbit train --engines K``: launch the workers (or be one, under torchrun) and report.

The same command is the launcher and the worker: with RANK and WORLD_SIZE in the environment (set
by :func:`lowbit.scaleout.launch`, or by ``torchrun``) it is worker RANK of the run; otherwise it
starts K workers on this machine and prints rank 0's report.
"""

from __future__ import annotations

import json
import os
import sys
import time

from .outputs import PLOT_SUFFIXES, output_path, strict_json
from .experiment import describe_clock
from .scaleout import ENV_RESULT, EXIT_PEER_LOST, PeerLost, Plan, ScaleoutRun, launch, worker_main


def _engine(args) -> str:
    return "planes" if args.levels == "optimal" else "woven" if args.engine == "auto" else args.engine


def _refuse(args) -> None:
    """Everything ``--engines`` cannot do yet, refused before any work."""
    from .contract.registers import Built
    from .driver.sim_engines import SIM_BUILT
    from .driver.train import RESUME_UNSUPPORTED

    if args.backend == "serial":
        raise ValueError(f"--engines {args.engines} needs an engine per worker: one serial board cannot serve "
                         f"them; use --backend sim or golden")
    if args.backend == "sim" and not SIM_BUILT[_engine(args)] & Built.RESUME:
        raise ValueError(f"--engines {args.engines}: " + RESUME_UNSUPPORTED.format(backend=args.backend))
    if args.backend == "sim" and getattr(args, "socket", None):
        raise ValueError("--engines starts a simulator per worker: --socket attaches to one")
    if args.backend == "float":
        raise ValueError("--engines runs quantized engines: use --backend golden (or sim)")
    if str(args.data).endswith(".npz"):
        raise ValueError("--engines quantizes each worker's own shard: give a data set (synthetic, mnist49, "
                         "a LIBSVM file), not a quantized .npz")
    if getattr(args, "loss", "squared") != "squared" or getattr(args, "l2", 0):
        raise ValueError("--engines trains least squares without --l2 for now (the workers average "
                         "double-sampled least-squares engines)")
    if args.save_model is not None:
        raise ValueError("--save-model is not available with --engines yet (the report has the final model in --json)")


def _plans(args) -> list[Plan]:
    return [Plan(data=str(args.data), bits=b, engines=args.engines, sync_every=args.sync_every, exchange=args.exchange,
                 levels=args.levels, epochs=args.epochs, batch=args.batch, step=args.step, copies=args.copies,
                 seed=args.seed, engine=_engine(args), fmax_mhz=args.fmax, link_gbps=args.link_gbps,
                 step_scaling=args.step_scaling, backend=args.backend)
            for b in args.bits]


def _worker_argv(plan: Plan) -> list[str]:
    argv = ["train", "--data", plan.data, "--bits", str(plan.bits), "--levels", plan.levels, "--epochs",
            str(plan.epochs), "--batch", str(plan.batch), "--step", str(plan.step), "--seed", str(plan.seed),
            "--engines", str(plan.engines), "--sync-every", str(plan.sync_every), "--exchange", plan.exchange,
            "--link-gbps", repr(plan.link_gbps), "--fmax", repr(plan.fmax_mhz), "--backend", plan.backend, "--json",
            "--step-scaling", plan.step_scaling]
    if plan.copies:
        argv += ["--copies", str(plan.copies)]
    if plan.levels != "optimal":
        argv += ["--engine", plan.engine]
    return argv


def _prepare_args(plan: Plan) -> dict:
    from .driver.sim_engines import SIM_ENGINES

    return {"max_features": SIM_ENGINES[plan.engine]["max_features"]}


def train_engines(args) -> int:
    _refuse(args)
    plot = output_path(args.plot, "--plot", ".png", PLOT_SUFFIXES) if args.plot else None
    plans = _plans(args)
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        code = _be_worker(args, plans, plot)
        # Leave without interpreter finalization: gloo's threads may still hold Python callbacks
        # then (see lowbit.qsgd.ddp.end_worker); everything is flushed and the group is destroyed.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    runs, info = [], None
    for plan in plans:
        t0 = time.perf_counter()
        if not args.json:
            print(f"b={plan.bits}: {plan.engines} engine worker(s), exchange {plan.exchange}, averaging every "
                  f"{plan.sync_every} minibatches", file=sys.stderr, flush=True)
        run, info = launch(_worker_argv(plan), plan.engines)
        run.wall_s = time.perf_counter() - t0
        runs.append(run)
    report(runs, info, plot, as_json=args.json)
    return 0


def _be_worker(args, plans: list[Plan], plot) -> int:
    """One worker (rank from the environment). Rank 0 reports unless the launcher collects it."""
    rank = int(os.environ["RANK"])
    try:
        runs = []
        for plan in plans:
            t0 = time.perf_counter()
            run = worker_main(plan, _prepare_args(plan))
            if run is not None:
                run.wall_s = time.perf_counter() - t0
                runs.append(run)
    except (ValueError, OSError):
        raise  # a bad option or path: the CLI's own one-line error, exit 2
    except Exception as exc:  # its engine failed, a peer died (gloo), a timeout: one line naming this worker
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"lowbit: worker {rank}: {type(exc).__name__}: {first}", file=sys.stderr, flush=True)
        return EXIT_PEER_LOST if isinstance(exc, PeerLost) else 1
    if rank == 0 and not os.environ.get(ENV_RESULT):  # under torchrun: rank 0 prints the report
        from .experiment import prepare

        p = prepare(plans[0].data, seed=plans[0].seed, **_prepare_args(plans[0]))
        report(runs, {"name": p.name, "rows": p.rows, "features": p.features}, plot, as_json=args.json)
    return 0


# ---------------------------------------------------------------------------------- the report
def report(runs: list[ScaleoutRun], info: dict, plot, *, as_json: bool, out=None) -> None:
    out = sys.stdout if out is None else out
    if plot:
        from .plots import plot_runs

        plot_runs(runs, plot, title=f"{info['name']}: {info['rows']} x {info['features']}, "
                                    f"{', '.join(r.label for r in runs)}")
    if as_json:
        summary, replaced = strict_json({**info, "data": info["name"], "runs": [r.to_json() for r in runs],
                                         "plot": str(plot) if plot else None})
        summary["nonfinite_as_null"] = replaced
        print(json.dumps(summary, allow_nan=False), file=out)
        return
    print(table(runs, info), file=out)
    if plot:
        print(f"plot written to {plot}", file=out)


def table(runs: list[ScaleoutRun], info: dict) -> str:
    """The scaling table: one row per run."""
    header = ["run", "K", "T", "exchange", "engine step", "final loss", "metric", "bytes/worker/epoch", "cycles/worker/epoch*",
              "modelled epoch ms", "exchange wall ms/epoch", "wall s"]
    rows = []
    for r in runs:
        rows.append([
            r.label, str(r.engines), str(r.sync_every), r.exchange, f"{r.engine_step:.3g}", f"{r.train_loss[-1]:.6f}",
            f"{r.metric_name}={r.test_metric:.4f}" if r.test_metric is not None else "-",
            f"{max(r.exchange_bytes) / r.epochs:,.0f}", f"{max(r.engine_cycles) / r.epochs:,.0f}",
            f"{r.modelled_epoch_s * 1e3:.3f}", f"{max(r.exchange_wall_s) / r.epochs * 1e3:.2f}", f"{r.wall_s:.1f}",
        ])
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    lines = [f"\n{info['name']}: {info['rows']} rows x {info['features']} features, {runs[0].backend} engines",
             "  ".join(h.ljust(widths[i]) for i, h in enumerate(header))]
    lines += ["  ".join(c.ljust(widths[i]) for i, c in enumerate(row)) for row in rows]
    r = runs[0]
    how = ("MEASURED (each bounded run's CYCLES on the simulated engine)" if r.backend == "sim" else
           "MODELLED (lowbit.scaleout.round_cycles per bounded run, calibrated against the sim's measured "
           "rounds; the golden model has no clock)")
    lines.append(f"\n* engine cycles are {how}. modelled epoch = per round, the slowest engine at {describe_clock(r.fmax_mhz)}, plus "
                 f"the largest exchange at {r.link_gbps:g} Gb/s; exchange wall time is measured on this machine.")
    return "\n".join(lines)
