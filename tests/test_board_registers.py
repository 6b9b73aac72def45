"""``lowbit_hw.board.registers``: a netlist's flip-flops by module and by the signal they drive."""

import json

from lowbit_hw.board import registers


def _ff(q_bit):
    return {"type": "TRELLIS_FF", "connections": {"CLK": [2], "DI": [3], "Q": [q_bit]}}


NETLIST = {"modules": {
    "top.design.afu.core.gradient": {
        "netnames": {
            "gm5_0": {"bits": [10, 11], "hide_name": 0},
            "gm5_1": {"bits": [12, 13], "hide_name": 0},
            "$auto$ff.cc:1$7": {"bits": [10, 14], "hide_name": 1},   # a hidden alias of gm5_0[0]
            "h_3": {"bits": [15], "hide_name": 0},
        },
        "cells": {
            **{f"ff{b}": _ff(b) for b in (10, 11, 12, 13, 14, 15)},
            "lut": {"type": "LUT4", "connections": {"A": [10], "Z": [16]}},
        },
    },
    "top.design.afu.core.dot": {"netnames": {"s": {"bits": [20], "hide_name": 0}},
                                "cells": {"ff": _ff(20)}},
    "top.design.bridge": {"netnames": {}, "cells": {"lut": {"type": "LUT4", "connections": {"Z": [5]}}}},
}}


def test_flip_flops_are_counted_by_the_signal_they_drive_numbers_folded():
    fams = registers.register_families(NETLIST)
    assert set(fams) == {"top.design.afu.core.gradient", "top.design.afu.core.dot"}   # no flip-flop: left out
    # gm5_0 and gm5_1 are one family; the bit with only a hidden name is "?"; the public name wins over the alias
    assert fams["top.design.afu.core.gradient"] == {"gm#_#": 4, "h_#": 1, "?": 1}
    assert registers.register_families(NETLIST, "core.dot") == {"top.design.afu.core.dot": {"s": 1}}


def test_the_command_lists_modules_largest_first(tmp_path, capsys):
    path = tmp_path / "n.json"
    path.write_text(json.dumps(NETLIST))
    assert registers.main([str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "7 flip-flops in 2 modules"
    assert out[1].split() == ["6", "top.design.afu.core.gradient"]
    assert out[2].split() == ["4", "gm#_#"]
    assert registers.main([str(path), "--module", "nothing"]) == 1
    assert registers.main([str(tmp_path / "missing.json")]) == 2
