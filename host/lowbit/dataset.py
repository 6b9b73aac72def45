"""A data set quantized for the engine: K double-sampled copies, labels, level table, packed lines.

Fresh randomness per epoch comes from ``K`` independently quantized copies cycled over epochs
(epoch ``e`` reads copy ``e mod K``, the engine's COPIES register). Memory cost: ``K`` times one
copy's ``lines_per_copy(N) * W / 8`` bytes of host memory (about ``K * N * F * (b+1) / 8``), against
re-quantizing between epochs, which would need the full-precision data (4 bytes per value) and a
host pass per epoch. See docs/quantization.md.
"""

from __future__ import annotations

import dataclasses
import os
import sys

import numpy as np

from .fastquant import finite_abs_max, max_code, pack_codes_fast, quantize_pack, unpack_codes_fast
from .contract.fixed import MODEL_FRAC, labels_to_fixed
from .contract.format import FORMAT_VERSION, LineFormat, check_bits, pack_words
from .contract.levels import make_levels
from .contract.quant import check_finite, code_table, levels_to_fixed
from .contract.registers import MAX_COPIES

#: Revision of the .npz container written by :meth:`QuantizedDataset.save`.
FILE_VERSION = 1
#: Optimal levels are placed using at most this many values (a seeded sample beyond it).
_LEVEL_SAMPLE = 1 << 22
_RANGE_TOL = 1e-9


def fit_levels(X, levels, bits: int, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """``(levels, kind)`` for ``QuantizedDataset.build``: optimal levels are fitted to ``X``'s values
    (a sample of ``_LEVEL_SAMPLE`` drawn from ``rng`` if there are more); ``kind`` is ``"uniform"``,
    ``"optimal"`` or ``"custom"`` (an array of levels)."""
    kind = levels if isinstance(levels, str) else "custom"
    values = None
    if isinstance(levels, str) and levels == "optimal":
        values = np.asarray(X).ravel()
        if values.size > _LEVEL_SAMPLE:
            values = values[rng.integers(0, values.size, _LEVEL_SAMPLE)]
    return make_levels(levels, bits, values), kind


def _positive_int(name, value, hi=None):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1 or (hi and value > hi):
        raise ValueError(f"{name} must be an integer in 1..{hi if hi else 'inf'}, got {value!r}")
    return int(value)


class QuantizedDataset:
    """Double-sampled copies of a normalised data set, in the engine's formats.

    Build with :meth:`build` (from normalised float data) or :meth:`load` (from :meth:`save`).

    Attributes
    ----------
    fmt : LineFormat
    levels : ndarray, float64, (2^b,)
        The level set asked for; ``levels_q`` is what the engine uses.
    levels_q : ndarray, int16, (2^b,)
    table_m, table_e : ndarray, int64, (2^(b+1) - 1,)
        The code table (``lowbit.contract.quant.code_table``).
    codes : ndarray, uint16, (copies, N, F)
    labels_q : ndarray, int32, (N,)
    rows, features, copies : int
    seed : int or None
    level_kind : str
        ``"uniform"``, ``"optimal"`` or ``"custom"``.
    """

    def __init__(self, *, fmt: LineFormat, levels, levels_q, labels_q, codes=None, lines=None, seed=None,
                 level_kind="custom"):
        self.fmt = fmt
        self.levels = np.asarray(levels, dtype=np.float64)
        self.levels_q = np.asarray(levels_q, dtype=np.int16)
        self.table_m, self.table_e = code_table(self.levels_q)
        self.labels_q = np.asarray(labels_q, dtype=np.int32)
        self.rows, self.features = self.labels_q.shape[0], fmt.features
        if (codes is None) == (lines is None):
            raise ValueError("give either codes (copies, N, F) or packed lines")
        self._codes = None if codes is None else np.asarray(codes, dtype=np.uint16)
        self._lines: np.ndarray | None = lines
        if self._codes is not None:
            self.copies, self.rows, self.features = self._codes.shape
        else:
            self.copies = lines.shape[0] // fmt.lines_per_copy(self.rows)
        self.seed = seed
        self.level_kind = level_kind
        self._relaid: tuple[LineFormat, np.ndarray] | None = None  # packed in an engine's other layout

    @property
    def codes(self) -> np.ndarray:
        """``(copies, N, F)`` uint16 codes, unpacked from the lines on first use (2 bytes per value
        and copy: the fast paths never need them, they read :meth:`data_lines`)."""
        if self._codes is None:
            per = self.fmt.lines_per_copy(self.rows)
            self._codes = np.stack([unpack_codes_fast(self._lines[k * per : (k + 1) * per], self.fmt, self.rows)
                                    for k in range(self.copies)])
        return self._codes

    # -------------------------------------------------------------------------------- build
    @classmethod
    def build(cls, X, y, *, bits: int, levels="uniform", copies: int = 1, seed: int = 0, line_bits: int = 512,
              max_features: int | None = None, progress: bool = True, layout: str = "planes") -> "QuantizedDataset":
        """Quantize normalised data (``X`` in [-1, 1], ``|y| <= 1``) into ``copies`` copies.

        Parameters
        ----------
        X : array_like, (N, F)
            Features already normalised to [-1, 1] (:class:`lowbit.data.Normalizer`).
        y : array_like, (N,)
            Labels with ``|y| <= 1``.
        bits : int
            1..8.
        levels : "uniform", "optimal" or array
            The level set; optimal levels are fitted to ``X``'s values (a seeded sample of
            ``2^22`` values if there are more).
        copies : int
            Independently double-sampled copies K (1..MAX_COPIES); epoch e reads copy e mod K.
        seed : int or numpy.random.Generator
            Seeds one ``numpy.random.Generator`` for the level sample and all copies (a Generator
            is used as is; the saved file then records no seed).
        line_bits : int
            Line width W of the target engine.
        max_features : int, optional
            The engine's MAX_FEATURES; more features is an error.
        progress : bool
            A tqdm bar over the quantization (shown only on a terminal).
        layout : str
            The line layout to pack in (``LineFormat.layout``): the target engine's, so that the
            copies are quantized and packed in one pass (``lowbit.driver.train.engine_layout``).
            The codes do not depend on it.

        Raises
        ------
        ValueError
            NaN/inf, empty data, bits outside 1..8, X outside [-1, 1], |y| > 1, F > max_features,
            bad copies; the message names the problem.
        """
        bits = check_bits(bits)
        copies = _positive_int("copies", copies, MAX_COPIES)
        X = np.asarray(X)
        if X.ndim != 2:
            raise ValueError(f"X must be 2-D (rows, features), got shape {X.shape}")
        if X.shape[0] == 0 or X.shape[1] == 0:
            raise ValueError(f"data is empty (X has shape {X.shape})")
        if X.dtype not in (np.float32, np.float64):
            X = X.astype(np.float64)
        # One compiled pass, no float64 copy: float32 data is quantized as it is (exactly, see fastquant).
        xmax = finite_abs_max(X, "X")
        y = check_finite(y, "y")
        if y.shape != (X.shape[0],):
            raise ValueError(f"y must have shape ({X.shape[0]},), got {y.shape}")
        n, f = X.shape
        if max_features is not None and f > max_features:
            raise ValueError(f"{f} features exceed max_features = {max_features}")
        if xmax > 1 + _RANGE_TOL:
            raise ValueError(f"X must be normalised to [-1, 1] (lowbit.data.Normalizer); max |x| = {xmax:.6g}")
        ymax = float(np.max(np.abs(y)))
        if ymax > 1 + _RANGE_TOL:
            raise ValueError(f"y must be normalised to [-1, 1] (lowbit.data.Normalizer); max |y| = {ymax:.6g}")
        fmt = LineFormat(bits=bits, features=f, line_bits=line_bits, layout=layout)
        rng = np.random.default_rng(seed)

        lv, kind = fit_levels(X, levels, bits, rng)
        levels_q = levels_to_fixed(lv)

        per = fmt.lines_per_copy(n)
        lines = np.empty((copies * per, fmt.line_bytes), dtype=np.uint8)
        # One key for all copies: an int seed, or one draw from a Generator (then reproducible from its state).
        key_seed = int(rng.integers(0, 1 << 63)) if isinstance(seed, np.random.Generator) else int(seed)
        from tqdm.auto import tqdm

        show = progress and sys.stderr.isatty()
        with tqdm(total=copies * X.nbytes, desc="quantize", unit="B", unit_scale=True, disable=not show) as bar:
            row_bytes = X.nbytes // n
            for k in range(copies):
                quantize_pack(X, fmt, levels_q, seed=key_seed, copy=k, out=lines[k * per : (k + 1) * per],
                              progress=lambda r: bar.update(r * row_bytes))
        return cls(fmt=fmt, levels=lv, levels_q=levels_q, lines=lines, labels_q=labels_to_fixed(y),
                   seed=None if isinstance(seed, np.random.Generator) else int(seed), level_kind=kind)

    # -------------------------------------------------------------------------------- lines
    def data_lines(self, fmt: LineFormat | None = None) -> np.ndarray:
        """All copies packed, ``(copies * lines_per_copy(N), line_bytes)`` uint8; copy k at k * lines_per_copy.

        ``fmt`` asks for the same codes in another layout (an engine's, ``LineFormat.layout``):
        they are re-packed (compiled, :func:`lowbit.fastquant.pack_codes_fast`) and kept. Build
        in the engine's layout (``build(layout=...)``) to quantize straight into it instead."""
        if fmt is None or fmt == self.fmt:
            if self._lines is None:
                per = self.fmt.lines_per_copy(self.rows)
                out = np.empty((self.copies * per, self.fmt.line_bytes), dtype=np.uint8)
                for k in range(self.copies):
                    out[k * per : (k + 1) * per] = pack_codes_fast(self._codes[k], self.fmt)
                self._lines = out
            return self._lines
        if self._relaid is None or self._relaid[0] != fmt:
            per = fmt.lines_per_copy(self.rows)
            out = np.empty((self.copies * per, fmt.line_bytes), dtype=np.uint8)
            own = self.fmt.lines_per_copy(self.rows)
            for k in range(self.copies):  # a copy's codes at a time, not all copies' (2 bytes per value each)
                codes = (self._codes[k] if self._codes is not None
                         else unpack_codes_fast(self._lines[k * own : (k + 1) * own], self.fmt, self.rows))
                out[k * per : (k + 1) * per] = pack_codes_fast(codes, fmt)
            self._relaid = (fmt, out)
        return self._relaid[1]

    def label_lines(self) -> np.ndarray:
        """Labels as int32 words, ``(label_lines(N), line_bytes)`` uint8."""
        return pack_words(self.labels_q, self.fmt.line_bits)[: self.fmt.label_lines(self.rows)]

    def nbytes_streamed_per_epoch(self) -> int:
        """Bytes the engine reads per epoch: one copy of the data plus the labels."""
        return self.fmt.bytes_per_copy(self.rows) + self.fmt.label_lines(self.rows) * self.fmt.line_bytes

    def nbytes_host(self) -> int:
        """Host memory of the packed copies and labels (the K-copies memory cost)."""
        return self.copies * self.fmt.bytes_per_copy(self.rows) + self.fmt.label_lines(self.rows) * self.fmt.line_bytes

    def __repr__(self):
        return (f"QuantizedDataset({self.rows} x {self.features}, b={self.fmt.bits}, {self.level_kind} levels, "
                f"{self.copies} copies, W={self.fmt.line_bits})")

    # -------------------------------------------------------------------------------- files
    def save(self, path) -> None:
        """One .npz: packed lines, labels, levels, and the metadata to check them on load.

        The file holds the ``planes`` layout (its FORMAT_VERSION), whatever layout the data set
        was built in."""
        planes = dataclasses.replace(self.fmt, layout="planes")
        np.savez(
            path,
            file_version=np.int64(FILE_VERSION),
            format_version=np.int64(FORMAT_VERSION),
            bits=np.int64(self.fmt.bits),
            line_bits=np.int64(self.fmt.line_bits),
            rows=np.int64(self.rows),
            features=np.int64(self.features),
            copies=np.int64(self.copies),
            seed=np.int64(-1 if self.seed is None else self.seed),
            level_kind=np.str_(self.level_kind),
            levels=self.levels,
            levels_q=self.levels_q,
            data=self.data_lines(planes),
            labels_q=self.labels_q,
        )

    @classmethod
    def write_file(cls, path, X, y, *, bits: int, levels_q, levels, level_kind: str, copies: int = 1, seed: int = 0,
                   line_bits: int = 512, transform=None, features: int | None = None,
                   progress: bool = True) -> LineFormat:
        """Quantize ``X`` straight into a :meth:`save`-format file, never holding a whole copy.

        The packed lines of each copy are streamed into the ``.npz`` (an uncompressed zip of
        ``.npy`` members, what :meth:`load` reads) one super-chunk at a time, so memory is the
        working set of :func:`lowbit.fastquant.quantize_pack`, whatever the data's size. ``X`` may
        be a memmap of raw data with ``transform`` normalising each chunk
        (:meth:`lowbit.data.Normalizer.transform_X`); ``y`` must already be normalised.
        ``features`` is the column count after ``transform`` (default: X's). Returns the LineFormat written.
        """
        import zipfile

        from tqdm.auto import tqdm

        y = check_finite(y, "y")
        n = y.shape[0]
        fmt = LineFormat(bits=check_bits(bits), features=X.shape[1] if features is None else features,
                         line_bits=line_bits)
        copies = _positive_int("copies", copies, MAX_COPIES)
        if X.shape[0] != n:
            raise ValueError(f"X has {X.shape[0]} rows, y has {n}")
        per = fmt.lines_per_copy(n)
        meta = dict(file_version=np.int64(FILE_VERSION), format_version=np.int64(FORMAT_VERSION),
                    bits=np.int64(fmt.bits), line_bits=np.int64(line_bits), rows=np.int64(n),
                    features=np.int64(fmt.features), copies=np.int64(copies), seed=np.int64(seed),
                    level_kind=np.str_(level_kind), levels=np.asarray(levels, np.float64),
                    levels_q=np.asarray(levels_q, np.int16), labels_q=labels_to_fixed(y))
        row_bytes = X.dtype.itemsize * X.shape[1]
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            for key, arr in meta.items():
                with zf.open(f"{key}.npy", "w") as fh:
                    np.lib.format.write_array(fh, np.asanyarray(arr), allow_pickle=False)
            with zf.open("data.npy", "w", force_zip64=True) as fh, \
                    tqdm(total=copies * n * row_bytes, desc="quantize", unit="B", unit_scale=True,
                         disable=not progress) as bar:
                np.lib.format.write_array_header_2_0(fh, {"descr": "|u1", "fortran_order": False,
                                                          "shape": (copies * per, fmt.line_bytes)})
                for k in range(copies):
                    quantize_pack(X, fmt, levels_q, seed=seed, copy=k, transform=transform,
                                  sink=lambda lines: fh.write(lines.tobytes()),
                                  progress=lambda r: bar.update(r * row_bytes))
        return fmt

    @classmethod
    def load(cls, path) -> "QuantizedDataset":
        """Read :meth:`save`'s file; ValueError naming the file and the problem if it is not valid."""
        name = os.fspath(path)
        try:
            with np.load(name, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except FileNotFoundError:
            raise
        except Exception as exc:  # truncated or not an npz: zipfile/EOF/pickle errors
            raise ValueError(f"{name}: not a readable lowbit dataset file ({type(exc).__name__}: {exc})") from None

        def need(key):
            if key not in arrays:
                raise ValueError(f"{name}: missing array {key!r} (not a lowbit dataset file, or truncated)")
            return arrays[key]

        def scalar(key):
            a = need(key)
            if a.shape != () or not np.issubdtype(a.dtype, np.integer):
                raise ValueError(f"{name}: {key!r} must be an integer scalar, got {a.dtype} {a.shape}")
            return int(a)

        if scalar("file_version") != FILE_VERSION:
            raise ValueError(f"{name}: file version {scalar('file_version')}, this lowbit reads version {FILE_VERSION}")
        if scalar("format_version") != FORMAT_VERSION:
            raise ValueError(f"{name}: packed with line format version {scalar('format_version')}, "
                             f"this lowbit uses version {FORMAT_VERSION}")
        try:
            fmt = LineFormat(bits=scalar("bits"), features=scalar("features"), line_bits=scalar("line_bits"))
            rows = _positive_int("rows", scalar("rows"))
            copies = _positive_int("copies", scalar("copies"), MAX_COPIES)
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None
        per = fmt.lines_per_copy(rows)
        data = need("data")
        if data.dtype != np.uint8 or data.shape != (copies * per, fmt.line_bytes):
            raise ValueError(f"{name}: packed data has shape {data.shape} ({data.dtype}), expected "
                             f"{(copies * per, fmt.line_bytes)} uint8 for {copies} copies of {rows} rows")
        labels_q = need("labels_q")
        if labels_q.shape != (rows,) or labels_q.dtype != np.int32:
            raise ValueError(f"{name}: labels have shape {labels_q.shape} ({labels_q.dtype}), expected ({rows},) int32")
        levels, levels_q = need("levels"), need("levels_q")
        if levels.shape != (1 << fmt.bits,) or levels_q.shape != levels.shape:
            raise ValueError(f"{name}: level table has {levels_q.size} entries, {fmt.bits} bits need {1 << fmt.bits}")
        try:
            expect_q = levels_to_fixed(levels)
        except ValueError as exc:
            raise ValueError(f"{name}: bad levels: {exc}") from None
        if not np.array_equal(expect_q, levels_q):
            raise ValueError(f"{name}: levels_q does not match levels (inconsistent level table)")
        if np.abs(labels_q.astype(np.int64)).max() > (1 << MODEL_FRAC):
            raise ValueError(f"{name}: labels out of range (|y| <= 1, i.e. |labels_q| <= 2^{MODEL_FRAC})")
        top = max_code(data, fmt, rows, copies)
        if top >= fmt.codes:
            raise ValueError(f"{name}: packed data holds code {top}, "
                             f"{fmt.bits}-bit codes are 0..{fmt.codes - 1} (corrupt data)")
        seed = scalar("seed")
        kind = str(need("level_kind"))
        if kind not in ("uniform", "optimal", "custom"):
            raise ValueError(f"{name}: unknown level kind {kind!r}")
        return cls(fmt=fmt, levels=levels, levels_q=levels_q, lines=data, labels_q=labels_q,
                   seed=None if seed < 0 else seed, level_kind=kind)
