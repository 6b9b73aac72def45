"""Engine throughput: data lines per cycle at b = 1..8 under a random-latency, out-of-order host.

Builds the real AFU (default: the full CCI-P configuration, 512-bit lines, 32 lanes, 8192
features) with Verilator, runs ``lowbit_sim.test_afu_full.throughput_at_every_b`` under cocotb (host
memory answering after a random 100..400 cycles per line, out of order, no almost-full storms;
every run also checked bit for bit against the golden model), and prints, per b, the data lines of
one epoch, the cycles of a steady-state epoch, lines per cycle, and the requirement
0.95 x min(1, lanes (b+1) / W).

    .venv/bin/python bench/throughput.py                 # F = 784, N = 256, full-batch, b = 1..8
    .venv/bin/python bench/throughput.py --rows 128 --batch 16 --bits 1,4,8
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--line-bits", type=int, default=512)
    ap.add_argument("--lanes", type=int, default=32)
    ap.add_argument("--max-features", type=int, default=8192)
    ap.add_argument("--rows", type=int, default=256, help="rows N (F is 784)")
    ap.add_argument("--batch", type=int, default=0, help="minibatch (default: all rows)")
    ap.add_argument("--bits", default="1,2,3,4,5,6,7,8", help="comma-separated b values")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="also write the measurements here")
    args = ap.parse_args(argv)

    from lowbit_hw.export import export_verilog
    from lowbit_sim.afu_tb import run_cocotb_module

    cfg = dict(line_bits=args.line_bits, lanes=args.lanes, max_features=args.max_features)
    build = ROOT / "build" / "cocotb" / f"w{args.line_bits}_l{args.lanes}_f{args.max_features}"
    t0 = time.monotonic()
    verilog = export_verilog(build / "src", **cfg)
    out = args.json or build / "throughput.json"
    out.unlink(missing_ok=True)
    env = {"LOWBIT_THROUGHPUT_JSON": str(out.resolve()), "LOWBIT_TP_ROWS": str(args.rows),
           "LOWBIT_TP_BATCH": str(args.batch), "LOWBIT_TP_BITS": args.bits, "LOWBIT_SEED0": str(args.seed)}
    total, failed = run_cocotb_module(verilog, "lowbit_sim.test_afu_full", build, name="throughput",
                                      extra_env=env, testcase="throughput_at_every_b")
    wall = time.monotonic() - t0
    if not out.exists():
        print(f"no measurements: the bench failed before writing them (log: {build}/run_throughput)", file=sys.stderr)
        return 1
    rows = json.loads(out.read_text())
    r0 = rows[0]
    print(f"lowbit throughput: W={r0['line_bits']} lanes={r0['lanes']} F={r0['features']} N={r0['rows']} "
          f"batch={r0['batch']}, host latency 100..400 cycles out of order; epoch records "
          f"{'cumulative' if r0['records_cumulative'] else 'per epoch'}")
    print(f"{'b':>2} {'lines/epoch':>11} {'cycles/epoch':>12} {'lines/cycle':>11} {'target':>7} {'whole run':>9} "
          f"{'stall cyc':>9} {'max in flight':>13}  ok")
    for r in rows:
        ok = r["lines_per_cycle"] >= r["target"]
        print(f"{r['bits']:>2} {r['lines_per_epoch']:>11} {r['epoch_cycles'][-1]:>12} {r['lines_per_cycle']:>11.4f} "
              f"{r['target']:>7.4f} {r['run_lines_per_cycle']:>9.4f} {r['stall_cycles']:>9} "
              f"{r['max_lines_in_flight']:>13}  {'yes' if ok else 'NO'}")
    print(f"({wall:.0f} s wall including the Verilator build; bit-exact vs golden: "
          f"{'yes' if not failed else 'NO: ' + ', '.join(failed)})")
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
