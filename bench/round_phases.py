"""Cycles per phase of one bounded, warm-started round on the woven core (Amaranth simulator).

The sequencer's FSM state is sampled every cycle while the core runs one round of a scale-out
worker (a shard of ``--rows`` rows, warm start, ``--count`` minibatches from minibatch
``--first``), against the test shell model with a fixed read and write latency (``--latency``,
the Verilated shell's is uniform in 100..400 per line). Prints the cycles spent in each state.

    python bench/round_phases.py --rows 200 --features 785 --line-bits 512 --max-features 8192
"""

from __future__ import annotations

import argparse
from collections import Counter, deque

import numpy as np
from amaranth.sim import Simulator

from core_models import ShellModel, make_problem, pulse, set_config, step_until_end, write_table
from lowbit_hw.core.sequencer import Sequencer
from lowbit_hw.woven import WovenCore


class LatencyShell(ShellModel):
    """The shell model with every line and every write response ``latency`` cycles late."""

    def __init__(self, *a, latency=250, **kw):
        super().__init__(*a, p_cmd=1.0, p_line=1.0, p_write=1.0, write_latency=(latency, latency + 1), **kw)
        self.latency, self.cycle, self.delayed = latency, 0, {"data": deque(), "label": deque()}

    def drive(self, ctx):
        for name, q in self.delayed.items():
            while q and q[0][0] <= self.cycle:
                self.ch[name].cmds.append(q.popleft()[1])
        super().drive(ctx)

    def observe(self, sampled):
        n = {k: len(ch.cmds) for k, ch in self.ch.items()}
        status = super().observe(sampled)
        for name, ch in self.ch.items():
            while len(ch.cmds) > n[name]:  # a command accepted this cycle: its lines come later
                self.delayed[name].append((self.cycle + self.latency, ch.cmds.pop()))
        self.cycle += 1
        return status


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=200)
    ap.add_argument("--features", type=int, default=785)
    ap.add_argument("--bits", type=int, default=4)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--first", type=int, default=13)
    ap.add_argument("--count", type=int, default=13)
    ap.add_argument("--line-bits", type=int, default=512)
    ap.add_argument("--max-features", type=int, default=8192)
    ap.add_argument("--latency", type=int, default=250)
    ap.add_argument("--cold", action="store_true", help="no warm start")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(1)
    model_in = None if args.cold else rng.integers(-(1 << 24), 1 << 24, args.features).astype(np.int32)
    problem = make_problem(rows=args.rows, features=args.features, bits=args.bits, batch=args.batch,
                           epochs=args.epochs, copies=2, line_bits=args.line_bits, layout="woven", seed=2,
                           model_in=model_in, start_minibatch=args.first, max_minibatches=args.count)
    core = WovenCore(line_bits=args.line_bits, max_features=args.max_features)
    shell = LatencyShell(core, problem.memory, np.random.default_rng(0), latency=args.latency)
    counts, order = Counter(), []
    seqs = []
    orig = Sequencer.elaborate

    def elaborate(self, platform):
        seqs.append(self)
        return orig(self, platform)

    Sequencer.elaborate = elaborate
    out = {}

    async def bench(ctx):
        names = list(seqs[0].fsm.encoding)
        ongoing = [seqs[0].fsm.ongoing(n) for n in names]

        def hook(ctx, cycle):
            s = next((n for n, sig in zip(names, ongoing) if ctx.get(sig)), "?")
            counts[s] += 1
            if not order or order[-1] != s:
                order.append(s)

        await write_table(ctx, core, problem.table_m, problem.table_e)
        set_config(ctx, core, problem.cfg, 0)
        await pulse(ctx, core.start)
        out["cycles"], out["status"] = await step_until_end(ctx, core, shell, 200_000, hook=hook)

    sim = Simulator(core)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    st = out["status"]
    print(f"state {st.state} error {st.error} cycles {st.cycles} ({out['cycles']} stepped), epochs {st.epoch}")
    print("order:", " ".join(order))
    for s in dict.fromkeys(order):
        print(f"  {s:16s} {counts[s]:7d}")
    print(f"  {'total':16s} {sum(counts.values()):7d}")


if __name__ == "__main__":
    main()
