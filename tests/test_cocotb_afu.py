"""The cocotb + Verilator system benches, run from pytest through cocotb_tools.runner.

* ``test_ccip_model_on_test_double``: the bench's host model against the DMA TEST DOUBLE
  (``tests/driver_fixtures.py``), seconds to build.
* ``test_afu_*``: the real ``lowbit_hw.afu.LowbitAFU`` (skipped until ``lowbit_hw.export`` exists),
  a moderate build for the random seeds, MMIO and error paths, and the full 512/32/8192 build for
  the maximum-features and throughput cases.

Environment: ``LOWBIT_SEEDS`` (random seeds of the regular suite, default 50), ``LOWBIT_SEED0``
(first seed, default 0), ``WAVES=1`` (an FST trace per bench under build/cocotb/<config>/).
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from lowbit_sim.toolchain import VERILATOR_BUILD_ARGS, setup_env

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build" / "cocotb"
WAVES = os.environ.get("WAVES") == "1"
#: The moderate configuration of the regular random seeds.
MODERATE = dict(line_bits=512, lanes=8, max_features=1024)
#: The full CCI-P configuration (maximum features, throughput).
FULL = dict(line_bits=512, lanes=32, max_features=8192)
#: Faster Verilator builds; the benches are short, so compile time dominates.
FAST_BUILD = ["--x-assign", "fast", "--x-initial", "fast", "-O1", "-CFLAGS", "-O1"]


def _config_name(cfg: dict) -> str:
    return f"w{cfg['line_bits']}_l{cfg['lanes']}_f{cfg['max_features']}"


def _run_bench(name: str, verilog: Path, module: str, build_dir: Path, extra_env: dict | None = None,
               testcase=None) -> None:
    """Build (cached by the runner's make) and run the cocotb module; fail on any failed test."""
    from cocotb_tools.runner import get_runner

    setup_env()
    runner = get_runner("verilator")
    runner.build(sources=[verilog], hdl_toplevel="lowbit_afu", build_dir=build_dir,
                 build_args=VERILATOR_BUILD_ARGS + FAST_BUILD + (["--trace-fst"] if WAVES else []),
                 waves=WAVES, always=False)
    env = {"LOWBIT_SEEDS": os.environ.get("LOWBIT_SEEDS", "50"), "LOWBIT_SEED0": os.environ.get("LOWBIT_SEED0", "0"),
           "PYTHONHASHSEED": "0", **(extra_env or {})}
    results = runner.test(test_module=module, hdl_toplevel="lowbit_afu", build_dir=build_dir,
                          test_dir=build_dir / f"run_{name}", extra_env=env, waves=WAVES, testcase=testcase,
                          results_xml=str(build_dir / f"results_{name}.xml"))
    tree = ET.parse(results)
    cases = tree.getroot().iter("testcase")
    failed = [c.get("name") for c in cases if c.find("failure") is not None or c.find("error") is not None]
    total = sum(1 for _ in tree.getroot().iter("testcase"))
    assert total > 0, f"no cocotb tests ran from {module}"
    assert not failed, f"{len(failed)} of {total} cocotb tests failed: {failed[:10]} (log: {build_dir})"


def test_ccip_model_on_test_double():
    from driver_fixtures import export_double

    out = BUILD / "double"
    _run_bench("ccip_model", export_double(out / "src"), "lowbit_sim.test_ccip_model", out)


def _export_afu(cfg: dict) -> Path:
    try:
        from lowbit_hw.export import export_verilog
    except ImportError:
        pytest.skip("lowbit_hw.export (the real AFU) is not in the tree yet")
    out = BUILD / _config_name(cfg)
    return export_verilog(out / "src", **cfg)


def test_afu_random_seeds_mmio_and_error_paths():
    verilog = _export_afu(MODERATE)
    _run_bench("regular", verilog, "lowbit_sim.test_afu", BUILD / _config_name(MODERATE))


def test_afu_full_configuration_max_features_and_throughput():
    verilog = _export_afu(FULL)
    _run_bench("full", verilog, "lowbit_sim.test_afu_full", BUILD / _config_name(FULL))
