"""Amaranth 0.5 gateware of the lowbit engine (the [hw] extra); shared definitions come from :mod:`lowbit.contract`."""
