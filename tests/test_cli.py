"""The ``lowbit`` command line: tables, JSON, plots, quantized files, and clear errors (exit 2)."""

import json

import numpy as np
import pytest

from lowbit.cli import main
from lowbit.dataset import QuantizedDataset

from driver_fixtures import TEST_AFU, afu_server  # noqa: F401  (pytest fixture)


def run_cli(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_train_json_has_every_epoch_and_low_bits_track_float(capsys, tmp_path):
    plot = tmp_path / "loss.png"
    code, out, _ = run_cli(capsys, "train", "--data", "synthetic:400:12", "--bits", "2,8", "--epochs", "4",
                           "--backend", "golden", "--json", "--plot", str(plot))
    assert code == 0
    summary = json.loads(out)
    runs = {r["label"]: r for r in summary["runs"]}
    assert set(runs) == {"float64", "b=2 uniform", "b=8 uniform"}
    assert summary["features"] == 13  # 12 + the intercept column
    for r in runs.values():
        assert len(r["train_loss"]) == 4 and all(np.isfinite(r["train_loss"]))
        assert r["train_loss"][-1] < r["train_loss"][0]
    ref = runs["float64"]["train_loss"][-1]
    assert abs(runs["b=8 uniform"]["train_loss"][-1] / ref - 1) < 0.01
    assert runs["b=2 uniform"]["bytes_per_epoch"] < runs["b=8 uniform"]["bytes_per_epoch"]
    assert plot.stat().st_size > 10_000 and plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_train_table_lists_epochs_and_runs(capsys):
    code, out, _ = run_cli(capsys, "train", "--data", "synthetic:200:5", "--bits", "4", "--epochs", "2",
                           "--backend", "golden")
    assert code == 0
    lines = out.splitlines()
    assert any(line.split()[:1] == ["2"] for line in lines)  # epoch 2 row of the loss table
    assert any(line.startswith("b=4 uniform") and "golden" in line for line in lines)


def test_pipelined_training_reaches_the_exact_loss_with_another_model(capsys):
    """``--pipelined`` (MODEL_DELAY 1) trains against the model one minibatch old: a different
    model, a final loss within 5 % of exact SGD's; one engine only (not with --engines)."""
    finals = {}
    for flag in ((), ("--pipelined",)):
        code, out, _ = run_cli(capsys, "train", "--data", "synthetic:400:12", "--bits", "4", "--epochs", "4",
                               "--batch", "16", "--backend", "golden", "--no-float", "--json", *flag)
        assert code == 0
        finals[flag] = json.loads(out)["runs"][0]["train_loss"][-1]
    exact, pipelined = finals[()], finals[("--pipelined",)]
    assert exact != pipelined and abs(pipelined / exact - 1) < 0.05
    code, _, err = run_cli(capsys, "train", "--data", "synthetic:400:12", "--backend", "golden", "--pipelined",
                           "--engines", "2")
    assert code == 2 and "--pipelined is for one engine" in err


def test_quantize_writes_a_file_the_dataset_loader_reads(capsys, tmp_path):
    path = tmp_path / "q.npz"
    code, out, _ = run_cli(capsys, "quantize", "synthetic:100:7", "--bits", "3", "--copies", "2", "-o", str(path))
    assert code == 0 and str(path) in out
    q = QuantizedDataset.load(path)
    assert (q.rows, q.features, q.copies, q.fmt.bits) == (100, 8, 2, 3)


@pytest.mark.parametrize("argv, message", [
    (["train", "--bits", "9"], "every bit width must be in 1..8"),
    (["train", "--bits", "x"], "comma-separated list"),
    (["train", "--step", "2"], "--step must be in (0, 1)"),
    (["train", "--epochs", "0"], "positive integer"),
])
def test_bad_arguments_exit_2_naming_the_problem(capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_bad_data_file_is_a_clear_error(capsys, tmp_path):
    bad = tmp_path / "bad.libsvm"
    bad.write_text("1 1:0.5 2:oops\n-1 3:1\n")
    code, _, err = run_cli(capsys, "train", "--data", str(bad), "--backend", "golden", "--no-float")
    assert code == 2 and "lowbit: error:" in err and "bad.libsvm" in err
    code, _, err = run_cli(capsys, "train", "--data", str(tmp_path / "missing.svm"), "--backend", "golden")
    assert code == 2 and "missing.svm" in err


def test_serial_backend_needs_a_port_that_exists(capsys, tmp_path):
    code, _, err = run_cli(capsys, "train", "--backend", "serial", "--data", "synthetic:50:3")
    assert code == 2 and "--port" in err
    code, _, err = run_cli(capsys, "info", "--backend", "serial", "--port", str(tmp_path / "ttyNOPE"))
    assert code == 1 and "cannot open serial port" in err


@pytest.mark.parametrize("baud", ["0", "-9600", "fast"])
def test_serial_baud_must_be_a_positive_rate(capsys, baud):
    """(make bitstream's report names the board's UART rate: 400000 at the 50 MHz bitstream)"""
    with pytest.raises(SystemExit) as info:
        run_cli(capsys, "info", "--backend", "serial", "--port", "/dev/null", "--baud", baud)
    assert info.value.code == 2 and "--baud takes a positive whole number" in capsys.readouterr().err


def test_serial_baud_reaches_the_backend(capsys, tmp_path, monkeypatch):
    from lowbit import driver

    seen = {}

    def fake_open(backend, **options):
        seen.update(options, backend=backend)
        raise driver.DeviceError("no board here")

    monkeypatch.setattr(driver, "open_device", fake_open)
    run_cli(capsys, "info", "--backend", "serial", "--port", "/dev/ttyUSB7", "--baud", "400000")
    assert seen == {"backend": "serial", "port": "/dev/ttyUSB7", "baud": 400000}


def test_info_reports_the_engine_build_and_its_fixed_point_formats(capsys, afu_server):
    """Attached to a running simulator (the tests' AFU build, so the suite never builds the 512-bit
    woven engine); the default engines are the same code path with other build parameters."""
    from lowbit.contract.fixed import CODE_FRAC, CORR_FRAC
    from lowbit.contract.simprocess import start_server

    server = start_server(afu_server, once=True)
    try:
        code, out, _ = run_cli(capsys, "info", "--socket", str(server.socket_path))
    finally:
        server.stop()
    assert code == 0
    rows = dict(line.split() for line in out.splitlines())
    assert rows["LINE_BITS"] == str(TEST_AFU["line_bits"]) and rows["LANES"] == str(TEST_AFU["lanes"])
    assert rows["MAX_FEATURES"] == str(TEST_AFU["max_features"])
    assert rows["CODE_FRAC"] == str(CODE_FRAC) and rows["CORR_FRAC"] == str(CORR_FRAC)
    assert rows["BUILT"] == "none"  # the planes core: no optional datapath (the woven one lists its own)


def test_a_ctrl_c_wrapped_by_an_import_still_says_interrupted(capsys, monkeypatch):
    """Ctrl-C while numba is being imported surfaces as a RuntimeError ("Error calling __set_name__")
    whose cause is the KeyboardInterrupt: still "interrupted", exit 130 (test_bad_inputs' Ctrl-C
    test hit this under load); any other RuntimeError is not swallowed."""
    import lowbit.experiment as ex

    def interrupted_import(*args, **kwargs):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as exc:
            raise RuntimeError("Error calling __set_name__ on 'cached_property' instance") from exc

    monkeypatch.setattr(ex, "quantize", interrupted_import)
    assert main(["train", "--data", "synthetic:50:4", "--epochs", "1", "--backend", "golden", "--no-float"]) == 130
    assert capsys.readouterr().err.strip() == "lowbit: interrupted"

    def broken(*args, **kwargs):
        raise RuntimeError("not an interrupt")

    monkeypatch.setattr(ex, "quantize", broken)
    with pytest.raises(RuntimeError, match="not an interrupt"):
        main(["train", "--data", "synthetic:50:4", "--epochs", "1", "--backend", "golden", "--no-float"])


def test_the_quantizers_one_time_compile_is_reported_and_not_charged_to_a_precision(capsys, monkeypatch):
    """A machine's first run compiles the quantizer's kernels (seconds): the CLI loads them before it
    times any precision's quantize + pack, and says how long that took when it was noticeable."""
    from lowbit import experiment as ex

    calls = []

    def slow_warm_up(p, **kw):
        calls.append(kw)
        return 4.2

    monkeypatch.setattr(ex, "warm_quantizer", slow_warm_up)
    code, _, err = run_cli(capsys, "train", "--data", "synthetic:200:5", "--bits", "2,4", "--epochs", "1",
                           "--backend", "golden", "--levels", "optimal")
    assert code == 0 and len(calls) == 1 and calls[0]["levels"] == "optimal"
    assert "quantizer kernels compiled in 4.2 s (first run on this machine; not in host s)" in err


@pytest.mark.parametrize("levels,layout", [("uniform", "woven"), ("optimal", "planes")])
def test_warming_the_quantizer_runs_its_path_on_a_few_rows(levels, layout):
    from lowbit import experiment as ex

    p = ex.prepare("synthetic:300:40", seed=0)
    assert ex.warm_quantizer(p, levels=levels, layout=layout) > 0
    small = ex.prepare("synthetic:5:3", seed=0)  # fewer rows than WARM_ROWS: all of them
    assert small.rows < ex.WARM_ROWS and ex.warm_quantizer(small, levels=levels, layout=layout) > 0
