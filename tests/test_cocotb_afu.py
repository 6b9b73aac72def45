"""The cocotb + Verilator system benches, run from pytest through cocotb_tools.runner.

* ``test_ccip_model_on_test_double``: the bench's host model against the DMA TEST DOUBLE
  (``tests/driver_fixtures.py``), seconds to build.
* ``test_afu_*``: the real ``lowbit_hw.afu.LowbitAFU``: a moderate build for the random seeds, MMIO
  and error paths, narrow lines, the bit-serial woven core (128-bit lines), and the full 512/32/8192
  build for the maximum-features and throughput cases.

Environment: ``LOWBIT_SEEDS`` (random seeds of the regular suite, default 50), ``LOWBIT_SEED0``
(first seed, default 0), ``WAVES=1`` (a VCD trace per bench: build/cocotb/<config>-waves/run_<bench>/dump.vcd).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from driver_fixtures import TEST_AFU, WOVEN_TEST_AFU


ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build" / "cocotb"
WAVES = os.environ.get("WAVES") == "1"
#: The moderate configuration of the regular random seeds: the driver tests' engine (TEST_AFU).
MODERATE = TEST_AFU
#: The full CCI-P configuration (maximum features, throughput).
FULL = dict(line_bits=512, lanes=32, max_features=8192)
#: Narrow lines (as behind the board's serial bridge): records span several lines.
NARROW = dict(line_bits=128, lanes=4, max_features=256)
#: The bit-serial woven core (4 rows per 128-bit line), with the read depth the simulator's woven
#: engine has per line width: the driver tests' woven engine (WOVEN_TEST_AFU).
WOVEN = WOVEN_TEST_AFU


def _config_name(cfg: dict) -> str:
    core = "" if cfg.get("core", "planes") == "planes" else f"_{cfg['core']}"
    return f"w{cfg['line_bits']}_l{cfg['lanes']}_f{cfg['max_features']}{core}"


def _run_bench(name: str, verilog: Path, module: str, build_dir: Path, extra_env: dict | None = None) -> None:
    from lowbit_sim.afu_tb import run_cocotb_module

    total, failed = run_cocotb_module(verilog, module, build_dir, name=name, waves=WAVES, extra_env=extra_env)
    assert total > 0, f"no cocotb tests ran from {module}"
    assert not failed, f"{len(failed)} of {total} cocotb tests failed: {failed[:10]} (log: {build_dir}/run_{name})"


def test_ccip_model_on_test_double():
    from driver_fixtures import export_double

    out = BUILD / "double"
    _run_bench("ccip_model", export_double(out / "src"), "lowbit_sim.test_ccip_model", out)


def _export_afu(cfg: dict) -> Path:
    """The AFU's Verilog from the export cache the simulator servers share (the moderate and woven
    configurations are the driver tests' engines too: each is exported once)."""
    from lowbit_sim.simserver import export_afu

    return export_afu(**cfg)


def test_afu_random_seeds_mmio_and_error_paths():
    verilog = _export_afu(MODERATE)
    _run_bench("regular", verilog, "lowbit_sim.test_afu", BUILD / _config_name(MODERATE))


def test_afu_narrow_lines_every_b_and_level_kind():
    """16 seeds (b = 1..8 x uniform/optimal; a quarter of LOWBIT_SEEDS when that is larger) and every
    corner and error case on 128-bit lines."""
    verilog = _export_afu(NARROW)
    seeds = max(16, int(os.environ.get("LOWBIT_SEEDS", "50")) // 4)
    _run_bench("narrow", verilog, "lowbit_sim.test_afu", BUILD / _config_name(NARROW),
               extra_env={"LOWBIT_SEEDS": str(seeds)})


def test_afu_woven_core_random_seeds_corners_and_error_paths():
    """The bit-serial woven core under the same CCI-P stress: 16 seeds (b = 1..8 twice; a quarter of
    LOWBIT_SEEDS when larger; uniform levels and whole-group minibatches, as the core requires),
    every corner and error case, and its own refusals (BAD_TABLE, BATCH_NOT_WOVEN)."""
    verilog = _export_afu(WOVEN)
    seeds = max(16, int(os.environ.get("LOWBIT_SEEDS", "50")) // 4)
    _run_bench("woven", verilog, "lowbit_sim.test_afu", BUILD / _config_name(WOVEN),
               extra_env={"LOWBIT_SEEDS": str(seeds)})


def test_afu_full_configuration_max_features_and_throughput():
    """Throughput at b = 1..8 and 8192 features on the full build, then 16 random seeds (a quarter of
    LOWBIT_SEEDS when larger) with every corner and error case on it too."""
    verilog = _export_afu(FULL)
    _run_bench("full", verilog, "lowbit_sim.test_afu_full", BUILD / _config_name(FULL))
    seeds = max(16, int(os.environ.get("LOWBIT_SEEDS", "50")) // 4)
    _run_bench("full_seeds", verilog, "lowbit_sim.test_afu", BUILD / _config_name(FULL),
               extra_env={"LOWBIT_SEEDS": str(seeds)})


# ------------------------------------------------------------------------------ the bench's own logic (no simulator)
def _golden_result(seed=3, rows=6, features=37, bits=3, batch=2, epochs=2):
    """A RunResult as a perfect engine would leave it, with its golden run and configuration."""
    import numpy as np

    from lowbit.contract.fixed import step_to_fixed
    from lowbit.contract.format import LineFormat
    from lowbit.contract import golden
    from lowbit_sim.afu_tb import RunResult, make_dataset
    from lowbit.contract.golden import EngineConfig

    ds = make_dataset(np.random.default_rng(seed), rows=rows, features=features, bits=bits, copies=2)
    cfg = EngineConfig(rows=rows, features=features, bits=bits, batch=batch, epochs=epochs,
                       step=step_to_fixed(0.01), copies=2)
    gold = golden.run(cfg, ds.codes, ds.labels_q, ds.table_m, ds.table_e)
    fmt = LineFormat(bits=bits, features=features)
    reads = epochs * (fmt.lines_per_copy(rows) + fmt.label_lines(rows))
    writes = epochs * (fmt.model_lines + fmt.record_lines) + 1
    rec = dict(state=2, error=0, cycles=900, read_lines=reads, write_lines=writes, stall_cycles=40, epochs=epochs,
               run_id=11)
    res = RunResult(status=dict(STATE=2, ERROR=0, EPOCH=epochs), record=rec, models=gold.models.copy(),
                    model_padding=np.zeros((epochs, fmt.padded_features - features), np.int32),
                    epoch_records=[dict(epoch=e + 1, loss=gold.losses[e], cycles=400 * (e + 1),
                                        read_lines=(e + 1) * reads // epochs) for e in range(epochs)],
                    registers=dict(CYCLES=900, READ_LINES=reads, WRITE_LINES=writes, STALL_CYCLES=40),
                    host_read_lines=reads, host_write_lines=writes, bench_cycles=950)
    return res, gold, cfg, fmt


def test_scoreboard_accepts_a_perfect_run_and_names_the_first_wrong_bit():
    from lowbit_sim.afu_tb import scoreboard

    res, gold, cfg, fmt = _golden_result()
    scoreboard(res, gold, cfg, fmt, run_id=11)
    res.models[1, 5] ^= 1  # one LSB of one feature in the last snapshot
    with pytest.raises(AssertionError, match="snapshot 1 model differs from golden at feature 5"):
        scoreboard(res, gold, cfg, fmt, run_id=11)


@pytest.mark.parametrize("damage, message", [
    (lambda r: r.epoch_records[0].update(loss=r.epoch_records[0]["loss"] + 1), "epoch losses"),
    (lambda r: r.model_padding.__setitem__((0, 0), 1), "padding"),
    (lambda r: r.record.update(run_id=12), "status record"),
    (lambda r: r.record.update(epochs=1), "status record"),
    (lambda r: r.status.update(STATE=3, ERROR=4), "ERROR"),
    (lambda r: r.registers.update(READ_LINES=1), "read_lines"),
    (lambda r: setattr(r, "host_read_lines", r.host_read_lines + 4), "lines the host served"),
    (lambda r: setattr(r, "record", None), "no status record"),
    (lambda r: [e.update(epoch=7) for e in r.epoch_records], "epoch record numbers"),
    (lambda r: r.epoch_records[1].update(cycles=r.record["cycles"] + 1), "epoch record cycles"),
    (lambda r: r.epoch_records[1].update(read_lines=3), "epoch record read_lines"),
])
def test_scoreboard_rejects_each_kind_of_wrong_result(damage, message):
    from lowbit_sim.afu_tb import scoreboard

    res, gold, cfg, fmt = _golden_result()
    damage(res)
    with pytest.raises(AssertionError, match=message):
        scoreboard(res, gold, cfg, fmt, run_id=11)


def test_prepared_buffers_hold_exactly_the_codes_and_labels():
    import numpy as np

    from lowbit.contract.format import unpack_codes, unpack_words
    from lowbit_sim.afu_tb import make_dataset

    ds = make_dataset(np.random.default_rng(0), rows=5, features=70, bits=4, copies=2, levels="optimal")
    assert ds.levels == "optimal" and ds.levels_q[0] == -(1 << 14) and ds.levels_q[-1] == 1 << 14
    lines = ds.data_lines()
    per = ds.fmt.lines_per_copy(5)
    for k in range(2):
        assert (unpack_codes(lines[k * per : (k + 1) * per], ds.fmt, 5) == ds.codes[k]).all()
    assert (unpack_words(ds.label_lines(), 5) == ds.labels_q).all()


def test_default_seeds_cover_the_configurations_the_issue_lists():
    """The 50 regular seeds (LOWBIT_SEED0=0) cover b = 1..8 x uniform/optimal, F = 1, odd F, F not a
    multiple of 32, N = 1, batch 1 and > 1, several epochs and two copies (on the moderate build)."""
    from lowbit_sim.test_afu import seed_config

    cfgs = [seed_config(s, MODERATE["max_features"], MODERATE["lanes"]) for s in range(50)]
    assert {(c["bits"], c["levels"]) for c in cfgs} == {(b, lv) for b in range(1, 9) for lv in ("uniform", "optimal")}
    assert any(c["features"] == 1 for c in cfgs)
    assert any(c["features"] % 2 == 1 and c["features"] > 1 for c in cfgs)
    assert sum(c["features"] % 32 != 0 for c in cfgs) >= 25
    assert any(c["rows"] == 1 for c in cfgs)
    assert any(c["batch"] == 1 for c in cfgs) and any(1 < c["batch"] < c["rows"] for c in cfgs)
    assert any(c["epochs"] >= 3 for c in cfgs) and any(c["copies"] == 2 and c["epochs"] >= 2 for c in cfgs)


def test_shell_with_stream_probe_core():
    """The real CCI-P shell (RegisterBlock, ReadEngine, WriteEngine) around a streaming probe core."""
    from lowbit_sim.test_shell_probe import export_probe

    out = BUILD / "shell_probe"
    _run_bench("shell_probe", export_probe(out / "src", **FULL), "lowbit_sim.test_shell_probe", out)


def test_the_saturating_corner_case_really_saturates_the_model():
    import numpy as np

    from lowbit.contract.fixed import INT32_MAX, INT32_MIN, step_to_fixed
    from lowbit.contract import golden
    from lowbit_sim.afu_tb import make_dataset
    from lowbit.contract.golden import EngineConfig
    from lowbit_sim.test_afu import CORNERS

    p = dict(CORNERS["saturating_step"])
    step = p.pop("step")
    ds = make_dataset(np.random.default_rng([1000, 2]), rows=p["rows"], features=p["features"], bits=p["bits"])
    cfg = EngineConfig(**p, step=step_to_fixed(step))
    m = golden.run(cfg, ds.codes, ds.labels_q, ds.table_m, ds.table_e).models
    assert (m == INT32_MAX).any() and (m == INT32_MIN).any()
