"""An Intel CCI-P style host interface, as an Amaranth signature (the AFU's point of view).

Field meanings follow Intel's ``ccip_if_pkg`` (``t_if_ccip_Tx`` / ``t_if_ccip_Rx``), flattened into
one member per header field so the exported Verilog ports are plain wires, e.g. ``ccip__c0_tx__address``:

* **c0_tx** read request: ``address`` is a cache-line address (byte address / 64), ``cl_len`` is
  0/1/3 for 1/2/4 lines (a multi-line request's address is aligned to its length), ``mdata`` is a
  tag the response echoes.
* **c0_rx** read responses and MMIO requests. ``rsp_valid``: one line of a read, ``cl_num`` its
  index within a multi-line request, ``mdata`` the request's tag; lines of one request, and
  responses of different requests, may return in ANY order. ``mmio_wr_valid`` / ``mmio_rd_valid``:
  an MMIO access at ``mmio_address`` (in 32-bit words, as CCI-P), ``mmio_length`` 0/1 for 4/8
  bytes, ``mmio_tid`` the transaction id a read response echoes; write data is ``data[0:64]``.
* **c1_tx** write request: one line (``cl_len`` 0, ``sop`` 1) of ``data`` to ``address``, or (``req_type``
  ``C1_REQ_WRFENCE``) a write fence, which orders every later write behind every earlier one
  (``lowbit.contract.ccip``).
* **c1_rx** write responses: ``rsp_valid`` with the request's ``mdata``; one per line written and
  one per fence (after every earlier write's).
* **c2_tx** MMIO read response: ``mmio_rd_valid``, ``tid``, ``data`` (64 bits). Every MMIO read is
  answered exactly once, unknown addresses too.
* **c0_tx_almfull / c1_tx_almfull**: the host's almost-full. While asserted the AFU may issue at
  most 8 more requests on that channel (CCI-P's rule), then must stop until it drops.

Requests and responses are single-cycle pulses with no ready signal: flow control is almost-full
only, and the AFU must accept every response the cycle it arrives.
"""

from __future__ import annotations

from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

# The widths are the contract's; the gateware's modules take them from here, with the signature.
from lowbit.contract.ccip import ADDR_BITS as CCIP_ADDR_BITS, ALMOST_FULL_SLACK, MDATA_BITS as CCIP_MDATA_BITS  # noqa: F401
from lowbit.contract.ccip import C1_REQ_TYPE_BITS, C1_REQ_WRFENCE, C1_REQ_WRLINE  # noqa: F401
from lowbit.contract.ccip import MMIO_ADDR_BITS, MMIO_TID_BITS
from lowbit.contract.format import SUPPORTED_LINE_BITS


class CcipSignature(wiring.Signature):
    """CCI-P as seen by the AFU (``Out`` = AFU to host).

    Parameters
    ----------
    line_bits : int
        Data width of read responses and write requests: 512 for CCI-P proper; the board build
        uses the same signature with narrower lines behind its serial bridge.
    """

    def __init__(self, line_bits: int = 512):
        if line_bits not in SUPPORTED_LINE_BITS:
            raise ValueError(f"line_bits must be one of {SUPPORTED_LINE_BITS}, got {line_bits!r}")
        self.line_bits = line_bits
        super().__init__({
            "c0_tx": Out(wiring.Signature({
                "valid": Out(1),
                "cl_len": Out(2),
                "address": Out(CCIP_ADDR_BITS),
                "mdata": Out(CCIP_MDATA_BITS),
            })),
            "c1_tx": Out(wiring.Signature({
                "valid": Out(1),
                "req_type": Out(C1_REQ_TYPE_BITS),
                "sop": Out(1),
                "cl_len": Out(2),
                "address": Out(CCIP_ADDR_BITS),
                "mdata": Out(CCIP_MDATA_BITS),
                "data": Out(line_bits),
            })),
            "c2_tx": Out(wiring.Signature({
                "mmio_rd_valid": Out(1),
                "tid": Out(MMIO_TID_BITS),
                "data": Out(64),
            })),
            "c0_rx": In(wiring.Signature({
                "rsp_valid": Out(1),
                "mdata": Out(CCIP_MDATA_BITS),
                "cl_num": Out(2),
                "data": Out(line_bits),
                "mmio_wr_valid": Out(1),
                "mmio_rd_valid": Out(1),
                "mmio_address": Out(MMIO_ADDR_BITS),
                "mmio_length": Out(2),
                "mmio_tid": Out(MMIO_TID_BITS),
            })),
            "c1_rx": In(wiring.Signature({
                "rsp_valid": Out(1),
                "mdata": Out(CCIP_MDATA_BITS),
            })),
            "c0_tx_almfull": In(1),
            "c1_tx_almfull": In(1),
        })

    def __eq__(self, other):
        return isinstance(other, CcipSignature) and other.line_bits == self.line_bits

    def __repr__(self):
        return f"CcipSignature(line_bits={self.line_bits})"
