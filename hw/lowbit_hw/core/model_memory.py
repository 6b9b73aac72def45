"""``ModelMemory``: the model ``w`` in two copies, one read port each, written together."""

from __future__ import annotations

from amaranth import Module, signed
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

__all__ = ["ModelMemory"]


class ModelMemory(wiring.Component):
    """``depth`` rows of ``lanes`` int32 weights (row ``k`` = features ``k*lanes .. k*lanes+lanes-1``).

    The dot pass (port A; also the snapshot writer between epochs) and the gradient pass (port B)
    read different rows in the same cycle and the minibatch update writes both, so the model is
    kept twice: two simple-dual-port RAMs sharing the write. Reads are synchronous; port A is
    transparent (a read in cycle ``t`` sees the write of cycle ``t``: the dot-pass interlock relies
    on it), port B is not (it sees writes of cycles ``< t``).

    Parameters
    ----------
    lanes : int
    depth : int
        Rows: ``max_features / lanes``.

    Attributes
    ----------
    w_en, w_addr, w_data : In
        Write both copies.
    a_addr, a_data, b_addr, b_data : read ports A and B.
    """

    def __init__(self, *, lanes: int, depth: int):
        if not isinstance(depth, int) or depth < 1:
            raise ValueError(f"depth must be a positive int, got {depth!r}")
        self.lanes, self.depth = lanes, depth
        row = data.ArrayLayout(signed(32), lanes)
        super().__init__({
            "w_en": In(1), "w_addr": In(range(depth)), "w_data": In(row),
            "a_addr": In(range(depth)), "a_data": Out(row),
            "b_addr": In(range(depth)), "b_data": Out(row),
        })

    def elaborate(self, platform):
        m = Module()
        row = data.ArrayLayout(signed(32), self.lanes)
        for name in ("a", "b"):
            mem = Memory(shape=row, depth=self.depth, init=[])
            m.submodules[f"copy_{name}"] = mem
            wp = mem.write_port()
            # Port A forwards a write to a read of the same row in the same cycle, so the dot pass
            # can follow the update with no cycle in between (it never reads a row being written
            # for any other reason). Port B reads the state before the cycle's write.
            rp = mem.read_port(transparent_for=(wp,) if name == "a" else ())
            m.d.comb += [wp.en.eq(self.w_en), wp.addr.eq(self.w_addr), wp.data.eq(self.w_data),
                         rp.addr.eq(getattr(self, f"{name}_addr")),
                         getattr(self, f"{name}_data").eq(rp.data)]
        return m
