"""The ULX3S (ECP5-85F) board build: a UART, the serial CCI-P bridge, the board top, the build flow.

See docs/board.md. :mod:`.protocol` holds the byte protocol shared with the host's serial backend.
"""

from .bridge import SerialBridge
from .uart import UART, UARTRx, UARTTx

__all__ = ["SerialBridge", "UART", "UARTRx", "UARTTx"]
