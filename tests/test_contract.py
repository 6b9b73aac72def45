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


def node(mod: str) -> str | None:
    """The part of the project ``mod`` belongs to: ``lowbit.contract``, ``lowbit`` (the rest of the
    host), ``lowbit_hw``, ``lowbit_sim``; None outside the project."""
    top = mod.split(".")[0]
    if top not in PACKAGES:
        return None
    return "lowbit.contract" if mod == "lowbit.contract" or mod.startswith("lowbit.contract.") else top


def package_graph() -> dict[tuple[str, str], list[tuple[str, str, bool]]]:
    """``(importer, imported) -> [(file, module, at module level), ...]`` over every import of the
    three packages, lazy ones inside functions included, between different parts (:func:`node`)."""
    edges: dict[tuple[str, str], list[tuple[str, str, bool]]] = {}
    for top in PACKAGES:
        for path in sources(top):
            src = node(module_name(path))
            for mod, module_level in imports(path):
                dst = node(mod)
                if dst is not None and dst != src:
                    edges.setdefault((src, dst), []).append((path.relative_to(ROOT).as_posix(), mod, module_level))
    return edges


def cycles(pairs) -> list[list[str]]:
    """The strongly connected parts of more than one node of the directed graph ``pairs``."""
    succ: dict[str, set[str]] = {}
    for a, b in pairs:
        succ.setdefault(a, set()).add(b)
        succ.setdefault(b, set())

    def reach(a):
        seen, todo = set(), [a]
        while todo:
            for b in succ[todo.pop()] - seen:
                seen.add(b)
                todo.append(b)
        return seen

    r = {a: reach(a) for a in succ}
    return sorted({tuple(sorted(b for b in r[a] if a in r[b])) for a in succ if a in r[a]} - {()}, key=len)


def test_the_contract_imports_numpy_and_itself_only():
    for path in sorted(CONTRACT.rglob("*.py")):
        for mod, _ in imports(path):
            top = mod.split(".")[0]
            assert (top in sys.stdlib_module_names or top == "numpy" or mod == "__future__"
                    or mod.startswith("lowbit.contract")), f"{path.relative_to(ROOT)} imports {mod}"


def test_importing_the_contract_loads_numpy_only():
    code = ("import sys\nimport lowbit.contract.golden, lowbit.contract.serial, lowbit.contract.simwire, "
            "lowbit.contract.simprocess, lowbit.contract.levels\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} - set(sys.stdlib_module_names)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(ROOT / "host"), "PATH": "/usr/bin:/bin"}).stdout
    extra = {m for m in eval(out) if not m.startswith("_")} - {"lowbit", "numpy"}
    assert not extra, f"import lowbit.contract loads {extra}"


@pytest.mark.parametrize("top, allowed", [
    # hw sees the host only through the contract; sim through the contract and lowbit.data, the one
    # synthetic-problem builder its benches share with the host (it imports only the contract).
    # The host never imports hw or sim (below).
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


def test_the_host_never_imports_hw_or_sim():
    """Not even lazily: the sim backend builds its simulator in a child process
    (``python -m lowbit_sim.simserver --build-only``) and starts it with the contract's
    :mod:`~lowbit.contract.simprocess`."""
    for path in sources("lowbit"):
        for mod, _ in imports(path):
            assert mod.split(".")[0] not in ("lowbit_hw", "lowbit_sim"), f"{path.relative_to(ROOT)} imports {mod}"


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


def test_no_package_imports_a_sibling_that_depends_back_on_it():
    """Issue 12: the import graph of the packages is acyclic, counting every import, lazy ones in
    functions too; at the level of the three packages and with the contract as a part of its own."""
    edges = package_graph()
    assert not cycles(edges), {k: v for k, v in edges.items() if any(set(k) <= set(c) for c in cycles(edges))}
    tops = {(a.split(".")[0], b.split(".")[0]) for a, b in edges} - {("lowbit", "lowbit")}
    assert not cycles(tops), tops


def test_the_cycle_check_finds_a_cycle():
    """Negative control: the check flags a two-package loop and a longer one, and not a chain."""
    assert cycles([("lowbit", "lowbit_sim"), ("lowbit_sim", "lowbit")]) == [("lowbit", "lowbit_sim")]
    assert cycles([("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")]) == [("a", "b", "c")]
    assert cycles([("a", "b"), ("b", "c"), ("a", "c")]) == []


def main() -> None:
    """``python tests/test_contract.py``: the package import graph, one line per edge with the files
    and modules behind it (``*`` marks an import made only when a function runs)."""
    for (a, b), uses in sorted(package_graph().items()):
        files = sorted({f"{f}{'' if top else '*'}" for f, _, top in uses})
        mods = sorted({m for _, m, _ in uses})
        print(f"{a} -> {b}  ({len(uses)} imports: {', '.join(mods)})")
        print("    " + " ".join(files))
    tops = sorted({(a.split(".")[0], b.split(".")[0]) for a, b in package_graph()} - {("lowbit", "lowbit")})
    print("packages: " + ", ".join(f"{a} -> {b}" for a, b in tops))
    print("cycles: " + (", ".join(" <-> ".join(c) for c in cycles(tops)) or "none"))


if __name__ == "__main__":
    main()
