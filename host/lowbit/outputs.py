"""The files a command writes (JSON, plots, models): their names checked before any work, and
standard JSON. Shared by the ``lowbit`` commands (``lowbit.cli``, ``lowbit.scaleout_cli``)."""

from __future__ import annotations

import math
import os
from pathlib import Path

__all__ = ["PLOT_SUFFIXES", "output_path", "strict_json"]

#: Image formats plot_runs can write; any other name gets ".png" appended (what matplotlib would
#: otherwise do silently for a name without a suffix, or refuse for an unknown one).
PLOT_SUFFIXES = (".png", ".pdf", ".svg")


def output_path(path: Path, option: str, suffix: str, accepted: tuple[str, ...] = ()) -> Path:
    """The file that will actually be written for ``path`` (``suffix`` appended unless the name
    already ends in it or in one of ``accepted``), checked to be writable without creating anything.

    Raises
    ------
    ValueError
        Naming the option, the path and why it cannot be written.
    """
    path = Path(path)
    if path.suffix.lower() not in (suffix, *accepted):
        path = path.with_name(path.name + suffix)  # as numpy's savez and matplotlib's savefig do
    if path.is_dir():
        raise ValueError(f"{option} {path}: is a directory; give a file name")
    parent = path.parent
    while not parent.exists():  # the nearest existing folder must be a writable directory
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(f"{option} {path}: cannot create its folder, {parent} is not a directory; "
                         f"choose another path")
    if not os.access(parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise ValueError(f"{option} {path}: no permission to write there; choose another path")
    return path


def strict_json(obj):
    """``(obj with every non-finite float replaced by None, whether any was)``, for standard JSON."""
    replaced = False

    def walk(x):
        nonlocal replaced
        if isinstance(x, float) and not math.isfinite(x):
            replaced = True
            return None
        if isinstance(x, dict):
            return {k: walk(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [walk(v) for v in x]
        return x

    return walk(obj), replaced
