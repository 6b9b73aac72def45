"""Exceptions raised by the driver (every backend raises these, never its own)."""

from __future__ import annotations

from lowbit.contract.registers import ErrorCode


class DriverError(RuntimeError):
    """Base class of the driver's errors."""


class DeviceTimeout(DriverError, TimeoutError):
    """A run did not finish within the caller's timeout."""


class DeviceError(DriverError):
    """The device reported an error: a run ended in ``State.ERROR``, or it touched memory it must not.

    Attributes
    ----------
    code : ErrorCode or None
        STATUS.ERROR when the engine rejected or aborted a run.
    address : int or None
        Byte IO address of the first host-memory access outside every allocated buffer.
    """

    def __init__(self, message: str, *, code: ErrorCode | None = None, address: int | None = None):
        super().__init__(message)
        self.code = code
        self.address = address


class SimulatorDied(DriverError):
    """The simulator process exited, was killed, or stopped answering."""
