"""Issue 15, memory proportional to the data: the peak RSS of ``lowbit train --backend golden`` and
``lowbit quantize`` stays within the float32 input + the packed copies + 256 MB.

Each command runs in a child process at 20000 x 2000 (160 MB of float32), measured as
``bench/host_speed.py --rss`` measures it (``ru_maxrss`` through a bare-interpreter parent, as
``/usr/bin/time -v``). Two copies (``--epochs 2``) keep it to a few seconds a command. Before the
float32 pipeline (f7523c8), ``train`` and ``quantize`` of ``synthetic:20000:2000`` peaked at 855 MB against this bound of
466 MB, and ``quantize X.npy`` at 486 MB.
"""

import importlib.util
import sys
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("host_speed_bench",
                                               Path(__file__).resolve().parents[1] / "bench" / "host_speed.py")
bench = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = bench
_spec.loader.exec_module(bench)

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ru_maxrss is in KiB on Linux only")

ROWS, FEATURES, BITS, COPIES = 20000, 2000, 4, 2


def peak(argv) -> int:
    rss, _, _ = bench.child_peak_rss([sys.executable, "-m", "lowbit.cli", *argv])
    return rss


@pytest.fixture(scope="module")
def bound():
    total, data, packed = bench.rss_bound(ROWS, FEATURES, bits=BITS, copies=COPIES)
    assert data == 160e6 and 50e6 < packed < 51e6
    return total


def check(rss, bound, what):
    assert rss <= bound, (f"{what}: peak RSS {rss / 1e6:.0f} MB exceeds float32 input + packed copies + 256 MB "
                          f"= {bound / 1e6:.0f} MB")


def test_train_synthetic_golden_with_the_float_baseline(bound):
    synth = f"synthetic:{ROWS}:{FEATURES}"
    check(peak(["train", "--data", synth, "--bits", str(BITS), "--epochs", str(COPIES), "--backend", "golden"]),
          bound, f"lowbit train --data {synth}")


def test_quantize_synthetic(bound, tmp_path):
    synth = f"synthetic:{ROWS}:{FEATURES}"
    check(peak(["quantize", synth, "--bits", str(BITS), "--copies", str(COPIES), "-o", str(tmp_path / "q.npz")]),
          bound, f"lowbit quantize {synth}")


def test_quantize_npy_and_train_from_its_file(bound, tmp_path):
    X, y = bench.write_npy(tmp_path, ROWS, FEATURES)
    out = tmp_path / "q.npz"
    check(peak(["quantize", str(X), "--labels", str(y), "--bits", str(BITS), "--copies", str(COPIES), "-o", str(out)]),
          bound, "lowbit quantize X.npy")
    check(peak(["train", "--data", str(out), "--step", "1e-4", "--epochs", str(COPIES), "--backend", "golden"]),
          bound, "lowbit train --data q.npz")
