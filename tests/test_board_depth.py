"""``lowbit_hw.board.depth``: the longest register-to-register paths of a mapped netlist, ranked."""

from lowbit_hw.board.depth import CCU2C_CARRY_NS, CLK_TO_Q_NS, LOGIC_NS, NET_NS, SETUP_NS, longest


def _ff(d, q):
    return {"type": "TRELLIS_FF", "port_directions": {"DI": "input", "Q": "output"},
            "connections": {"DI": [d], "Q": [q]}}


def _lut(ins, z):
    return {"type": "LUT4", "port_directions": {p: "input" for p in "ABCD"} | {"Z": "output"},
            "connections": {"A": [ins[0]], "B": [ins[1] if len(ins) > 1 else "0"], "C": ["0"], "D": ["0"],
                            "Z": [z]}}


def _ccu2c(a, cin, s0, cout):
    conn = {"A0": [a], "B0": ["0"], "C0": ["0"], "D0": ["0"], "A1": ["0"], "B1": ["0"], "C1": ["0"], "D1": ["0"],
            "CIN": [cin], "S0": [s0], "S1": [s0 + 1000], "COUT": [cout]}
    return {"type": "CCU2C", "port_directions": {}, "connections": conn}


def test_a_chain_of_three_luts_outranks_one_lut_and_is_timed_as_logic_plus_routing():
    cells = {
        # long: ff_a -> lut1 -> lut2 -> lut3 -> ff_b
        "ff_a": _ff(100, 1), "lut1": _lut([1], 2), "lut2": _lut([2], 3), "lut3": _lut([3], 4), "ff_b": _ff(4, 101),
        # short: ff_c -> lut4 -> ff_d
        "ff_c": _ff(102, 10), "lut4": _lut([10], 11), "ff_d": _ff(11, 103),
    }
    paths = longest({"cells": cells, "ports": {}}, top=5)
    t, start, chain, end = paths[0]
    assert (start, end, chain) == ("ff_a", "ff_b.DI", ["lut1", "lut2", "lut3"])
    assert abs(t - (CLK_TO_Q_NS + 3 * (NET_NS + LOGIC_NS["LUT4"]) + NET_NS + SETUP_NS)) < 1e-9
    assert paths[1][3] == "ff_d.DI" and paths[1][0] < t


def test_a_carry_chain_costs_its_dedicated_carry_delay_per_bit_not_a_net_per_cell():
    n = 16  # 16 CCU2C = a 32-bit adder
    cells = {"ff_a": _ff(500, 1)}
    cin = "0"
    for i in range(n):
        cells[f"add{i}"] = _ccu2c(1 if i == 0 else "0", cin, 200 + i, 300 + i)
        cin = 300 + i
    cells["ff_b"] = _ff(200 + n - 1, 501)  # the last sum bit
    (t, start, chain, end), = longest({"cells": cells, "ports": {}}, top=1)
    assert start == "ff_a" and end == "ff_b.DI" and chain == [f"add{i}" for i in range(n)]
    routed_every_cell = CLK_TO_Q_NS + n * (NET_NS + 0.45)
    assert t < routed_every_cell  # carry wiring is not general routing
    assert t > CLK_TO_Q_NS + (n - 1) * 2 * CCU2C_CARRY_NS
