"""``python -m lowbit_hw.board.arrivals REPORT.json``: every endpoint that nextpnr's routed timing
analysis says arrives later than the clock period, grouped into families, most first.

nextpnr prints one critical path per clock: the worst of ~20 000 late endpoints on the woven
board (docs/board.md, thirteenth pass), so fixing it moves the figure only to the next one of a
different family. With ``--detailed-timing-report`` its ``--report`` JSON lists, for every net,
each endpoint's arrival time (``delay``: the [min, max] time from the launching clock edge at
which the signal reaches that cell input, routing included; nextpnr's
``build_detailed_net_timing_report`` copies the endpoint's arrival). An endpoint whose latest
arrival is past the period (less its setup, a few tenths of a ns, ignored here) fails at that
clock. This groups them by cell name with its numbers folded (``g_mem.#.#$DPRAM_COMB#``: the
LUT RAMs of G) and the input port (``DI`` data, ``CE`` enable, ``LSR`` reset, ``WAD`` a LUT
RAM's write address), so a family is one kind of path to cut, counted and ranked.

``make bitstream`` asks nextpnr for the detailed report and puts the families of the bitstream's
seed in its report (``lowbit_hw.board.build``).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from pathlib import Path

__all__ = ["family", "late_families", "main"]

_NUMBERS = re.compile(r"\d+")


def family(cell: str, port: str, strip: str = "design.afu.core.") -> str:
    """An endpoint's family: its cell name without the common prefix, numbers folded to ``#``,
    and its port (``gradient.g_mem.#.#$DPRAM_COMB#.WAD#``)."""
    if cell.startswith(strip):
        cell = cell[len(strip):]
    return f"{_NUMBERS.sub('#', cell)}.{_NUMBERS.sub('#', port)}"


def late_families(report: dict, period_ns: float) -> list[dict]:
    """The families of endpoints arriving after ``period_ns``, most endpoints first: each a dict
    of ``family``, ``endpoints`` (how many are late), ``worst_ns`` (the latest arrival) and
    ``example`` (that endpoint's cell and port). ValueError if the report has no detailed net
    timings (nextpnr was run without ``--detailed-timing-report``)."""
    if period_ns <= 0:
        raise ValueError(f"the period must be positive, got {period_ns!r} ns")
    nets = report.get("detailed_net_timings")
    if nets is None:
        raise ValueError("the report has no detailed_net_timings: run nextpnr with --report and --detailed-timing-report")
    groups: dict[str, dict] = defaultdict(lambda: {"endpoints": 0, "worst_ns": 0.0, "example": ""})
    for net in nets:
        for ep in net.get("endpoints", []):
            late = max(ep["delay"]) if isinstance(ep["delay"], list) else float(ep["delay"])
            if late <= period_ns:
                continue
            g = groups[family(ep["cell"], ep["port"])]
            g["endpoints"] += 1
            if late > g["worst_ns"]:
                g["worst_ns"], g["example"] = late, f"{ep['cell']}.{ep['port']}"
    out = [{"family": k, **v, "worst_ns": round(v["worst_ns"], 2)} for k, v in groups.items()]
    return sorted(out, key=lambda g: (-g["endpoints"], -g["worst_ns"], g["family"]))


def summary_lines(report: dict, period_ns: float, top: int = 12) -> list[str]:
    """Text lines: the total late endpoints at ``period_ns`` and the ``top`` largest families."""
    fams = late_families(report, period_ns)
    total = sum(f["endpoints"] for f in fams)
    lines = [f"{total} endpoints arrive after {period_ns:.2f} ns ({1000 / period_ns:.1f} MHz), "
             f"in {len(fams)} families; the largest:"]
    lines += [f"  {f['endpoints']:6d}  latest {f['worst_ns']:6.2f} ns  {f['family']}" for f in fams[:top]]
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lowbit_hw.board.arrivals", description=__doc__.split("\n\n")[0])
    ap.add_argument("report", type=Path, help="nextpnr --report JSON written with --detailed-timing-report")
    ap.add_argument("--mhz", type=float, default=125.0, help="the clock whose period is the limit (default 125)")
    ap.add_argument("-n", type=int, default=30, help="families shown (default 30)")
    args = ap.parse_args(argv)
    if args.mhz <= 0:
        ap.error(f"--mhz must be positive, got {args.mhz}")
    try:
        report = json.loads(args.report.read_text())
        lines = summary_lines(report, 1000.0 / args.mhz, args.n)
    except (OSError, ValueError) as exc:   # (json.JSONDecodeError is a ValueError)
        print(f"error: {args.report}: {exc}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
