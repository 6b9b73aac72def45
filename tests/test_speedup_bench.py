"""bench/speedup.py's pure parts: engine time from cycles, speedups, the target verdicts, the table;
bench/compare.py on the golden model.

The simulated-engine part is exercised by running the bench (docs/speedup.md); these tests need
no simulator.
"""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from lowbit.experiment import ASSUMED_HARP_FMAX_MHZ, MEASURED_FMAX_MHZ

_spec = importlib.util.spec_from_file_location("speedup_bench", Path(__file__).resolve().parents[1] / "bench" / "speedup.py")
bench = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = bench  # dataclasses look their module up there
_spec.loader.exec_module(bench)
Row = bench.Row


def engine(bits, cycles_per_epoch, *, host_s=0.5, epochs=5, loss=0.011):
    return Row(f"engine b={bits} uniform", loss, bench.engine_ms(cycles_per_epoch, MEASURED_FMAX_MHZ), bits=bits,
               cycles_per_epoch=cycles_per_epoch, lines_per_cycle=0.5, host_s=host_s, epochs=epochs)


def cpu_rows(ms=10.0):
    return [Row("NumPy float32", 0.010, ms), Row("scikit-learn SGDRegressor", 0.012, 3 * ms)]


def test_engine_time_is_cycles_at_the_clock():
    assert bench.engine_ms(57_400, 57.4) == pytest.approx(1.0)
    assert bench.engine_ms(200_000, 200.0) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="fmax must be positive"):
        bench.engine_ms(1, 0.0)


def test_engine_rows_are_at_the_measured_clock_with_the_assumed_one_beside():
    r = engine(2, 574_000)
    assert r.ms_per_epoch == pytest.approx(574_000 / (MEASURED_FMAX_MHZ * 1e3))
    assert r.ms_per_epoch_assumed == pytest.approx(574_000 / (ASSUMED_HARP_FMAX_MHZ * 1e3))
    assert r.host_ms_per_epoch == pytest.approx(100.0)  # 0.5 s over 5 epochs
    assert cpu_rows()[0].ms_per_epoch_assumed is None and cpu_rows()[0].host_ms_per_epoch is None


def test_verdicts_compare_engine_per_epoch_with_numpy_float32():
    ref_ms = 10.0
    fast2 = engine(2, cycles_per_epoch=ref_ms / 7 * MEASURED_FMAX_MHZ * 1e3)  # 7x: holds
    slow4 = engine(4, cycles_per_epoch=ref_ms / 3 * MEASURED_FMAX_MHZ * 1e3)  # 3x: misses 4x
    v = {bits: rest for bits, *rest in bench.verdicts(cpu_rows(ref_ms) + [fast2, slow4])}
    target, s, s_assumed, holds = v[2]
    assert (target, holds) == (6.5, True) and s == pytest.approx(7.0)
    assert s_assumed == pytest.approx(7.0 * ASSUMED_HARP_FMAX_MHZ / MEASURED_FMAX_MHZ)
    target, s, _, holds = v[4]
    assert (target, holds) == (4.0, False) and s == pytest.approx(3.0)


def test_the_clock_a_target_needs_is_cycles_times_target_over_the_cpu_time():
    # 200k cycles an epoch, 6.5x faster than 10 ms: 1.538 ms, so 130 MHz
    assert bench.clock_needed_mhz(200_000, 10.0, 6.5) == pytest.approx(130.0)
    assert bench.speedup(10.0, bench.engine_ms(200_000, 130.0)) == pytest.approx(6.5)
    with pytest.raises(ValueError, match="reference time must be positive"):
        bench.clock_needed_mhz(1, 0.0, 6.5)


def test_a_precision_not_run_does_not_pass_its_target():
    assert bench.verdicts(cpu_rows() + [engine(8, 1000)]) == [(2, 6.5, None, None, False), (4, 4.0, None, None, False)]


def test_table_shows_host_time_and_labels_both_clocks():
    rows = cpu_rows(10.0) + [engine(2, 1_000_000, host_s=2.0, epochs=4), engine(4, 100_000)]
    text = bench.render("synthetic:60:5", rows)
    header = next(line for line in text.splitlines() if line.startswith("| contestant"))
    assert f"engine at {MEASURED_FMAX_MHZ:g} MHz, measured fmax" in header
    assert f"at {ASSUMED_HARP_FMAX_MHZ:g} MHz (assumed clock)" in header
    assert "host quantize+pack s" in header and "host ms/epoch (amortised)" in header
    b2 = next(line for line in text.splitlines() if line.startswith("| engine b=2")).split(" | ")
    ms = 1e3 * 1_000_000 / (MEASURED_FMAX_MHZ * 1e6)
    assert b2[1] == f"{ms:.3f}" and b2[2] == f"{10.0 / ms:.3g}x"
    assert b2[3] == "2.000" and b2[4] == "500.000"  # 2 s of host work over 4 epochs
    assert b2[5] == f"{10.0 / (ms + 500.0):.3g}x"
    assert "target b = 2 >= 6.5x NumPy float32 per epoch" in text and "**NOT MET**" in text
    # b = 4: 100k cycles at the measured clock is ~1.7 ms, over 4x faster than 10 ms
    assert 10.0 / bench.engine_ms(100_000, MEASURED_FMAX_MHZ) >= 4.0
    assert "target b = 4" in text and "**holds**" in text
    need2 = bench.clock_needed_mhz(1_000_000, 10.0, 6.5)  # 650 MHz
    assert f"needs the engine at >= {need2:.0f} MHz" in text


def test_loss_is_the_float64_mean_squared_residual():
    X = np.array([[1.0, 0.0], [0.0, 2.0]], dtype=np.float32)
    assert bench.mse(X, np.array([1.0, 1.0]), np.array([1.0, 1.0], dtype=np.float32)) == pytest.approx(0.5)


def test_compare_bench_runs_on_the_golden_model(capsys, tmp_path):
    """bench/compare.py end to end with the golden backend (no simulator): the CPU rows, one engine
    row per b with its bytes per epoch and its host quantize + pack time (also per epoch), losses
    near the CPU's, and the plot written."""
    spec = importlib.util.spec_from_file_location("compare_bench", Path(__file__).resolve().parents[1] / "bench" / "compare.py")
    compare = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(compare)
    plot = tmp_path / "c.png"
    assert compare.main(["--backend", "golden", "--data", "synthetic:300:20", "--epochs", "2", "--bits", "2,8",
                         "--repeats", "1", "--plot", str(plot)]) == 0
    rows = {line.split()[0] + " " + line.split()[1]: line.split() for line in capsys.readouterr().out.splitlines()
            if line.startswith(("CPU float", "engine b="))}
    assert set(rows) == {"CPU float32", "CPU float64", "engine b=2", "engine b=8"}
    cpu_loss = float(rows["CPU float64"][2])
    for b in (2, 8):
        row = rows[f"engine b={b}"]
        assert row[3] == "-" and float(row[5]) > 0            # golden: no clock, so no time; bytes per epoch
        assert float(row[6]) > 0 and float(row[7]) == pytest.approx(1e3 * float(row[6]) / 2, abs=0.3)  # host time (s to 3 places)
        assert abs(float(row[2]) / cpu_loss - 1) < 0.1
    assert rows["CPU float32"][6:] == ["-", "-"]
    assert float(rows["engine b=2"][5]) < float(rows["engine b=8"][5]) < float(rows["CPU float32"][5])
    assert plot.stat().st_size > 0
