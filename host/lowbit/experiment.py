"""One training run on a backend, summarised the same way for all of them.

Backends
--------
``float``   float64 minibatch SGD on the unquantized, normalised data (NumPy, timed on this CPU):
            float64 arithmetic on the float32 features, a minibatch at a time.
``golden``  the golden model (the engine's exact integer arithmetic, in NumPy).
``sim``     the Verilated engine in a separate simulator process, driven through ``lowbit.driver``.

The sim and golden backends give identical models for the same seed; the float backend is the
full-precision reference. Losses are the mean squared residual on the *normalised* training data
(features in [-1, 1], labels divided by max |y|), computed in float64 from each epoch's model
snapshot, so every backend is measured by the same ruler; with ``--loss logistic`` or ``hinge``
(issue 13) they are that loss's mean over the training rows (without the L2 term).

Memory (issue 15): the prepared features are float32, normalised in place in the array the loader
allocated with room for the intercept column (``lowbit.data.column_room``); every pass over them
here (losses, metrics) works a block of rows at a time in float64, so a run holds the float32
data, its packed copies and blocks of working memory, never a float64 copy of the data.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np

from .data import BLOCK_VALUES, Dataset, DrawnRows, row_blocks

#: The engine clock that nextpnr last measured for the board build: the routed fmax of the engine
#: ("sync") clock in ``make bitstream``'s report (build/bitstream/report.txt), whose MEASURED_FMAX_MHZ line is
#: the assignment to paste here. Every modelled engine time uses it unless the user states another
#: clock. Update it, with the commit that changes the datapath, from a new run; README.md and
#: docs/board.md quote it, and tests/test_fmax_docs.py holds them to it.
#: 62.2 MHz: ``make bitstream`` on the twelfth pass's board core (the board's global buffers, DCCAs,
#: locked to DCC sites + 4 registered copies of the gradient unit's group operands), 2026-12-02,
#: session 12: the bitstream is packed from seed 1, the fastest seed (62.20 MHz); seed 2 routed at
#: 50.78 MHz, seed 3 did not route within 35 minutes (docs/board.md). Before: 54.5 MHz (seed 2 of the
#: tenth pass's core, e), 42.5 MHz (seed 1 of the eighth pass's core) before that, and 57.4 MHz (the
#: older planes-core board build's fmax) before those.
MEASURED_FMAX_MHZ = 62.2
#: The anchor's clock (ZipML-XeonFPGA's HARP user clock, 200 MHz). Never a default: any figure at
#: this clock must be labelled an assumption, next to the one at MEASURED_FMAX_MHZ.
ASSUMED_HARP_FMAX_MHZ = 200.0
DEFAULT_FMAX_MHZ = MEASURED_FMAX_MHZ


def describe_clock(fmax_mhz: float) -> str:
    """The clock of a modelled engine time, labelled the one way every table and plot labels it.

    The measured fmax is named as measured, the HARP clock as an assumption, and any other value
    as a clock the user stated (``--fmax``), so no printed time passes an unmeasured clock off as
    a measured one.
    """
    if fmax_mhz == MEASURED_FMAX_MHZ:
        return f"{fmax_mhz:g} MHz, the fmax make bitstream measured"
    if fmax_mhz == ASSUMED_HARP_FMAX_MHZ:
        return f"{fmax_mhz:g} MHz, an assumed clock (ZipML's HARP clock), not measured"
    return f"{fmax_mhz:g} MHz, a clock stated with --fmax, not measured"


@dataclass
class Prepared(Dataset):
    """A data set normalised into the engine's ranges (features in [-1, 1] as float32, |y| <= 1),
    with its test split if it has one, and the Normalizer that maps a trained model back to
    original units."""

    normalizer: object = None


#: ``--holdout`` splits with this seed, not ``--seed``: runs that differ in their quantization seed
#: are then scored on the same test rows.
HOLDOUT_SEED = 13


def holdout_split(ds, fraction: float, *, in_place: bool = False):
    """``ds`` with a random ``fraction`` of its training rows (seeded by HOLDOUT_SEED) as its test
    set, replacing any test split it had.

    ``in_place``: if ``ds.X`` was loaded with room for the intercept column
    (``lowbit.data.column_room``), the training rows are moved to the front of that array instead
    of copied (``ds.X`` is overwritten), and both parts keep the room; ``prepare`` does this.
    """
    import dataclasses

    if not 0 < fraction < 1:
        raise ValueError(f"--holdout takes a fraction in (0, 1), got {fraction!r}")
    n_test = int(round(fraction * ds.rows))
    if not 1 <= n_test < ds.rows:
        raise ValueError(f"--holdout {fraction:g} of {ds.rows} rows leaves no test or no training rows")
    perm = np.random.default_rng(HOLDOUT_SEED).permutation(ds.rows)
    test, train = np.sort(perm[:n_test]), np.sort(perm[n_test:])
    from .data import column_room

    extra = 1
    room = column_room(ds.X, extra) if in_place else None
    X_test = ds.X[test]
    if X_test.dtype == np.float32 and room is not None:  # loaded with room for the intercept: keep it
        buf = np.empty((n_test, ds.features + extra), np.float32)
        buf[:, : ds.features] = X_test
        X_test = buf[:, : ds.features]
    if room is None:
        return dataclasses.replace(ds, X=ds.X[train], y=ds.y[train], X_test=X_test, y_test=ds.y[test])
    # The training rows moved to the front of the loader's array, a block at a time (row train[i]
    # >= i, so no row is overwritten before it is read): no second copy of the data.
    step = max(1, BLOCK_VALUES // room.shape[1])
    for i in range(0, train.size, step):
        rows = train[i : i + step]
        room[i : i + rows.size] = room[rows]
    return dataclasses.replace(ds, X=room[: train.size, : ds.features], y=ds.y[train], X_test=X_test,
                               y_test=ds.y[test])


def prepare(spec: str, *, seed: int = 0, max_features: int | None = None, test: str | None = None,
            holdout: float | None = None) -> Prepared:
    """Load, split and normalise a data set. ``test`` (a LIBSVM file) or ``holdout`` (a fraction of
    the training rows) replaces the data set's own test split."""
    from .data import Normalizer, column_room, load_dataset, load_test_libsvm

    if test is not None and holdout is not None:
        raise ValueError("give --test or --holdout, not both")
    # The intercept column the Normalizer appends counts against the engine's limit: checked
    # here, before the data is generated or densified.
    ds = load_dataset(spec, seed=seed, max_features=max_features, extra_columns=1)
    if holdout is not None:
        ds = holdout_split(ds, holdout, in_place=True)
    elif test is not None:
        import dataclasses

        Xt, yt = load_test_libsvm(test, features=ds.features, task=ds.task, extra_columns=1)
        ds = dataclasses.replace(ds, X_test=Xt, y_test=yt)
    norm = Normalizer().fit(ds.X, ds.y)
    # In place where the loader left room for the intercept column (synthetic, LIBSVM): the raw
    # float32 features become the normalised ones, no second copy.
    X = norm.transform_X(ds.X, out=column_room(ds.X, norm.features_out - ds.features))
    y = norm.transform_y(ds.y)
    if max_features is not None and X.shape[1] > max_features:
        raise ValueError(f"{ds.name} has {X.shape[1]} features (with the intercept column); "
                         f"this engine takes at most {max_features}")
    Xt = yt = None
    if ds.X_test is not None:
        Xt = norm.transform_X(ds.X_test, out=column_room(ds.X_test, norm.features_out - ds.features))
        yt = norm.transform_y(ds.y_test)
    return Prepared(name=ds.name, X=X, y=y, X_test=Xt, y_test=yt, task=ds.task, normalizer=norm)


@dataclass
class RunSummary:
    """What one run produced; ``to_json()`` is the CLI's machine-readable output."""

    label: str
    backend: str
    bits: int | None
    levels: str | None
    epochs: int
    batch: int
    step: float
    train_loss: list[float]
    engine_loss: list[float] | None = None
    test_metric: float | None = None
    metric_name: str | None = None
    cycles: int | None = None
    epoch_cycles: list[int] | None = None
    lines_read: int | None = None
    lines_per_cycle: float | None = None
    stall_cycles: int | None = None
    fmax_mhz: float | None = None
    elapsed_s: list[float] = field(default_factory=list)  # cumulative modelled (engine) or measured (float) time per epoch
    bytes_per_epoch: int | None = None
    wall_s: float = 0.0
    host_s: float | None = None  # quantize + pack into the engine's lines, before the run (not in wall_s)
    model_path: str | None = None
    model: np.ndarray | None = None  # final model in normalised units (float64)
    loss: str = "squared"  # issue 13: lowbit.contract.losses.LossConfig of the run
    estimator: str = "naive"
    degree: int | None = None  # the Chebyshev estimator's; None for naive
    l2: float = 0.0

    def to_json(self) -> dict:
        d = asdict(self)
        d.pop("model")
        return d


def predict(X, models) -> np.ndarray:
    """``models @ X.T`` in float64 (``(len(models), N)``; ``(N,)`` for one model), a block of rows
    of ``X`` at a time: float32 features are widened per block, never as a whole copy."""
    models = np.asarray(models, dtype=np.float64)
    one = models.ndim == 1
    models = np.atleast_2d(models)
    X = X if isinstance(X, DrawnRows) else np.asarray(X)  # drawn rows: a block at a time
    z = np.empty((models.shape[0], X.shape[0]))
    for rows in row_blocks(X):
        z[:, rows] = models @ X[rows].T.astype(np.float64)
    return z[0] if one else z


def _metrics(p: Prepared, w: np.ndarray) -> tuple[float | None, str | None]:
    if p.X_test is None:
        return None, None
    pred = predict(p.X_test, w)
    if p.task == "classification":
        return float(np.mean(np.sign(pred) == np.sign(p.y_test))), "test accuracy"
    return float(np.mean((pred - p.y_test) ** 2)), "test MSE"


def training_loss(X, y, models, loss: str = "squared") -> np.ndarray:
    """Each model's mean training loss on full-precision data: the mean squared residual, or the
    mean logistic / hinge loss of the margins (``lowbit.contract.losses``). Summed in float64 a
    block of rows at a time (no ``(models, N)`` array, no float64 copy of ``X``)."""
    models = np.atleast_2d(np.asarray(models, dtype=np.float64))
    X = np.asarray(X)
    y = np.asarray(y, dtype=np.float64)
    if loss != "squared":
        from .contract.losses import Loss, label_signs, loss_value

        signs = label_signs(y)
    total = np.zeros(models.shape[0])
    for rows in row_blocks(X):
        z = models @ X[rows].T.astype(np.float64)
        if loss == "squared":
            z -= y[rows]
            total += np.einsum("ij,ij->i", z, z)
        else:
            total += loss_value(Loss[loss.upper()], z * signs[rows]).sum(axis=1)
    return total / X.shape[0]


def _losses(p: Prepared, models: np.ndarray, loss: str = "squared") -> list[float]:
    return [float(v) for v in training_loss(p.X, p.y, models, loss)]


def _loss_fields(loss) -> dict:
    if loss is None:
        return {}
    return dict(loss=loss.loss, estimator=loss.estimator, degree=loss.degree if loss.chebyshev else None,
                l2=float(loss.l2))


def run_float(p: Prepared, *, step: float, batch: int, epochs: int, loss=None) -> RunSummary:
    """float64 SGD; ``loss`` a :class:`lowbit.contract.losses.LossConfig` (None: least squares)."""
    from lowbit.contract.golden import reference_sgd

    name_ = "squared" if loss is None else loss.loss
    t0 = time.perf_counter()
    models, _ = reference_sgd(p.X, p.y, step=step, batch=batch, epochs=epochs, loss=name_,
                              l2=0.0 if loss is None else loss.l2)
    wall = time.perf_counter() - t0
    metric, name = _metrics(p, models[-1])
    fields = _loss_fields(loss)
    if fields:  # float64 evaluates the loss's derivative exactly: no estimator
        fields.update(estimator="exact", degree=None)
    return RunSummary(
        label="float64", backend="float", bits=None, levels=None, epochs=epochs, batch=batch, step=step,
        train_loss=_losses(p, models, name_), test_metric=metric, metric_name=name,
        elapsed_s=[wall * (e + 1) / epochs for e in range(epochs)],
        bytes_per_epoch=int(p.X.size * 4), wall_s=wall, model=models[-1], **fields,
    )


def quantize(p: Prepared, *, bits: int, levels: str, copies: int, seed: int, line_bits: int = 512,
             max_features: int | None = None, progress: bool = False, layout: str = "planes"):
    """``QuantizedDataset.build`` of the prepared data; ``layout`` is the target engine's."""
    from .dataset import QuantizedDataset

    return QuantizedDataset.build(p.X, p.y, bits=bits, levels=levels, copies=copies, seed=seed,
                                  line_bits=line_bits, max_features=max_features, progress=progress, layout=layout)


#: Rows that :func:`warm_quantizer` quantizes: enough for every kernel of the path, too few to time.
WARM_ROWS = 64


def warm_quantizer(p: Prepared, *, levels: str, line_bits: int = 512, max_features: int | None = None,
                   layout: str = "planes") -> float:
    """Seconds to run :func:`quantize`'s path once on ``p``'s first :data:`WARM_ROWS` rows.

    The quantizer's kernels are numba functions cached on disk: a machine's first run compiles
    them (seconds), later runs load them (a fraction of one). Callers that time :func:`quantize`
    call this first, so that the one-time cost is reported as itself and not charged to whichever
    precision happened to run first. One call covers every ``bits`` (it is a run-time argument of
    the kernels); ``levels`` and ``layout`` choose the kernels, so they must be the timed call's.
    """
    from .dataset import QuantizedDataset

    n = min(p.rows, WARM_ROWS)
    t0 = time.perf_counter()
    QuantizedDataset.build(p.X[:n], p.y[:n], bits=2, levels=levels, copies=1, seed=0, line_bits=line_bits,
                           max_features=max_features, layout=layout)
    return time.perf_counter() - t0


def run_engine(p: Prepared, qds, *, backend: str, step: float, batch: int, epochs: int,
               device=None, fmax_mhz: float = DEFAULT_FMAX_MHZ, levels_name: str = "",
               progress: bool = False, loss=None, model_delay: int = 0) -> RunSummary:
    """Train on the golden model or the simulated engine (``device`` from ``lowbit.driver``).

    With ``p`` None (a saved QuantizedDataset trained without its float data) the training loss
    is the engine's own loss accumulator and there is no test metric. ``loss`` is a
    :class:`lowbit.contract.losses.LossConfig` (None: least squares); the sim and serial backends refuse
    one their RTL does not implement. ``model_delay`` 1 trains with pipelined SGD (MODEL_DELAY).
    """
    from lowbit.contract.fixed import loss_to_float, model_to_float

    t0 = time.perf_counter()
    if backend == "golden":
        from .driver.train import train_golden

        res = train_golden(qds, step=step, batch=batch, epochs=epochs, loss=loss, model_delay=model_delay)
    elif backend in ("sim", "serial"):
        from .driver.train import train

        if device is None:
            raise ValueError(f"the {backend} backend needs an open device")
        res = train(device, qds, step=step, batch=batch, epochs=epochs, progress=progress, loss=loss,
                    model_delay=model_delay)
    else:
        raise ValueError(f"unknown engine backend {backend!r} (golden, sim or serial)")
    wall = time.perf_counter() - t0
    models = model_to_float(res.models)
    engine_loss = [loss_to_float(a, qds.rows) for a in res.losses]
    metric, name = _metrics(p, models[-1]) if p is not None else (None, None)
    loss_name = "squared" if loss is None else loss.loss
    suffix = "" if loss is None else loss.describe()
    summary = RunSummary(
        label=f"b={qds.fmt.bits} {levels_name} {suffix}".strip().replace("  ", " "), backend=backend,
        bits=qds.fmt.bits, levels=levels_name or None, epochs=epochs, batch=batch, step=step,
        train_loss=_losses(p, models, loss_name) if p is not None else engine_loss, **_loss_fields(loss),
        engine_loss=engine_loss,
        test_metric=metric, metric_name=name,
        # The Chebyshev estimator reads d + 1 copies of every row per epoch.
        bytes_per_epoch=int((1 if loss is None else loss.samples()) * qds.fmt.bytes_per_copy(qds.rows)
                            + qds.fmt.label_lines(qds.rows) * qds.fmt.line_bytes),
        wall_s=wall, model=models[-1],
    )
    if getattr(res, "cycles", None):
        summary.cycles = int(res.cycles)
        summary.epoch_cycles = [int(c) for c in res.epoch_cycles]
        summary.lines_read = int(res.read_lines)
        summary.stall_cycles = int(res.stall_cycles)
        summary.lines_per_cycle = res.read_lines / res.cycles
        summary.fmax_mhz = fmax_mhz
        summary.elapsed_s = [c / (fmax_mhz * 1e6) for c in summary.epoch_cycles]
    return summary


def auto_step(X, batch: int) -> float:
    """Half the largest stable step: ``0.5 / (B * mean ||x||^2)`` bounds ``step * B * lambda_max``.
    Summed in float64 a block of rows at a time (no copy of ``X``). ``lowbit train``'s ``--step auto``."""
    X = np.asarray(X)
    total = 0.0
    for rows in row_blocks(X):
        block = X[rows].astype(np.float64)
        total += float(np.einsum("ij,ij->", block, block))
    r2 = total / X.shape[0]
    return 0.5 / (batch * max(r2, 1e-12))
