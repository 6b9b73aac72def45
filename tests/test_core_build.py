"""TrainingCore's parameters, signature and the full-size build's Verilog."""

from __future__ import annotations

import pytest
from amaranth.back import verilog

from lowbit_hw.core import TrainingCore
from lowbit_hw.interfaces import CoreSignature


def test_defaults_and_signature():
    core = TrainingCore()
    core._MustUse__silence = True  # inspected, not elaborated
    assert (core.line_bits, core.lanes, core.max_features) == (512, 32, 8192)
    assert core.signature == CoreSignature(512)


@pytest.mark.parametrize("kw, match", [
    (dict(lanes=3), "power of two"),
    (dict(lanes=64), "power of two"),
    (dict(lanes=0), "power of two"),
    (dict(line_bits=100), "line_bits"),
    (dict(max_features=100), "multiple of 32"),
    (dict(max_features=0), "multiple of 32"),
    (dict(max_features=1 << 24), "24 bits"),
])
def test_bad_parameters_rejected_up_front(kw, match):
    with pytest.raises(ValueError, match=match):
        TrainingCore(**kw)


def test_full_size_build_converts_to_verilog():
    """The CCI-P configuration (512-bit lines, 32 lanes, 8192 features) elaborates and converts."""
    text = verilog.convert(TrainingCore(line_bits=512, lanes=32, max_features=8192), name="training_core")
    assert "module training_core" in text
    for port in ("data_lines__payload", "label_cmd__valid", "write__payload", "table__en", "read_idle", "flush"):
        assert port in text


def test_the_structs_are_the_contracts_tables():
    """RunConfig, CoreStatus and the two records are built from lowbit.contract (issue 12, item 4):
    the register widths, STATUS's fields, and the record words where the host reads them."""
    import numpy as np

    from lowbit.contract.format import EPOCH_RECORD, STATUS_RECORD, unpack_record
    from lowbit.contract.registers import CORE_STATUS, REG, RUN_CONFIG
    from lowbit_hw.interfaces import CoreStatus, EpochRecord, RunConfig, StatusRecord

    assert {k: v for k, v in RunConfig.members.items()} == {n.lower(): REG[n].width for n in RUN_CONFIG}
    assert list(CoreStatus.members) == ["state", "error", "epoch", "cycles", "read_lines", "write_lines", "stall_cycles"]
    assert {k: v for k, v in CoreStatus.members.items()} == {
        **{f.name.lower(): f.width for f in REG["STATUS"].fields}, **{n.lower(): 64 for n in CORE_STATUS[1:]}}
    for layout, names in ((EpochRecord, EPOCH_RECORD), (StatusRecord, STATUS_RECORD)):
        values = {name: (i + 1) * 0x0101_0101_0101 + (i << 60) for i, name in enumerate(names)}
        raw = layout.const(values).as_value().value.to_bytes(layout.size // 8, "little")
        assert unpack_record(np.frombuffer(raw, np.uint8), names) == values
