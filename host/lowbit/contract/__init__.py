"""The contract: every definition the host, the gateware and the simulator share, in NumPy only.

==================  ==============================================================================
module              what it defines
==================  ==============================================================================
``fixed``           fixed-point formats of every integer the engine sees
``format``          the packed line layouts, the record layouts (epoch, status), ``MAX_BITS``
``quant``           levels in fixed point, the code table, stochastic rounding and double sampling
``levels``          level placement (uniform, variance-optimal) the code tables are built from
``registers``       the MMIO register map and its fields (docs/registers.md is generated from it)
``ccip``            CCI-P's widths (addresses, tags, MMIO tids) and the almost-full slack
``losses``          logistic and hinge: the margin tables and constants the golden model uses
``golden``          the golden model: the engine's integer arithmetic, the spec the RTL is held to
``serial``          the serial link's frame protocol (board bridge <-> host serial backend)
``simwire``         the simulator server's control channel (simulator <-> host sim backend)
``simprocess``      starting and stopping a simulator server process (host sim backend, ``make sim-server``)
==================  ==============================================================================

Rules (tests/test_contract.py checks them): these modules import the standard library, NumPy and
each other, nothing else; ``lowbit/__init__.py`` imports nothing, so ``import lowbit.contract``
loads no host code. ``lowbit_hw`` (Amaranth), ``lowbit_sim`` (cocotb, Verilator) and the host
(``lowbit.*``) all import it; the host never imports ``lowbit_hw`` or ``lowbit_sim``, even lazily
(a sim backend builds its simulator by running ``python -m lowbit_sim.simserver --build-only``),
so no package imports one that depends back on it (docs/packaging.md).
"""
