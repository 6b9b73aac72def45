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
