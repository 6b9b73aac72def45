"""``model_loader``: a model in snapshot layout (lines of int32 words) -> rows of the model memory."""

from __future__ import annotations

from types import SimpleNamespace

from amaranth import Cat, Module, Signal, signed
from amaranth.lib import data

from lowbit.contract.format import ROW_ALIGN

from ..ecp5 import global_buffer, register_copies

__all__ = ["model_loader"]


def model_loader(m: Module, *, line_bits: int, depth: int, start, line_valid, line, platform=None,
                 select_copies: int = 1) -> SimpleNamespace:
    """Takes the model's lines (``lowbit.contract.format``: word ``j`` = feature ``j``, ``W/32``
    words per line) and writes model row ``c`` (features ``32c .. 32c+31``) once its
    ``1024 / W`` lines are in: the lines shift into a row register (no multiplexer per word),
    and the row is written the cycle after its last line (``w_en`` is a register).

    ``start`` pulses before row 0's first line; ``line_valid`` says a model line is there (always
    taken: the sequencer routes exactly the model's lines here, ``loading``). Returns the model
    memory write (``w_en``, ``w_addr``, ``w_data``), and ``w_sel``: ``select_copies`` copies of
    ``w_en`` for a caller that selects the row's words between the loader and another writer
    (``register_copies``: w_en alone selected ~1k data bits, the board router's most congested
    net; unlike w_en, the copies are not reset, so they may be stray for one cycle after a reset,
    when the caller's other writer writes nothing).

    Built into the caller's module ``m``, not a module of its own: as one, it made yosys 0.70's
    ABC9 fail an assertion in the board's module-by-module synthesis (docs/board.md), as the
    block-RAM wrappers had."""
    if (ROW_ALIGN * 32) % line_bits or line_bits > ROW_ALIGN * 32:
        raise ValueError(f"a model row of {ROW_ALIGN} words must be whole lines of {line_bits} bits")
    W, n = line_bits, ROW_ALIGN * 32 // line_bits
    out = SimpleNamespace(w_en=Signal(name="loader_w_en"), w_addr=Signal(range(depth), name="loader_w_addr"),
                          w_data=Signal(data.ArrayLayout(signed(32), ROW_ALIGN), name="loader_w_data",
                                        reset_less=True))  # (data: written to the model only with w_en)
    row = out.w_data.as_value()
    part = Signal(range(n), name="loader_part")     # lines of the row taken so far
    addr = Signal(range(depth), name="loader_addr")  # the row being assembled
    m.d.sync += out.w_en.eq(0)
    out.w_sel = register_copies(m, platform, ~start & line_valid & (part == n - 1), select_copies, "loader_w_sel")
    # The row is data, written to the model only with w_en, and shifts on its own enable, which
    # reaches all of its ~1k flip-flops: a global network (docs/board.md, tenth pass).
    shift = global_buffer(m, platform, ~start & line_valid, "loader_shift")
    with m.If(shift):
        # the newest line enters at the top: after n lines, line i holds words i*W/32 ...
        m.d.sync += row.eq(Cat(row[W:], line) if n > 1 else line)
    with m.If(start):
        m.d.sync += [part.eq(0), addr.eq(0)]
    with m.Elif(line_valid):
        m.d.sync += part.eq(part + 1)
        with m.If(part == n - 1):
            m.d.sync += [part.eq(0), out.w_en.eq(1), out.w_addr.eq(addr), addr.eq(addr + 1)]
    return out
