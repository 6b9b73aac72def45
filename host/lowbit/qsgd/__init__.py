"""QSGD: stochastically quantized, Elias-coded gradient exchange (docs/qsgd.md).

``lowbit.qsgd.codec`` is the NumPy codec (no torch needed); ``lowbit.qsgd.ddp`` is the PyTorch
DistributedDataParallel communication hook (needs the ``distributed`` extra: torch);
``lowbit.qsgd.demo`` is ``lowbit qsgd-demo``.
"""

from .codec import (FORMATS, NORMS, Quantized, bits_to_levels, compress, decode, decompress,
                    dense_bits, encode, quantize, variance_bound)

__all__ = ["FORMATS", "NORMS", "Quantized", "bits_to_levels", "compress", "decode", "decompress",
           "dense_bits", "encode", "quantize", "variance_bound"]
