"""Loss vs epoch and loss vs time, several precisions against float (the ZipML figure style)."""

from __future__ import annotations

from pathlib import Path


def plot_runs(runs, path: str | Path, *, title: str = "") -> Path:
    """Two panels: training loss per epoch, and training loss against (modelled) time.

    Engine runs are placed on the time axis by their cycle counts at their fmax (labelled measured,
    assumed or user-stated by :func:`lowbit.experiment.describe_clock`); the float
    run by the wall time measured on this CPU. Runs without a time (the golden model has no
    cycles) appear only in the left panel.
    """
    import matplotlib

    from .experiment import describe_clock

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    fig, (ax_e, ax_t) = plt.subplots(1, 2, figsize=(11, 4.2))
    for run in runs:
        epochs = range(1, len(run.train_loss) + 1)
        style = dict(marker="o", ms=3, lw=1.6)
        if run.backend == "float":
            style.update(color="black", ls="--", marker=None)
        label = run.label
        if run.test_metric is not None:  # the held-out figure beside the curve (issue 13)
            label += f" ({run.metric_name} {run.test_metric:.4f})"
        (line,) = ax_e.plot(epochs, run.train_loss, label=label, **style)
        if run.elapsed_s and len(run.elapsed_s) == len(run.train_loss):
            style["color"] = line.get_color()
            ax_t.plot(run.elapsed_s, run.train_loss, label=label, **style)
    for ax in (ax_e, ax_t):
        ax.set_yscale("log")
        ax.set_ylabel("training loss (MSE, normalised)" if runs[0].loss == "squared"
                      else f"training loss (mean {runs[0].loss} loss)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    ax_e.set_xlabel("epoch")
    fmax = next((r.fmax_mhz for r in runs if r.fmax_mhz), None)
    ax_t.set_xscale("log")
    ax_t.set_xlabel(f"time (s): engine modelled at {describe_clock(fmax)};\nfloat measured on this CPU" if fmax
                    else "time (s)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
