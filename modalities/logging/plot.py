"""``plot_runs``: training curves of one or more experiments in one figure (matplotlib, no display needed).

Four panels share the x axis (steps, or tokens): the loss (training, and each evaluation loader dashed with
markers), the learning rate, the throughput (tokens/s) and the gradient norm; a mixture-of-experts run adds a row
with its routing (the auxiliary loss; the busiest expert's load over the mean, with the share of slots over
capacity dotted on the right). Each run has one colour, labelled with its experiment id. The loss axis is
logarithmic when the loss spans more than a factor of two.
"""

from __future__ import annotations

from pathlib import Path

from modalities.logging.curves import TRAIN_LOSS, RunCurves, Series, eval_loss_name, wants_log_scale

FORMATS = (".png", ".svg", ".pdf")

# (title, y label, training metric)
PANELS = (
    ("learning rate", "learning rate", "lr mean"),
    ("throughput", "tokens / s (all ranks)", "tokens/s"),
    ("gradient norm", "grad norm (avg over the log interval)", "grad norm avg"),
)


# (title, y label, training metric) of the routing row, drawn when a run logged them (models/moe/statistics.py)
MOE_PANELS = (
    ("MoE auxiliary loss", "aux loss (sum over blocks)", "moe aux loss"),
    ("expert load", "busiest expert / mean", "moe load max/mean"),
)


def _x(run: RunCurves, series: Series, axis: str) -> list[float]:
    if axis == "steps":
        return [float(s) for s in series.steps]
    return [run.tokens(s) if run.tokens(s) is not None else float("nan") for s in series.steps]


def _count_formatter():
    from matplotlib.ticker import FuncFormatter

    from modalities.logging.formatting import human

    return FuncFormatter(lambda value, _pos: human(value) if value else "0")


def plot_runs(runs: list[RunCurves], out: str | Path, x_axis: str = "steps", title: str | None = None) -> Path:
    """Draw ``runs`` into ``out`` (.png, .svg or .pdf), written under a temporary name and renamed into place;
    returns the path written."""
    out = Path(out)
    if out.suffix.lower() not in FORMATS:
        raise ValueError(f"{out}: the picture's name must end in {', '.join(FORMATS)}")
    import matplotlib.pyplot as plt

    fig = draw_runs(runs, x_axis=x_axis, title=title)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".tmp-{out.name}")
    try:
        fig.savefig(tmp, dpi=110, format=out.suffix.lower()[1:])
    finally:
        plt.close(fig)
    tmp.replace(out)
    return out


def draw_runs(runs: list[RunCurves], x_axis: str = "steps", title: str | None = None):
    """The figure of ``runs``. ``x_axis``: "steps" or "tokens" (a run without consumed-token counts then has no
    x positions)."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display, no GUI toolkit
    import matplotlib.pyplot as plt

    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    routing = any(MOE_PANELS[0][2] in run.train for run in runs)
    rows = 3 if routing else 2
    fig, axes = plt.subplots(rows, 2, figsize=(12, 4 * rows), sharex=True, constrained_layout=True)
    loss_ax, panels = axes[0][0], [axes[0][1], axes[1][0], axes[1][1]]
    several = len(runs) > 1
    all_losses: list[float] = []
    for index, run in enumerate(runs):
        color = colors[index % len(colors)]
        prefix = f"{run.name}: " if several else ""
        train = run.train.get(TRAIN_LOSS)
        if train is not None:
            label = "train" if run.train_tag == "train" else f"{run.train_tag} (train)"
            loss_ax.plot(_x(run, train, x_axis), train.values, color=color, lw=1.6, label=prefix + label)
            all_losses += train.values
        for tag, metrics in run.evals.items():
            name = eval_loss_name(metrics)
            if name is None:
                continue
            series = metrics[name]
            loss_ax.plot(
                _x(run, series, x_axis), series.values, color=color, ls="--", marker="o", ms=4, lw=1.2,
                label=f"{prefix}{tag} (eval)",
            )
            all_losses += series.values
        for ax, (_title, _label, metric) in zip(panels, PANELS):
            series = run.train.get(metric)
            if series is not None:
                ax.plot(_x(run, series, x_axis), series.values, color=color, lw=1.4, label=run.name)

    loss_ax.set_title("loss")
    loss_ax.set_ylabel("loss" + (" (log scale)" if wants_log_scale(all_losses) else ""))
    if wants_log_scale(all_losses):
        loss_ax.set_yscale("log")
    if loss_ax.lines:
        loss_ax.legend(fontsize="small")
    else:
        loss_ax.text(0.5, 0.5, "no losses logged", ha="center", va="center", transform=loss_ax.transAxes)
    for ax, (panel_title, label, _metric) in zip(panels, PANELS):
        ax.set_title(panel_title)
        ax.set_ylabel(label)
        if not ax.lines:
            ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes)
    panels[0].ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    panels[1].yaxis.set_major_formatter(_count_formatter())
    if routing:
        _routing_row(axes[2], runs, x_axis, colors)
    for ax in axes[-1]:
        ax.set_xlabel("optimizer steps" if x_axis == "steps" else "tokens seen (all ranks)")
        if x_axis == "tokens":
            ax.xaxis.set_major_formatter(_count_formatter())
    _mfu_on_twin_axis(panels[1], runs, x_axis, colors)
    for ax in axes.flat:
        ax.grid(True, which="major", alpha=0.3)
    _tokens_on_top(loss_ax, runs, x_axis)
    if several:
        panels[0].legend(fontsize="small")
    names = ", ".join(run.name for run in runs)
    fig.suptitle(title or (names if len(names) <= 100 else f"{len(runs)} runs"), fontsize="medium")
    return fig


def _routing_row(axes, runs: list[RunCurves], x_axis: str, colors: list[str]) -> None:
    for ax, (panel_title, label, metric) in zip(axes, MOE_PANELS):
        for index, run in enumerate(runs):
            series = run.train.get(metric)
            if series is not None:
                ax.plot(_x(run, series, x_axis), series.values, color=colors[index % len(colors)], lw=1.4,
                        label=run.name)
        ax.set_title(panel_title)
        ax.set_ylabel(label)
    twin = None
    for index, run in enumerate(runs):
        series = run.train.get("moe over capacity")
        if series is not None and series.values:
            twin = twin or axes[1].twinx()
            twin.plot(_x(run, series, x_axis), [100 * v for v in series.values], color=colors[index % len(colors)],
                      ls=":", lw=1.4)
    if twin is not None:
        twin.set_ylabel("slots over capacity % (dotted)")


def _tokens_on_top(ax, runs: list[RunCurves], x_axis: str) -> None:
    """With steps below, tokens on top when every run takes the same number of tokens per step."""
    if x_axis != "steps":
        return
    rates = {run.tokens_per_step() for run in runs}
    if len(rates) != 1 or None in rates:
        return
    (rate,) = rates
    top = ax.secondary_xaxis("top", functions=(lambda steps: steps * rate, lambda tokens: tokens / rate))
    top.set_xlabel("tokens seen (all ranks)")
    top.xaxis.set_major_formatter(_count_formatter())


def _mfu_on_twin_axis(ax, runs: list[RunCurves], x_axis: str, colors: list[str]) -> None:
    """MFU (logged on CUDA with an mfu_calculator) dotted on a right-hand axis of the throughput panel."""
    drawn = False
    twin = None
    for index, run in enumerate(runs):
        series = run.train.get("mfu")
        if series is None or not series.values:
            continue
        twin = twin or ax.twinx()
        twin.plot(_x(run, series, x_axis), [100 * v for v in series.values], color=colors[index % len(colors)],
                  ls=":", lw=1.4)
        drawn = True
    if drawn:
        twin.set_ylabel("MFU % (dotted)")
        ax.set_title("throughput and MFU")
