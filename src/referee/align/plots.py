"""The alignment evaluation's figures, as PNG bytes (matplotlib, Agg): HmR / HpR / CAS / over-refusal
and the string match's refusals on harmful prompts (the second opinion) per policy with bootstrap intervals, and the reward (or score) distribution of each policy's responses."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

METRICS = (("HmR", "#16a34a", "HmR"), ("HpR", "#2563eb", "HpR"), ("CAS", "#7c3aed", "CAS"),
           ("over_refusal", "#ea580c", "over-refusal"),
           ("refusal_on_harmful_string", "#6b7280", "refusal on harmful (string match)"))


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    return buffer.getvalue()


def rates_chart(results: dict[str, dict]) -> bytes:
    """Grouped bars: one group per policy, one bar per rate, 95% bootstrap intervals as error bars."""
    names = list(results)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.5 * len(names) + 2), 3.4))
    width = 0.8 / len(METRICS)
    x = np.arange(len(names))
    for k, (metric, colour, label) in enumerate(METRICS):
        values = np.array([results[n][metric] for n in names])
        ci = np.array([results[n][f"{metric}_ci"] for n in names])  # (policies, 2)
        err = np.stack([values - ci[:, 0], ci[:, 1] - values]).clip(min=0)
        ax.bar(x + (k - (len(METRICS) - 1) / 2) * width, values, width, yerr=err, capsize=3, color=colour,
               alpha=0.85, label=label)
    ax.set_xticks(x, names)
    ax.set_ylim(0, 1.05)
    ax.set(ylabel="rate", title="Harmlessness (HmR), helpfulness (HpR), CAS, over-refusal,\n"
                                "string-match refusals on harmful prompts: 95% bootstrap CIs")
    ax.legend(ncol=len(METRICS), loc="upper center", bbox_to_anchor=(0.5, -0.1), frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    return _png(fig)


def reward_distributions(rows: list[dict], helpful_rule: str) -> bytes:
    """Box plots of the helpfulness judge's output per policy, on the helpful and the harmful prompts."""
    names = list(dict.fromkeys(r["policy"] for r in rows))
    fig, axes = plt.subplots(1, 2, figsize=(max(6.0, 1.6 * len(names) + 3), 3.2), sharey=True)
    for ax, kind in zip(axes, ("helpful", "harmful")):
        data = [[r["reward"] for r in rows if r["policy"] == n and r["set"] == kind] for n in names]
        ax.boxplot(data, showmeans=True)
        ax.set_xticks(range(1, len(names) + 1), names)
        ax.set_title(f"responses to {kind} prompts")
        ax.spines[["top", "right"]].set_visible(False)
    axes[0].set_ylabel("reward (helpfulness judge)")
    fig.suptitle(f"Reward distributions per policy (helpful: {helpful_rule})", fontsize=8)
    return _png(fig)


def training_curves(runs: dict[str, dict]) -> bytes:
    """DPO runs side by side: training loss per logged step (ln 2 dashed: the loss before any step) and
    the implicit-reward accuracy on held-out pairs at each evaluation (0.5 dashed: chance)."""
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(8.0, 3.0))
    for name, s in runs.items():
        steps = np.linspace(1, s["steps"], len(s["loss_history"]))
        loss_ax.plot(steps, s["loss_history"], marker=".", label=name)
        held = s.get("heldout_history") or []
        acc_ax.plot([h["step"] for h in held], [h["accuracy"] for h in held], marker="o", label=name)
    loss_ax.axhline(np.log(2), ls="--", c="grey", lw=1)
    acc_ax.axhline(0.5, ls="--", c="grey", lw=1)
    loss_ax.set(xlabel="step", ylabel="DPO loss", title="training loss")
    acc_ax.set(xlabel="step", ylabel="reward accuracy", title="held-out pairs", ylim=(0, 1))
    for ax in (loss_ax, acc_ax):
        ax.spines[["top", "right"]].set_visible(False)
    loss_ax.legend(frameon=False, fontsize=8)
    return _png(fig)
