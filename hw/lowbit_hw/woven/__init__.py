"""The bit-serial, sample-woven training core: its time per epoch is proportional to the bits it
streams (docs/architecture.md, "The woven core"). Reads the ``woven`` line layout (format 2)."""

from .core import WovenCore

__all__ = ["WovenCore"]
