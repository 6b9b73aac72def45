"""The woven core's rate for each LOSS against least squares at the same b (issue 13).

Runs ``lowbit_hw.woven.WovenCore`` with 512-bit lines (16 rows per line, as the simulated engine)
in Amaranth's simulator with an ideal shell (no memory latency, no back-pressure), on F features,
N rows, one epoch, minibatches of B rows, for LOSS squared, logistic and hinge (naive estimator) at
each b. Every run is checked bit for bit against the golden model first. Prints the epoch's data
lines, the run's cycles, lines per cycle, and cycles relative to squared loss at the same b; the
non-linear losses read the same lines (the naive estimator reads one copy, as least squares), so
any difference is the row unit's longer latency, paid where the dot unit waits for the gradient
unit: at each minibatch boundary, and every second group within a minibatch (docs/architecture.md).

    .venv/bin/python bench/woven_loss_rate.py                     # F = 784, N = 128, B = 16, b = 2, 4, 8
    .venv/bin/python bench/woven_loss_rate.py --batch 128         # one minibatch per epoch
    .venv/bin/python bench/woven_loss_rate.py --l2 0.01 --bits 1 2 3 4 8   # each loss also with L2

With ``--l2 LAMBDA`` each loss runs a second time with the L2 register at LAMBDA (2^-32 units),
and ``vs L2 = 0`` is its cycles relative to the same loss without L2.

With ``--degree D ...`` logistic and hinge also run the Chebyshev estimator of each degree D (on
D + 1 copies): each row reads D + 1 copies, so an epoch streams (D + 1) times the lines, and
``rate vs squared`` compares lines per cycle with least squares at the same b (1.0: the extra
samples cost only the lines they add).

    .venv/bin/python bench/woven_loss_rate.py --degree 1 3 8 --bits 1 2 4 8
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from core_models import make_problem  # noqa: E402
from test_core_train import check_against_golden  # noqa: E402
from test_woven_core import run_woven  # noqa: E402

from lowbit.contract.registers import Loss  # noqa: E402

IDEAL = dict(p_line=1, p_cmd=1, p_write=1, write_latency=(1, 2))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--features", type=int, default=784)
    ap.add_argument("--rows", type=int, default=128)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--bits", type=int, nargs="+", default=[2, 4, 8])
    ap.add_argument("--l2", type=float, default=0.0, help="also run each loss with this L2 (lambda per row)")
    ap.add_argument("--degree", type=int, nargs="*", default=[],
                    help="also run logistic and hinge with the Chebyshev estimator of these degrees")
    args = ap.parse_args(argv)
    l2s = [0] + ([round(args.l2 * 2**32)] if args.l2 else [])
    core_kw = dict(line_bits=512, max_features=1024)
    print(f"F = {args.features}, N = {args.rows}, B = {args.batch}, 512-bit lines (16 rows per line), one epoch, "
          f"ideal shell")
    print(f"{'b':>2} {'loss':>9} {'est.':>5} {'L2':>6} {'lines':>6} {'cycles':>7} {'lines/cycle':>11} "
          f"{'vs squared':>10} {'vs L2 = 0':>9} {'rate vs squared':>15}")
    for bits in args.bits:
        base = base_rate = None
        runs = [(loss, 0) for loss in Loss] + [(loss, d) for d in args.degree for loss in (Loss.LOGISTIC, Loss.HINGE)]
        for loss, degree in runs:
            plain = None
            for l2 in l2s:
                t0 = time.monotonic()
                p = make_problem(rows=args.rows, features=args.features, bits=bits, batch=args.batch, epochs=1,
                                 line_bits=512, layout="woven", loss=loss, step=0.01, seed=bits, l2=l2,
                                 copies=degree + 1, degree=degree, margin_range=4)
                out = run_woven(p, core_kw=core_kw, shell_kw=IDEAL, max_cycles=400_000)
                check_against_golden(p, *out)
                lines = p.cfg.factors() * p.fmt.lines_per_copy(p.cfg.rows)  # data lines of the epoch
                cycles = int(out[4]["cycles"])  # the status record: the whole run, start to the last record
                base = base or cycles
                base_rate = base_rate or lines / cycles
                plain = plain or cycles
                est = f"cheb{degree}" if degree else "naive"
                print(f"{bits:>2} {loss.name.lower():>9} {est:>5} {l2 / 2**32:>6.3g} {lines:>6} {cycles:>7} "
                      f"{lines / cycles:>11.3f} {cycles / base:>10.3f} {cycles / plain:>9.3f} "
                      f"{lines / cycles / base_rate:>15.3f}   ({time.monotonic() - t0:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
