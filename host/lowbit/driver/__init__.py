"""The host driver: OPAE-shaped access to the lowbit engine.

>>> from lowbit.driver import open_device
>>> with open_device("sim") as dev:            # starts a simulator process
...     dev.write_reg("SCRATCH", 0x1234)
...     buf = dev.allocate((1024,), "int32")    # buf.io_address, buf.line_address

Backends: ``"sim"`` (the Verilated AFU in a separate process, :mod:`lowbit.driver.sim`) and
``"serial"`` (the board over USB serial, :mod:`lowbit.driver.serial`). See docs/driver.md.
"""

from __future__ import annotations

from .backend import Backend
from .device import Device, SharedBuffer
from .errors import DeviceError, DeviceTimeout, DriverError, SimulatorDied

BACKENDS = ("sim", "serial")


def open_device(backend: str = "sim", **options) -> Device:
    """Open the engine on ``backend`` with backend-specific ``options``.

    ``sim`` options: see :class:`lowbit.driver.sim.SimBackend` (``socket=PATH`` attaches to a
    running ``make sim-server``; otherwise a private simulator process is started and stopped with
    the device). ``serial`` options: see :mod:`lowbit.driver.serial`.
    """
    if backend == "sim":
        from .sim import SimBackend

        return Device(SimBackend(**options))
    if backend == "serial":
        from .serial import SerialBackend

        return Device(SerialBackend(**options))
    raise ValueError(f"unknown backend {backend!r}; choose one of {BACKENDS}")


__all__ = ["Backend", "Device", "SharedBuffer", "DeviceError", "DeviceTimeout", "DriverError",
           "SimulatorDied", "open_device", "BACKENDS"]
