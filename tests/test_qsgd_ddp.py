"""The QSGD DDP communication hook on 2 gloo processes: it averages the workers' decoded gradients,
keeps the replicas identical, counts the real message bytes, and training with it reduces the loss.

All checks run in one spawn of two workers (a spawn costs seconds of torch start-up); each worker
reports what it measured and the tests below assert on the reports.
"""

import socket

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.distributed as dist  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402

from lowbit.qsgd import bits_to_levels, dense_bits  # noqa: E402

WORLD = 2
STEPS = 40


def _data(rank):
    """A linearly separable 3-class problem in 20 dimensions; each rank has its own samples."""
    rng = np.random.default_rng(100 + rank)
    teacher = np.random.default_rng(0).standard_normal((20, 3))
    X = rng.standard_normal((STEPS * 16, 20)).astype(np.float32)
    y = (X @ teacher).argmax(1)
    return torch.from_numpy(X), torch.from_numpy(y)


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(20, 32), torch.nn.ReLU(), torch.nn.Linear(32, 3))


def _gather(t):
    out = [torch.empty_like(t) for _ in range(WORLD)]
    dist.all_gather(out, t.contiguous())
    return out


def _flat_grad(model):
    return torch.cat([p.grad.reshape(-1) for p in model.parameters()])


def _train(state, hook, X, y):
    from torch.nn.parallel import DistributedDataParallel as DDP

    model = DDP(_model())
    model.register_comm_hook(state, hook)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    losses = []
    for i in range(STEPS):
        xb, yb = X[i * 16:(i + 1) * 16], y[i * 16:(i + 1) * 16]
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(xb), yb)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    params = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    same = all(torch.equal(params, other) for other in _gather(params))
    return dict(first=float(np.mean(losses[:5])), last=float(np.mean(losses[-5:])),
                replicas_identical=same, bytes_sent=state.bytes_sent, messages=state.messages)


def _worker(rank, port, queue):
    from torch.nn.parallel import DistributedDataParallel as DDP

    from lowbit.qsgd.ddp import AllreduceState, QSGDState, allreduce_hook, gloo_worker, qsgd_hook

    torch.set_num_threads(1)
    with gloo_worker(rank, WORLD, port):           # leaves as every lowbit worker does (see there)
        report = {}
        try:
            X, y = _data(rank)
            loss_fn = torch.nn.functional.cross_entropy

            # 1. One backward pass: the hook's result against the exact average of local gradients.
            plain = _model()
            loss_fn(plain(X[:64]), y[:64]).backward()
            expected = torch.stack(_gather(_flat_grad(plain))).mean(0)
            for name, state, ddp_args in [
                    ("fine", QSGDState(s=2**20 - 1), {}),
                    ("4bit_elias", QSGDState(s=7, format="elias", seed=1), {}),
                    # ~1 KB buckets from the first pass on (DDP buckets by size from the start only
                    # when it looks for unused parameters): the 771 parameters come in 2 buckets
                    ("fine_buckets", QSGDState(s=2**20 - 1),
                     dict(bucket_cap_mb=0.001, find_unused_parameters=True))]:
                model = DDP(_model(), **ddp_args)
                model.register_comm_hook(state, qsgd_hook)
                loss_fn(model(X[:64]), y[:64]).backward()
                got = _flat_grad(model.module)
                report[name] = dict(
                    max_err=float((got - expected).abs().max()),
                    grad_norm=float(expected.norm()),
                    identical=all(torch.equal(got, g) for g in _gather(got)),
                    bytes_sent=state.bytes_sent, messages=state.messages,
                    n=got.numel())

            # 2. Training: fp32 allreduce, QSGD 4-bit dense, 8-bit Elias with error feedback.
            report["fp32"] = _train(AllreduceState(), allreduce_hook, X, y)
            report["q4"] = _train(QSGDState(s=bits_to_levels(4)), qsgd_hook, X, y)
            state = QSGDState(s=127, format="elias", error_feedback=True)
            report["q8_ef"] = _train(state, qsgd_hook, X, y)
            report["q8_ef"]["residuals"] = len(state.residuals)
            queue.put((rank, report))
        except Exception as exc:                       # report instead of hanging the parent
            queue.put((rank, {"error": repr(exc)}))
            raise


@pytest.fixture(scope="module")
def reports():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    queue = mp.get_context("spawn").SimpleQueue()
    mp.spawn(_worker, args=(port, queue), nprocs=WORLD, join=True)
    out = dict(queue.get() for _ in range(WORLD))
    for rank, rep in out.items():
        assert "error" not in rep, f"rank {rank}: {rep.get('error')}"
    return out


def test_hook_returns_the_average_of_the_workers_gradients(reports):
    for rep in reports.values():
        fine = rep["fine"]
        # s = 2**20 - 1: each coordinate within one level step (bucket norm / s) of the exact mean.
        assert fine["max_err"] <= fine["grad_norm"] / (2**20 - 1) * 2
        assert fine["identical"]
        coarse = rep["4bit_elias"]
        assert coarse["identical"]                   # every worker decodes the same bytes
        assert 0 < coarse["max_err"] <= coarse["grad_norm"]


def test_hook_averages_every_bucket_when_ddp_uses_several(reports):
    for rep in reports.values():
        r = rep["fine_buckets"]
        assert r["messages"] >= 2                    # one message per DDP bucket
        assert r["max_err"] <= r["grad_norm"] / (2**20 - 1) * 2
        assert r["identical"]


def test_bytes_sent_are_the_reduce_scatter_all_gather_frames(reports):
    """Dense buckets travel as headerless frames: the other worker's chunk out in the
    reduce-scatter, the own mean chunk in the all-gather (K = 2), never a whole message to all."""
    from lowbit.qsgd.exchange import ChunkCodec, fixed_bytes_sent

    for rank, rep in reports.items():
        fine = rep["fine"]
        codec = ChunkCodec(s=2**20 - 1, bucket_size=512, norm="l2")
        assert fine["bytes_sent"] == fine["messages"] * fixed_bytes_sent(fine["n"], WORLD, rank, codec)
        fp32, q4 = rep["fp32"], rep["q4"]
        assert fp32["bytes_sent"] == STEPS * 4 * fine["n"]   # a ring all-reduce at K = 2: the bucket once
        assert fp32["bytes_sent"] / q4["bytes_sent"] > 7     # 4 bits + a scale per 512 vs 32 bits


@pytest.mark.parametrize("run", ["fp32", "q4", "q8_ef"])
def test_training_loss_falls_and_replicas_agree(reports, run):
    for rep in reports.values():
        r = rep[run]
        assert r["last"] < 0.5 * r["first"], f"{run}: loss {r['first']:.3f} -> {r['last']:.3f}"
        assert r["replicas_identical"]


def test_error_feedback_keeps_one_residual_per_bucket(reports):
    r = reports[0]["q8_ef"]
    assert r["residuals"] == 1 and r["messages"] == STEPS    # this small model: one DDP bucket


def test_demo_runs_end_to_end(tmp_path, capsys):
    """`lowbit qsgd-demo`, one short configuration: it trains, prints the table, writes JSON."""
    import json

    from lowbit.cli import main

    rc = main(["qsgd-demo", "--models", "logreg", "--bits", "4", "--epochs", "1", "--seeds", "0",
               "--no-plot", "--out", str(tmp_path)])
    assert rc == 0
    out = json.loads((tmp_path / "qsgd_demo.json").read_text())
    rows = {r["bits"]: r for r in out["summary"]}
    assert set(rows) == {None, 4}
    assert rows[None]["test_accuracy"] > 0.8 and rows[4]["test_accuracy"] > 0.8
    assert rows[4]["compression"] > 7
    assert "fewer bytes" in capsys.readouterr().out


@pytest.mark.parametrize("args", [["--workers", "1"], ["--bits", "1"], ["--epochs", "0"]])
def test_demo_refuses_bad_arguments(args, capsys):
    from lowbit.qsgd.demo import main

    assert main(args) == 2
    assert "error" in capsys.readouterr().err


def test_bad_hook_configuration():
    from lowbit.qsgd.ddp import QSGDState

    with pytest.raises(ValueError, match="s"):
        QSGDState(s=0)
    with pytest.raises(ValueError, match="format"):
        QSGDState(s=7, format="gzip")
    with pytest.raises(ValueError, match="norm"):
        QSGDState(s=7, norm="l1")
    # Error feedback needs a contraction (variance bound < 1): with s = 1 the residual grows.
    with pytest.raises(ValueError, match="error feedback"):
        QSGDState(s=1, error_feedback=True)
    QSGDState(s=127, error_feedback=True)
