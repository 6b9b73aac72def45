"""``TrainingCore``: the engine's datapath and run control behind ``CoreSignature``."""

from __future__ import annotations

from amaranth import Module, Mux
from amaranth.hdl import ResetInserter
from amaranth.lib import wiring

from lowbit.contract.registers import Built

from ..interfaces import CoreSignature
from .code_table import CodeTable
from .decoder import BitPlaneDecoder
from .dot import DotPass
from .gradient import GradientPass
from .labels import LabelUnpacker
from .model_memory import ModelMemory
from .params import check_lanes, check_max_features
from .row_buffer import RowBuffer
from .sequencer import Sequencer

__all__ = ["TrainingCore"]


class TrainingCore(wiring.Component):
    #: The optional datapaths this core has (its BUILT register; the sequencer refuses the rest).
    built = Built.NONE

    """ZipML least-squares SGD on bit-plane packed double-sampled codes, bit-exact with
    ``lowbit.contract.golden.run`` (see ``docs/architecture.md``).

    ::

        data_lines -> BitPlaneDecoder -> DotPass ------------> residuals -> GradientPass
                                          |  ^  \\-> RowBuffer ------------------^   |
        label_lines -> LabelUnpacker -----/  |                                     |
                          CodeTable (port A) / ModelMemory (port A)  <- update <---/
                                             (port B) ----------------------------> (port B)

    Parameters
    ----------
    line_bits : int
        Width of lines (512 on CCI-P; 64..512 supported for small FPGAs and tests).
    lanes : int
        Codes per cycle: a power of two, 1..32 (``ROW_ALIGN``), dividing ``line_bits``.
    max_features : int
        Largest FEATURES accepted, a multiple of 32 (sizes the model, G and row buffer).

    Attributes
    ----------
    line_bits, lanes, max_features : int
        The build parameters (the CSR block reports them in CAPS).
    """

    def __init__(self, *, line_bits: int = 512, lanes: int = 32, max_features: int = 8192):
        try:
            check_lanes(line_bits, lanes)
            check_max_features(max_features)
        except ValueError:
            self._MustUse__silence = True  # a rejected core is not an unused one
            raise
        self.line_bits, self.lanes, self.max_features = line_bits, lanes, max_features
        self.row_beats_max = max_features // lanes
        self.row_buffer_depth = max(16, 1 << (2 * self.row_beats_max - 1).bit_length())
        super().__init__(CoreSignature(line_bits))

    def elaborate(self, platform):
        m = Module()
        W, L, RBM = self.line_bits, self.lanes, self.row_beats_max

        m.submodules.seq = seq = Sequencer(line_bits=W, lanes=L, max_features=self.max_features, built=self.built)
        m.submodules.table = table = CodeTable(lanes=L)
        m.submodules.model = model = ModelMemory(lanes=L, depth=RBM)
        dec = BitPlaneDecoder(line_bits=W, lanes=L)
        lab = LabelUnpacker(line_bits=W)
        rb = RowBuffer(lanes=L, depth=self.row_buffer_depth)
        dot = DotPass(lanes=L, row_beats_max=RBM, block_beats=W // L)
        grad = GradientPass(lanes=L, row_beats_max=RBM)
        # The datapath restarts from its reset state for every run (and after an abort); the
        # memories keep their contents (the code table must survive, the model is cleared).
        for name, block in (("decoder", dec), ("labels", lab), ("row_buffer", rb), ("dot", dot), ("gradient", grad)):
            m.submodules[name] = ResetInserter(seq.dp_rst)(block)

        # ---- run control
        m.d.comb += [seq.cfg.eq(self.cfg), seq.start.eq(self.start), seq.reset.eq(self.reset),
                     self.status.eq(seq.status), seq.write_idle.eq(self.write_idle),
                     seq.read_idle.eq(self.read_idle), self.flush.eq(seq.flush)]
        wiring.connect(m, wiring.flipped(self.data_cmd), seq.data_cmd)
        wiring.connect(m, wiring.flipped(self.label_cmd), seq.label_cmd)
        wiring.connect(m, wiring.flipped(self.write), seq.write)
        wiring.connect(m, wiring.flipped(self.table), table.table)

        # ---- lines in (drained, not decoded, while an abort waits for the shell)
        for src, dst, fire in ((self.data_lines, dec.lines, seq.data_fire),
                               (self.label_lines, lab.lines, seq.label_fire)):
            m.d.comb += [dst.valid.eq(src.valid & ~seq.drain), dst.payload.eq(src.payload),
                         src.ready.eq(dst.ready | seq.drain),
                         fire.eq(src.valid & src.ready & ~seq.drain)]
        m.d.comb += [dec.bits.eq(seq.bits), dec.load.eq(seq.epoch_start), dec.count.eq(seq.data_lines),
                     lab.load.eq(seq.epoch_start), lab.count.eq(seq.rows)]

        # ---- dot pass
        wiring.connect(m, dec.beats, dot.beats)
        wiring.connect(m, lab.labels, dot.labels)
        m.d.comb += [dot.features.eq(seq.features), dot.row_beats.eq(seq.row_beats), dot.rows.eq(seq.rows),
                     dot.batch.eq(seq.batch), dot.pad_beats.eq(seq.pad_beats), dot.start.eq(seq.epoch_start),
                     dot.running.eq(seq.running), dot.upd_written.eq(grad.upd_written),
                     table.a_addr.eq(dot.table_addr), dot.table_m.eq(table.a_m),
                     model.a_addr.eq(Mux(seq.snapshot, seq.model_addr, dot.model_addr)),
                     dot.model_data.eq(model.a_data), seq.model_data.eq(model.a_data),
                     rb.w_en.eq(dot.rb_en), rb.w_data.eq(dot.rb_data), dot.rb_space.eq(rb.space),
                     seq.dot_done.eq(dot.done), seq.loss.eq(dot.loss), seq.stall.eq(dot.stall)]

        # ---- gradient pass and update
        wiring.connect(m, dot.residuals, grad.residuals)
        m.d.comb += [grad.row_beats.eq(seq.row_beats), grad.step.eq(seq.step), grad.start.eq(seq.epoch_start),
                     grad.clear.eq(seq.clear), seq.clear_busy.eq(grad.clear_busy),
                     rb.r_en.eq(grad.rb_en), grad.rb_data.eq(rb.r_data),
                     table.b_addr.eq(grad.table_addr), grad.table_m.eq(table.b_m), grad.table_e.eq(table.b_e),
                     model.b_addr.eq(grad.model_addr), grad.model_data.eq(model.b_data),
                     model.w_en.eq(grad.w_en), model.w_addr.eq(grad.w_addr), model.w_data.eq(grad.w_data),
                     seq.rows_done.eq(grad.rows_done)]
        return m
