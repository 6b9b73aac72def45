"""The CCI-P shell: converts CCI-P into the core's plain streams, once, at the edge.

* :class:`RegisterBlock` (``csr``): MMIO decode, generated from :mod:`lowbit.contract.registers`.
* :class:`ReadEngine` (``read_engine``) with one :class:`ReadReorderBuffer` (``reorder``) per
  channel: read commands -> CCI-P read requests; out-of-order responses -> in-order lines.
* :class:`WriteEngine` (``write_engine``): write requests -> CCI-P writes, outstanding count.

``lowbit_hw.afu.LowbitAFU`` connects them to the training core. See ``docs/ccip.md``.
"""

from .csr import RegisterBlock
from .read_engine import ReadEngine
from .reorder import ReadReorderBuffer
from .write_engine import WriteEngine

__all__ = ["RegisterBlock", "ReadEngine", "ReadReorderBuffer", "WriteEngine"]
