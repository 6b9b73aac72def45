"""The register map (lowbit.contract.registers): docs/registers.md is generated from it, and it is sane."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lowbit.contract import registers as R
from lowbit.contract.fixed import CORR_FRAC, MODEL_FRAC
from lowbit.contract.format import FORMAT_VERSION

DOC = Path(__file__).resolve().parents[1] / "docs" / "registers.md"


def test_docs_registers_md_is_generated_from_the_code():
    assert DOC.read_text() == R.render_markdown(), (
        "docs/registers.md is stale: run `python -m lowbit.contract.registers > docs/registers.md`")


def test_offsets_are_unique_aligned_and_below_the_code_table():
    addrs = [r.address for r in R.REGISTERS]
    assert len(set(addrs)) == len(addrs)
    assert all(a % 8 == 0 for a in addrs)
    assert max(addrs) < R.CODE_TABLE_BASE
    assert R.CODE_TABLE_BASE + 8 * R.CODE_TABLE_ENTRIES <= R.MMIO_SPAN
    assert [r.address for r in R.REGISTERS[:5]] == [0x0, 0x8, 0x10, 0x18, 0x20]  # the CCI-P DFH block


def test_fields_fit_and_do_not_overlap():
    for r in R.REGISTERS + (R.CODE_ENTRY,):
        used = 0
        for f in r.fields:
            assert 0 <= f.lsb and f.lsb + f.width <= 64
            assert not used & f.mask, f"{r.name}.{f.name} overlaps"
            used |= f.mask


def test_widths_hold_the_values_the_engine_takes():
    assert 2 ** R.REG["BATCH"].width > R.MAX_BATCH
    assert 2 ** R.REG["EPOCHS"].width > R.MAX_EPOCHS
    assert 2 ** R.REG["COPIES"].width > R.MAX_COPIES
    assert 2 ** R.REG["BITS"].width > 8
    assert R.REG["STEP"].width == 32  # uint32 at 2^-32
    assert R.REG["FEATURES"].width == R.REG["CAPS"].field("MAX_FEATURES").width
    assert 2 ** R.CODE_ENTRY.field("M").width >= 2 * (1 << 16)  # int17: m in [-2^15, 2^15]
    assert 2 ** R.CODE_ENTRY.field("E").width > 1 << CORR_FRAC  # uint24: e <= 2^23 (levels 2 apart)
    assert R.CODE_TABLE_ENTRIES == (1 << 9) - 1  # 2^(b+1) - 1 codes at b = 8
    assert 2 ** R.REG["CAPS"].field("MODEL_FRAC").width > MODEL_FRAC
    assert 2 ** R.REG["CAPS"].field("FORMAT_VERSION").width > FORMAT_VERSION


def test_encode_decode_round_trip():
    caps = R.REG["CAPS"]
    v = caps.encode(LINE_BITS=512, LANES=32, MAX_FEATURES=8192, MODEL_FRAC=24, FORMAT_VERSION=1)
    assert caps.decode(v) == dict(LINE_BITS=512, LANES=32, MAX_FEATURES=8192, MODEL_FRAC=24, FORMAT_VERSION=1)
    st = R.REG["STATUS"].decode(R.REG["STATUS"].encode(STATE=R.State.ERROR, ERROR=R.ErrorCode.BAD_STEP, EPOCH=7))
    assert st == dict(STATE=3, ERROR=8, EPOCH=7)
    with pytest.raises(ValueError, match="LANES is 8 bits"):
        caps.encode(LANES=256)
    with pytest.raises(KeyError):
        caps.field("NOPE")


def test_code_entries():
    assert R.code_table_address(0) == R.CODE_TABLE_BASE
    assert R.code_table_address(510) == R.CODE_TABLE_BASE + 8 * 510
    with pytest.raises(ValueError, match="outside the code table"):
        R.code_table_address(511)
    v = R.encode_code_entry(-(1 << 15), 1 << 15)
    assert v & 0x1FFFF == (1 << 17) - (1 << 15)  # two's complement int17
    assert (v >> 32) & 0xFFFF == 1 << 15
    assert R.encode_code_entry(-1, 0) == (1 << 17) - 1


def test_identity_constants():
    assert (R.AFU_ID_H << 64) | R.AFU_ID_L == R.AFU_UUID.int
    assert R.DFH_VALUE >> 60 == 0x1 and (R.DFH_VALUE >> 40) & 1 == 1
    assert [e.value for e in R.ErrorCode] == list(range(len(R.ErrorCode)))  # dense, from 0
    assert R.Ctrl.START == 1 and R.Ctrl.RESET == 2


def test_the_map_check_raises_and_python_O_does_not_skip_it(monkeypatch):
    """_check_map raises (an assert would vanish under python -O)."""
    monkeypatch.setattr(R, "REGISTERS", R.REGISTERS + (R.REGISTERS[0],))
    with pytest.raises(RuntimeError, match="duplicate register address"):
        R._check_map()
    code = ("import lowbit.contract.registers as R\nR.REGISTERS += (R.REGISTERS[0],)\ntry:\n    R._check_map()\n"
            "except RuntimeError as e:\n    print('raised', e)")
    out = subprocess.run([sys.executable, "-O", "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(Path(R.__file__).parents[2])}).stdout
    assert out.startswith("raised")


def test_the_map_check_gives_every_ro_register_one_source(monkeypatch):
    """CORE_STATUS (the core drives it) and BUILD_CONSTANTS (the build fixes it) are every RO
    register, each once; RUN_CONFIG names RW registers: what the RTL's structs are built from."""
    R._check_map()
    with monkeypatch.context() as mp:
        mp.setattr(R, "CORE_STATUS", R.CORE_STATUS[:-1])
        with pytest.raises(RuntimeError, match="are not CORE_STATUS and BUILD_CONSTANTS"):
            R._check_map()
    with monkeypatch.context() as mp:
        mp.setattr(R, "BUILD_CONSTANTS", R.BUILD_CONSTANTS + ("CYCLES",))
        with pytest.raises(RuntimeError, match="are not CORE_STATUS and BUILD_CONSTANTS"):
            R._check_map()
    with monkeypatch.context() as mp:
        mp.setattr(R, "RUN_CONFIG", R.RUN_CONFIG + ("CYCLES",))
        with pytest.raises(RuntimeError, match=r"not RW registers of the map: \['CYCLES'\]"):
            R._check_map()


def test_the_preamble_gives_line_addresses_in_the_engines_own_lines():
    """The doc's preamble and its rows agree: a line address is byte address / (LINE_BITS / 8)."""
    head = R.render_markdown().split("| offset |")[0]
    assert "byte address / (LINE_BITS / 8)" in head
    assert not re.search(r"byte address / 64", DOC.read_text())
