"""The woven core's fixed costs, in Amaranth's simulator with an ideal shell (no memory latency).

Runs ``lowbit_hw.woven.WovenCore`` (64-bit lines: two rows per line) on 32 rows, one epoch, with
one group per minibatch (batch 2) and with the whole epoch as one minibatch (batch 32), and prints
the cycles beyond the data lines: per run (batch 32: start-up, snapshot, records) and per
minibatch boundary (the difference, over the 15 extra boundaries of batch 2). Every run is checked
against the golden model bit for bit first.

    .venv/bin/python bench/woven_boundary.py
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from core_models import make_problem  # noqa: E402
from test_core_train import check_against_golden  # noqa: E402
from test_woven_core import run_woven  # noqa: E402

from lowbit.contract.quant import levels_to_fixed, uniform_levels  # noqa: E402

IDEAL = dict(p_line=1, p_cmd=1, p_write=1, write_latency=(1, 2))


def main() -> int:
    rows = 32
    print(f"{'F':>4} {'b':>2} {'lines':>6} {'cycles, batch 32':>16} {'cycles, batch 2':>15} {'per run':>8} "
          f"{'per boundary':>12}")
    for features in (64, 256):
        for bits in (1, 4):
            cycles = {}
            for batch in (2, rows):
                p = make_problem(rows=rows, features=features, bits=bits, batch=batch, epochs=1, line_bits=64,
                                 layout="woven", levels_q=levels_to_fixed(uniform_levels(bits)), seed=1)
                out = run_woven(p, core_kw=dict(line_bits=64, max_features=256), shell_kw=IDEAL)
                check_against_golden(p, *out)
                cycles[batch] = int(out[-1]["cycles"])
            lines = p.fmt.lines_per_copy(rows)
            run = cycles[rows] - lines
            boundary = (cycles[2] - cycles[rows]) / (rows // 2 - 1)
            print(f"{features:>4} {bits:>2} {lines:>6} {cycles[rows]:>16} {cycles[2]:>15} {run:>8} {boundary:>12.1f}",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
