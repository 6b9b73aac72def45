"""``lowbit_hw.board.fanout``: a net's sinks are counted through the module hierarchy, most first."""

import json

from lowbit_hw.board.fanout import fanout, main


def _ff(d, q, ce=None):
    conn = {"DI": [d], "Q": [q], "CLK": [1]} | ({"CE": [ce]} if ce is not None else {})
    return {"type": "TRELLIS_FF", "port_directions": {"DI": "input", "CLK": "input", "CE": "input", "Q": "output"},
            "connections": conn}


def _lut(a, z):
    return {"type": "LUT4", "port_directions": {"A": "input", "Z": "output"}, "connections": {"A": [a], "Z": [z]}}


def _netlist():
    # top: a flip-flop drives `en` (bit 2) into two instances of `top.leaf` and one LUT of its own;
    # each leaf uses its port `e` as the enable of 3 flip-flops and the input of one LUT.
    leaf = {"ports": {"e": {"direction": "input", "bits": [10]}},
            "netnames": {"e": {"bits": [10]}},
            "cells": {**{f"f{i}": _ff(11 + i, 20 + i, ce=10) for i in range(3)}, "l": _lut(10, 30)}}
    top = {"attributes": {"top": "00000000000000000000000000000001"}, "ports": {},
           "netnames": {"clk": {"bits": [1]}, "en": {"bits": [2]}, "other": {"bits": [5]}},
           "cells": {"src": _ff(3, 2), "u0": {"type": "top.leaf", "connections": {"e": [2]}},
                     "u1": {"type": "top.leaf", "connections": {"e": [2]}}, "mine": _lut(2, 4),
                     "solo": _lut(5, 6)}}
    return {"modules": {"top": top, "top.leaf": leaf,
                        "TRELLIS_FF": {"attributes": {"blackbox": 1}}, "LUT4": {"attributes": {"blackbox": 1}}}}


def test_a_net_is_followed_into_every_instance_and_named_at_its_driver():
    rows = fanout(_netlist())
    by_name = {name: (n, kinds) for n, name, kinds in rows}
    n, kinds = by_name["en"]
    assert n == 2 * 4 + 1
    assert kinds[("TRELLIS_FF", "CE")] == 6 and kinds[("LUT4", "A")] == 3
    assert by_name["other"][0] == 1
    assert rows[0][1] == "en"


def test_the_command_leaves_clocks_out_and_says_what_a_net_reaches(tmp_path, capsys):
    path = tmp_path / "n.json"
    path.write_text(json.dumps(_netlist()))
    assert main([str(path), "-n", "1"]) == 0
    out = capsys.readouterr().out
    assert out.split()[:2] == ["9", "en"] and "6 TRELLIS_FF.CE" in out
    assert main([str(tmp_path / "missing.json")]) == 2
