"""Internal interfaces between the CCI-P shell and the training core.

The shell (``lowbit_hw.shell``: CSR block, read engine with reorder buffer, write engine) converts
CCI-P into the plain streams below, once, at the edge; the core (``lowbit_hw.core``) never sees
CCI-P. Both sides import these definitions; ``lowbit_hw.afu.LowbitAFU`` connects them.

Core <-> shell contract
-----------------------
* ``cfg`` holds the CSR values; the core samples it on ``start`` and ignores later changes.
* ``start`` / ``reset`` are one-cycle pulses from CTRL writes. ``start`` while busy is an error
  (``ErrorCode.START_WHILE_BUSY``); ``reset`` aborts a run or clears DONE/ERROR back to IDLE.
* ``table``: code-table writes, one entry per pulse (from MMIO writes to the CODE_TABLE window).
* Reads: the core pushes ``ReadCommand``s (a start line address and a line count, any length) on
  ``data_cmd`` / ``label_cmd``; the shell returns exactly those lines, IN ORDER, on ``data_lines``
  / ``label_lines`` (it splits commands into CCI-P requests of 1, 2 or 4 lines and reorders the
  responses). The two channels are independent: the core may hold ``label_lines`` while
  consuming ``data_lines`` and vice versa, and the shell must not deadlock.
* Writes: the core pushes ``WriteRequest``s (line address, data, or a write fence) on ``write``;
  ``write_idle`` is high while no accepted request is still waiting for its CCI-P response. The
  core writes the status record behind a fence (so the host sees model and records before the
  status, without waiting for their responses), and waits for ``write_idle`` after it before it
  reports DONE/ERROR.
* ``flush``: a pulse from the core after an abort: the shell drops queued commands, lines not yet
  delivered and responses of reads still in flight; ``read_idle`` is high when no read is in flight
  and nothing is queued. The core waits for ``read_idle`` before it leaves the aborted run.
* ``status`` is what the CSR block shows in STATUS and the counter registers.
"""

# No ``from __future__ import annotations`` here: data.Struct reads its field shapes from the
# class annotations, and string annotations would leave every layout below silently EMPTY.
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from lowbit.contract.fixed import CORR_BITS, M_BITS
from lowbit.contract.format import EPOCH_RECORD, RECORD_WORD_BITS, STATUS_RECORD
from lowbit.contract.registers import CODE_TABLE_ENTRIES, CORE_STATUS, REG, RUN_CONFIG

from .ccip import CCIP_ADDR_BITS


def register_layout(names, *, by_field: bool = False) -> data.StructLayout:
    """The registers ``names`` of :data:`lowbit.contract.registers.REG` as a struct, members named in
    lower case: one per register, as wide as the register, or (``by_field``) one per field of a
    register that has fields."""
    members = {}
    for name in names:
        r = REG[name]
        if by_field and r.fields:
            members |= {f.name.lower(): f.width for f in r.fields}
        else:
            members[name.lower()] = r.width
    return data.StructLayout(members)


def record_layout(names) -> data.StructLayout:
    """A 64-byte record of :mod:`lowbit.contract.format` (``EPOCH_RECORD``, ``STATUS_RECORD``): word
    ``i``, named ``names[i]``, at bits ``[64i, 64i + 64)``, as the host reads it (little endian)."""
    return data.StructLayout({name: RECORD_WORD_BITS for name in names})


#: Register values of one run, sampled at START (``lowbit.contract.registers.RUN_CONFIG``).
RunConfig = register_layout(RUN_CONFIG)
#: What the core shows in STATUS (state, error, epoch) and the counter registers (``CORE_STATUS``).
CoreStatus = register_layout(CORE_STATUS, by_field=True)
#: The epoch record (``lowbit.contract.format.EPOCH_RECORD``) and the status record (``STATUS_RECORD``).
EpochRecord = record_layout(EPOCH_RECORD)
StatusRecord = record_layout(STATUS_RECORD)


class ReadCommand(data.Struct):
    address: CCIP_ADDR_BITS  # first cache line
    lines: 32  # number of lines, >= 1


def write_request_layout(line_bits: int) -> data.StructLayout:
    """A line write (``data`` to line ``address``), or with ``fence`` set a CCI-P write fence
    (address and data unused): it orders every later write behind every earlier one."""
    return data.StructLayout({"address": CCIP_ADDR_BITS, "data": line_bits, "fence": 1})


class CodeTableWriteSignature(wiring.Signature):
    """One code-table entry per ``en`` pulse (driven by the CSR block)."""

    def __init__(self):
        super().__init__({"en": Out(1), "index": Out(range(CODE_TABLE_ENTRIES)), "m": Out(M_BITS), "e": Out(CORR_BITS)})


class CoreSignature(wiring.Signature):
    """The training core's ports (the core's point of view).

    Parameters
    ----------
    line_bits : int
        Width of data/label lines and write data.
    """

    def __init__(self, line_bits: int):
        self.line_bits = line_bits
        super().__init__({
            "cfg": In(RunConfig),
            "start": In(1),
            "reset": In(1),
            "table": In(CodeTableWriteSignature()),
            "status": Out(CoreStatus),
            "data_cmd": Out(stream.Signature(ReadCommand)),
            "label_cmd": Out(stream.Signature(ReadCommand)),
            "data_lines": In(stream.Signature(line_bits)),
            "label_lines": In(stream.Signature(line_bits)),
            "write": Out(stream.Signature(write_request_layout(line_bits))),
            "write_idle": In(1),
            "flush": Out(1),
            "read_idle": In(1),
        })

    def __eq__(self, other):
        return isinstance(other, CoreSignature) and other.line_bits == self.line_bits
