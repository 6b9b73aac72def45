"""The simulated engines the CLI and the benchmarks open: the AFU build parameters of each.

``woven``: the bit-serial core (``lowbit_hw.woven.WovenCore``), one 512-bit line per cycle at every
b, so an epoch takes time proportional to the bits it streams; uniform levels only (its code table
must be affine). The 1024-line read reorder buffer keeps ~1 line/cycle in flight against the
simulator's 100-400-cycle memory latency (Little's law: lines in flight = rate x latency).
It is built with RESUME (warm start and bounded runs), so ``lowbit train --engines K`` runs on it.
``planes``: the lane-parallel core (``lowbit_hw.core.TrainingCore``), 32 codes per cycle at every
b, any code table (optimal levels); least squares only, no RESUME.

:data:`SIM_BUILT` says which optional datapaths (the BUILT register) each has, so the CLI refuses a
run an engine lacks before it starts one; tests/test_woven_core.py holds it equal to the cores'
own ``built`` (the host never imports ``lowbit_hw``).

``LOWBIT_SIM_ENGINES`` (JSON, ``{"woven": {"line_bits": 128, ...}}``) replaces build parameters of
these engines in this process and its children: the tests use it to give ``lowbit train --engines K
--backend sim`` workers (separate processes) a small build of the same RTL.
"""

from __future__ import annotations

import json
import os

from lowbit.contract.registers import Built

SIM_ENGINES = {
    "woven": dict(line_bits=512, lanes=32, max_features=8192, core="woven", read_depth=1024),
    "planes": dict(line_bits=512, lanes=32, max_features=8192, core="planes", read_depth=256),
}

#: The BUILT register of each simulated engine: its core's ``built`` (lowbit_hw.woven.WovenCore,
#: lowbit_hw.core.TrainingCore), known before a simulator is opened (the CLI refuses early).
SIM_BUILT = {
    "woven": Built.NONLINEAR | Built.L2 | Built.CHEBYSHEV | Built.RESUME | Built.DELAYED,
    "planes": Built.NONE,
}

_override = os.environ.get("LOWBIT_SIM_ENGINES")
if _override:
    for _name, _params in json.loads(_override).items():
        SIM_ENGINES[_name] = {**SIM_ENGINES[_name], **_params}
