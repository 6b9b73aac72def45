"""The engine's training core (the planes layout): bit-plane decode, dot pass, gradient pass, run control.

``from lowbit_hw.core import TrainingCore``; the blocks are importable from their modules. The
design is described in ``docs/architecture.md``.
"""

from .core import TrainingCore

__all__ = ["TrainingCore"]
