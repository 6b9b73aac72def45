"""The package structure of issue 12: one NumPy-only contract at the bottom, no sibling cycle.

Read from the sources' own import statements (AST), so a new import that breaks a rule fails here.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"lowbit": ROOT / "host" / "lowbit", "lowbit_hw": ROOT / "hw" / "lowbit_hw",
            "lowbit_sim": ROOT / "sim" / "lowbit_sim"}
CONTRACT = PACKAGES["lowbit"] / "contract"


def module_name(path: Path) -> str:
    for top, root in PACKAGES.items():
        if root in path.parents:
            parts = [top, *path.relative_to(root).with_suffix("").parts]
            return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    raise ValueError(path)


def imports(path: Path) -> list[tuple[str, bool]]:
    """``(absolute module, at module level)`` of every import in ``path``."""
    tree = ast.parse(path.read_text())
    pkg = module_name(path).split(".")
    if path.name != "__init__.py":
        pkg = pkg[:-1]
    top_level = {id(n) for n in tree.body}
    for node in tree.body:  # imports under a module-level if/try count as module level
        if isinstance(node, (ast.If, ast.Try)):
            top_level |= {id(n) for n in ast.walk(node)}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, id(node) in top_level) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(pkg[:len(pkg) - node.level + 1]) if node.level else ""
            mod = ".".join(p for p in (base, node.module or "") if p)
            if node.module is None:  # from . import x
                out += [(f"{mod}.{a.name}", id(node) in top_level) for a in node.names]
            else:
                out.append((mod, id(node) in top_level))
    return out


def sources(top: str):
    return sorted(PACKAGES[top].rglob("*.py"))


def test_the_contract_imports_numpy_and_itself_only():
    for path in sorted(CONTRACT.rglob("*.py")):
        for mod, _ in imports(path):
            top = mod.split(".")[0]
            assert (top in sys.stdlib_module_names or top == "numpy" or mod == "__future__"
                    or mod.startswith("lowbit.contract")), f"{path.relative_to(ROOT)} imports {mod}"


def test_importing_the_contract_loads_numpy_only():
    code = ("import sys\nimport lowbit.contract.golden, lowbit.contract.serial, lowbit.contract.simwire, "
            "lowbit.contract.levels\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} - set(sys.stdlib_module_names)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(ROOT / "host"), "PATH": "/usr/bin:/bin"}).stdout
    extra = {m for m in eval(out) if not m.startswith("_")} - {"lowbit", "numpy"}
    assert not extra, f"import lowbit.contract loads {extra}"


@pytest.mark.parametrize("top, allowed", [
    # hw sees the host only through the contract; sim through the contract and lowbit.data, the one
    # synthetic-problem builder its benches share with the host (it imports only the contract).
    # The host never imports hw or sim at module level (only the sim backend, lazily, when it
    # starts a private simulator).
    ("lowbit_hw", ("lowbit.contract", "lowbit_hw")),
    ("lowbit_sim", ("lowbit.contract", "lowbit.data", "lowbit_hw", "lowbit_sim")),
])
def test_hw_and_sim_see_the_host_only_through_the_contract(top, allowed):
    for path in sources(top):
        for mod, _ in imports(path):
            if mod.split(".")[0] in PACKAGES:
                assert mod.startswith(allowed), f"{path.relative_to(ROOT)} imports {mod}"


def test_the_problem_builder_sim_uses_imports_only_the_contract():
    path = PACKAGES["lowbit"] / "data.py"
    assert {m for m, _ in imports(path) if m.startswith("lowbit")} <= {"lowbit.contract.quant", "lowbit.contract"} | {
        m for m, _ in imports(path) if m.startswith("lowbit.contract")}


def test_the_host_never_imports_hw_or_sim_at_module_level():
    lazy = []
    for path in sources("lowbit"):
        for mod, module_level in imports(path):
            if mod.split(".")[0] in ("lowbit_hw", "lowbit_sim"):
                assert not module_level, f"{path.relative_to(ROOT)} imports {mod} at import time"
                lazy.append((path.relative_to(ROOT).as_posix(), mod))
    assert lazy == [("host/lowbit/driver/sim.py", "lowbit_sim")]  # from lowbit_sim import simserver


def test_no_module_walks_up_the_source_tree():
    """Installed from a wheel there is no checkout around a module: files come from package data
    (``importlib.resources``) and builds go to ``LOWBIT_BUILD_DIR`` or the user's cache."""
    for top in PACKAGES:
        for path in sources(top):
            text = path.read_text()
            assert not re.search(r"parents\[[2-9]\]|repo_root", text), path.relative_to(ROOT)


def test_the_harness_retypes_nothing_of_the_contract():
    """harness.cpp takes its protocol and CCI-P numbers from the generated lowbit_protocol.h only
    (tests/test_ccip_agreement.py holds the header to the contract's values)."""
    from lowbit_sim.simserver import HARNESS

    cpp = HARNESS.read_text()
    assert '#include "lowbit_protocol.h"' in cpp
    for retyped in ("OP_HELLO =", "ST_OK =", "PROTOCOL_VERSION =", "ALMOST_FULL_SLACK =", "0x1ff", "1u << 18",
                    "MAX_ARENA =", "MAX_RUN_CYCLES ="):
        assert retyped not in cpp, f"harness.cpp retypes {retyped!r}"
