"""The report's figures: matplotlib (Agg, no display), each returned as a base64 PNG so that
index.html carries its images and opens offline."""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from referee.evaluate.metrics import reliability_bins  # noqa: E402

BLUE, ORANGE, GREY, GREEN, RED = "#2563eb", "#ea580c", "#6b7280", "#16a34a", "#dc2626"
plt.rcParams.update({
    "font.size": 9, "axes.titlesize": 10, "axes.titleweight": "bold", "axes.spines.top": False,
    "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.25, "figure.dpi": 110,
    "legend.frameon": False, "legend.fontsize": 8,
})


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def reliability(curves: list[tuple[str, np.ndarray, np.ndarray]], title: str, xlabel: str, ylabel: str,
                n_bins: int = 10) -> str:
    """Reliability diagram: per confidence bin, mean confidence (x) against observed frequency (y).
    `curves` = [(label, confidence, outcome 0/1), ...]: before and after temperature scaling."""
    fig, ax = plt.subplots(figsize=(4.6, 3.8))
    ax.plot([0, 1], [0, 1], color=GREY, lw=1, ls="--", label="perfectly calibrated")
    colors = (GREY, BLUE) if len(curves) > 1 else (BLUE,)  # before in grey, after (or the only one) in blue
    for (label, confidence, outcome), color in zip(curves, colors):
        _, conf, acc, count = reliability_bins(confidence, outcome, n_bins)
        seen = count > 0
        ax.plot(conf[seen], acc[seen], "o-", color=color, label=label, ms=4)
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel=xlabel, ylabel=ylabel, title=title)
    ax.legend(loc="upper left")
    return _png(fig)


def confusion(matrix: np.ndarray, labels: list[str], title: str) -> str:
    """Counts of (human label, judge decision), each row also shown as a share of its total."""
    fig, ax = plt.subplots(figsize=(3.8, 3.4))
    share = matrix / np.maximum(matrix.sum(1, keepdims=True), 1)
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, f"{int(matrix[i, j])}\n{share[i, j]:.0%}", ha="center", va="center", fontsize=8,
                    color="white" if share[i, j] > 0.6 else "black")
    ax.set(xticks=range(len(labels)), yticks=range(len(labels)), xticklabels=labels, yticklabels=labels,
           xlabel="judge's decision", ylabel="human label", title=title)
    ax.grid(False)
    return _png(fig)


def score_distributions(y: np.ndarray, pred: np.ndarray, metric: np.ndarray, scale: tuple[float, float]) -> str:
    """Histograms of human and judge scores, one panel per metric (the 8 largest)."""
    names = [m for m, _ in sorted(zip(*np.unique(metric, return_counts=True)), key=lambda t: -t[1])][:8]
    cols = min(4, len(names))
    rows = int(np.ceil(len(names) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols + 0.6, 2.3 * rows + 0.4), squeeze=False)
    bins = np.linspace(scale[0], scale[1], 21)
    for ax, name in zip(axes.flat, names):
        rows_m = metric == name
        ax.hist(y[rows_m], bins=bins, color=GREY, alpha=0.6, label="human")
        ax.hist(pred[rows_m], bins=bins, color=BLUE, alpha=0.6, label="judge")
        ax.set(title=f"{name[:28]} (n={int(rows_m.sum())})", xlabel=f"score ({scale[0]:g}-{scale[1]:g})", ylabel="rows")
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    axes.flat[0].legend()
    return _png(fig)


def score_scatter(y: np.ndarray, pred: np.ndarray, scale: tuple[float, float]) -> str:
    fig, ax = plt.subplots(figsize=(4.2, 3.8))
    ax.plot(scale, scale, color=GREY, lw=1, ls="--", label="judge = human")
    ax.scatter(y, pred, s=8, alpha=0.5, color=BLUE)
    ax.set(xlabel="human score", ylabel="judge score", title="Judge against human scores", xlim=scale, ylim=scale)
    ax.legend(loc="upper left")
    return _png(fig)


def length_bias(len_diff: np.ndarray, judge_pref: np.ndarray, human_pref: np.ndarray, rho_judge: float,
                rho_human: float, judge_label: str = "judge: p(A) - p(B)") -> str:
    """Preference against the length difference: the judge beside the humans."""
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 3.5), sharex=True)
    jitter = np.random.default_rng(0).normal(0, 0.04, len(human_pref))
    for ax, pref, label, rho, color in ((axes[0], judge_pref, judge_label, rho_judge, BLUE),
                                        (axes[1], human_pref + jitter, "humans: +1 A, -1 B, 0 tie (jittered)", rho_human, GREY)):
        ax.scatter(len_diff, pref, s=7, alpha=0.45, color=color)
        ax.axhline(0, color="black", lw=0.6)
        ax.axvline(0, color="black", lw=0.6)
        ax.set_xscale("symlog", linthresh=50)
        ax.set(xlabel="len(A) - len(B)  [characters, symlog]", ylabel=label, title=f"Spearman ρ = {rho:.2f}")
    fig.suptitle("Length bias: does the longer answer win?", fontweight="bold", fontsize=10)
    return _png(fig)


def position_bias(p_first: np.ndarray, p_swapped: np.ndarray, consistency: float, preference: float) -> str:
    """p(A wins) with A shown first against p(A wins) with A shown second, before swap averaging.
    A judge without position bias lies on the diagonal."""
    fig, ax = plt.subplots(figsize=(4.4, 3.9))
    ax.plot([0, 1], [0, 1], color=GREY, lw=1, ls="--", label="no position effect")
    ax.scatter(p_first[:, 0], p_swapped[:, 1], s=8, alpha=0.5, color=BLUE)
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="p(A wins), A shown first", ylabel="p(A wins), A shown second",
           title=f"Position bias: consistency {consistency:.0%}, first +{preference:.3f}")
    ax.legend(loc="upper left")
    return _png(fig)


def histogram(values: np.ndarray, title: str, xlabel: str, marker: float | None = None, marker_label: str = "") -> str:
    fig, ax = plt.subplots(figsize=(4.6, 3.4))
    ax.hist(values, bins=30, color=BLUE, alpha=0.75)
    if marker is not None:
        ax.axvline(marker, color=RED, lw=1.2, label=marker_label)
        ax.legend()
    ax.set(title=title, xlabel=xlabel, ylabel="rows")
    return _png(fig)


def probability_by_label(p: np.ndarray, y: np.ndarray, threshold: float, title: str) -> str:
    """p(unsafe) histograms for rows labelled safe and unsafe, with the saved threshold."""
    fig, ax = plt.subplots(figsize=(4.6, 3.4))
    bins = np.linspace(0, 1, 26)
    ax.hist(p[~y], bins=bins, color=GREEN, alpha=0.6, label=f"labelled safe (n={int((~y).sum())})")
    ax.hist(p[y], bins=bins, color=RED, alpha=0.6, label=f"labelled unsafe (n={int(y.sum())})")
    ax.axvline(threshold, color="black", lw=1.2, ls="--", label=f"threshold {threshold:.2f}")
    ax.set(title=title, xlabel="p(unsafe)", ylabel="rows")
    ax.legend()
    return _png(fig)


def loss_curves(history: dict) -> str:
    fig, ax = plt.subplots(figsize=(4.6, 3.4))
    if history["train"]:
        x, y = zip(*history["train"])
        ax.plot(x, y, color=BLUE, label="training loss")
    if history["valid"]:
        x, y = zip(*history["valid"])
        ax.plot(x, y, "o-", color=ORANGE, ms=3, label=history.get("valid_name") or "validation")
    ax.set(title="Training history", xlabel=history["x"], ylabel="loss")
    ax.legend()
    return _png(fig)


def compare(names: list[str], values: list[float], intervals: list[tuple[float, float]], metric: str,
            baseline: list[bool] | None = None, lower_is_better: bool = False) -> str:
    """One metric for several judges, with 95% intervals: a dot per judge (baselines grey), whole names
    wrapped on the y axis, the axis fitted to the numbers rather than starting at zero."""
    import textwrap

    baseline = baseline or [False] * len(names)
    labels = [textwrap.fill(n, 30) for n in names]
    height = 0.9 + sum(0.28 * (1 + label.count("\n")) + 0.1 for label in labels)
    fig, ax = plt.subplots(figsize=(7.2, max(2.0, height)))
    for i, (value, (low, high), base) in enumerate(zip(values, intervals, baseline)):
        color = GREY if base else BLUE
        if low is not None and high is not None and np.isfinite([low, high]).all():
            ax.plot([low, high], [i, i], color=color, lw=2, solid_capstyle="butt")
        ax.plot([value], [i], "o", color=color, ms=7)
        ax.annotate(f"{value:.3f}", (value, i), textcoords="offset points", xytext=(0, 7), ha="center", fontsize=8,
                    color=color)
    ax.set_yticks(range(len(names)), labels)
    ax.set_ylim(len(names) - 0.4, -0.6)  # first judge on top
    ax.grid(axis="y", visible=False)
    better = "lower is better" if lower_is_better else "higher is better"
    ax.set(title=f"{metric} with 95% bootstrap intervals ({better})", xlabel=metric)
    return _png(fig)
