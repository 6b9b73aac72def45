"""Resumable runs in the golden model (issue 14; registers WARM_START, MODEL_IN_ADDR, START_MINIBATCH,
MAX_MINIBATCHES): a run cut into bounded pieces, each warm-started from the last snapshot of the
one before, is the uncut run, bit for bit; and the new registers at zero change nothing.
"""

import numpy as np
import pytest
from test_golden import small_case, spec_run

from lowbit.contract.fixed import UINT64_MAX
from lowbit.contract.registers import REG, ErrorCode
from lowbit.contract.golden import EngineConfig, run

#: 13 rows in minibatches of 4: P = 4 minibatches per epoch, the last one of a single row.
CASE = dict(rows=13, features=5, bits=2, batch=4, epochs=3, copies=2, step=0.05)


def _case():
    return small_case(**CASE, seed=11)


def _bounded(cfg, start, count, model_in=None):
    return EngineConfig(**{**cfg.__dict__, "warm_start": model_in is not None, "start_minibatch": start,
                           "max_minibatches": count})


def _pieces(cfg, codes, labels, tm, te, cuts):
    """Run the schedule in pieces ending at ``cuts``; each piece warm-starts from the last snapshot."""
    runs, w, start = [], None, 0
    for end in cuts:
        g = run(_bounded(cfg, start, end - start, w), codes, labels, tm, te, model_in=w)
        runs.append((start, g))
        w, start = g.models[-1], end
    return runs


def _epoch_view(cfg, runs):
    """Per epoch: the snapshot that ends it and its loss summed (saturating) over the pieces."""
    p = cfg.minibatches_per_epoch
    models, losses = {}, {}
    for start, g in runs:
        first_epoch = start // p
        for i, (m, loss) in enumerate(zip(g.models, g.losses)):
            epoch = first_epoch + i
            losses[epoch] = min(losses.get(epoch, 0) + loss, UINT64_MAX)
            if not (g.partial and i == len(g.models) - 1):
                models[epoch] = m
    return np.array([models[e] for e in sorted(models)]), [losses[e] for e in sorted(losses)]


def test_new_registers_at_zero_are_the_plain_run():
    args = _case()
    g = run(*args)
    models, losses = spec_run(*args)
    assert np.array_equal(g.models, models) and g.losses == losses and not g.partial
    assert all(REG[n].address >= 0x140 for n in ("MODEL_IN_ADDR", "WARM_START", "START_MINIBATCH",
                                                  "MAX_MINIBATCHES"))


@pytest.mark.parametrize("cuts", [
    [5, 12],            # mid-epoch, then to the end (an epoch boundary at 12)
    [1, 2, 3, 6, 12],   # one minibatch at a time across the short last minibatch and a copy change
    [4, 8, 12],         # exactly at epoch ends
    [7, 9, 10, 11, 12], # T = 2 and shorter pieces, as the K-engine averaging rounds cut them
])
def test_a_run_cut_into_bounded_pieces_is_the_uncut_run(cuts):
    cfg, codes, labels, tm, te = _case()
    whole = run(cfg, codes, labels, tm, te)
    runs = _pieces(cfg, codes, labels, tm, te, cuts)
    models, losses = _epoch_view(cfg, runs)
    assert np.array_equal(models, whole.models)
    assert losses == whole.losses


def test_snapshots_count_epoch_ends_and_a_partial_epoch():
    cfg, codes, labels, tm, te = _case()
    g = run(_bounded(cfg, 2, 7), codes, labels, tm, te)  # minibatches 2..8: ends epoch 0 and 1, stops in epoch 2
    assert _bounded(cfg, 2, 7).snapshots() == 3 == len(g.models) == len(g.losses)
    assert g.partial
    g = run(_bounded(cfg, 4, 4), codes, labels, tm, te)  # exactly epoch 1
    assert len(g.models) == 1 and not g.partial
    g = run(_bounded(cfg, 10, 100), codes, labels, tm, te)  # clipped at the schedule's end
    assert _bounded(cfg, 10, 100).span() == (10, 12) and len(g.models) == 1 and not g.partial


def test_warm_start_from_a_model_is_used():
    cfg, codes, labels, tm, te = _case()
    w = np.arange(cfg.features, dtype=np.int32) * (1 << 20)
    cold = run(_bounded(cfg, 0, 1), codes, labels, tm, te)
    warm = run(_bounded(cfg, 0, 1, w), codes, labels, tm, te, model_in=w)
    assert not np.array_equal(cold.models, warm.models)
    with pytest.raises(ValueError, match="model_in"):
        run(_bounded(cfg, 0, 1, w), codes, labels, tm, te)


def test_a_start_past_the_schedule_is_bad_start():
    cfg, codes, labels, tm, te = _case()
    assert _bounded(cfg, 12, 1).error(100) is ErrorCode.BAD_START
    assert _bounded(cfg, 11, 1).error(100) is ErrorCode.NONE
    with pytest.raises(ValueError, match="BAD_START"):
        run(_bounded(cfg, 12, 0), codes, labels, tm, te)


@pytest.mark.parametrize("extra", [
    dict(loss=1, l2=1 << 20),                                                       # logistic, naive, L2
    dict(loss=2, estimator=1, degree=1, margin_range=1, poly=(1 << 22, -(1 << 23))),  # hinge, Chebyshev: 2 factors
])
def test_cut_runs_of_the_other_losses_are_the_uncut_run(extra):
    """Issue 13's losses read copies (e + j) mod K per factor j: cut runs keep that too."""
    import dataclasses

    cfg, codes, labels, tm, te = _case()
    cfg = dataclasses.replace(cfg, **extra)
    whole = run(cfg, codes, labels, tm, te)
    models, losses = _epoch_view(cfg, _pieces(cfg, codes, labels, tm, te, [3, 5, 6, 11, 12]))
    assert np.array_equal(models, whole.models)
    assert losses == whole.losses
