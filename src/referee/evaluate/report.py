"""The evaluation report: one self-contained `index.html` (plots embedded as base64 PNG, no script,
no network) and `metrics.json`, both written to a temp file and moved into place.

    from referee.evaluate import evaluate, write_report
    write_report("report/", [evaluate(score_judge, s), evaluate(safety_judge, x), evaluate(pair_judge, p)])

Results on the same data and task share a section: one headline table (every judge a row, every
number with its 95% interval), a comparison chart of the primary metric, then each judge's figures
and its most confident mistakes (text HTML-escaped).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from html import escape
from pathlib import Path

import numpy as np

from referee import __version__
from referee.evaluate import plots
from referee.evaluate.evaluators import Evaluation
from referee.io import write_text

LOWER_IS_BETTER = ("log_loss", "brier", "ece", "rmse", "mae", "fpr", "over_refusal", "margin_negative",
                   "first_position_preference")
HELP = {
    "log_loss": "cross-entropy of p(A, B, tie) against the human label distribution",
    "accuracy": "most probable outcome = human majority (three-way when the data has ties)",
    "brier": "squared distance of p(A, B, tie) to the human label",
    "ece": "expected calibration error of the top-class confidence (10 bins)",
    "ece_before": "ECE at temperature 1, before temperature scaling",
    "log_loss_before": "log loss at temperature 1",
    "swap_consistency": "share of decisions unchanged when A and B are exchanged (before swap averaging)",
    "first_position_preference": "mean p(first) - p(second) over both orders; 0 = no position bias",
    "length_bias_judge": "Spearman of the judge's preference for A with len(A) - len(B)",
    "length_bias_human": "Spearman of the humans' preference for A with len(A) - len(B)",
    "rmse": "root mean squared error, on the data's scale", "mae": "mean absolute error",
    "spearman": "rank correlation with the human scores", "pearson": "linear correlation with the human scores",
    "pairwise_accuracy": "share of pairs where the chosen response gets the higher reward",
    "margin_mean": "mean reward(chosen) - reward(rejected)",
    "reward_length_spearman": "Spearman of reward with response length (characters)",
    "over_refusal": "share of requests labelled safe that the judge flags unsafe",
    "unsafe_recall": "share of requests labelled unsafe that the judge flags",
    "roc_auc": "ROC-AUC of p(unsafe)", "failed": "rows without a usable verdict",
    "temperature": "the fitted temperature T (probabilities = softmax(logits / T))",
    "threshold": "the saved p(unsafe) threshold",
}

CSS = """
:root { --ink:#111827; --muted:#6b7280; --line:#e5e7eb; --bg:#f9fafb; --accent:#2563eb; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink); background: var(--bg); }
header { background: #0f172a; color: #f8fafc; padding: 22px 40px; }
header h1 { margin: 0; font-size: 22px; font-weight: 650; letter-spacing: -0.01em; }
header p { margin: 4px 0 0; color: #cbd5e1; font-size: 13px; }
main { max-width: 1240px; margin: 0 auto; padding: 24px 40px 60px; }
nav { margin: 0 0 18px; font-size: 13px; }
nav a { color: var(--accent); margin-right: 14px; text-decoration: none; }
section { background: #fff; border: 1px solid var(--line); border-radius: 10px; padding: 20px 24px; margin: 0 0 26px; }
h2 { font-size: 18px; margin: 0 0 4px; }
h3 { font-size: 15px; margin: 26px 0 8px; padding-top: 14px; border-top: 1px solid var(--line); }
.sub { color: var(--muted); margin: 0 0 14px; font-size: 13px; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-weight: 600; color: #374151; background: #f3f4f6; white-space: nowrap; }
td.num { font-variant-numeric: tabular-nums; white-space: nowrap; }
td.num .ci { color: var(--muted); font-size: 11.5px; display: block; }
th.primary, td.primary { background: #eff6ff; }
.scroll { overflow-x: auto; }
.figures { display: flex; flex-wrap: wrap; gap: 14px; margin: 10px 0; }
figure { margin: 0; background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 8px; }
figure img { display: block; max-width: 100%; height: auto; }
figcaption { color: var(--muted); font-size: 12px; margin-top: 4px; max-width: 520px; }
.notes { color: #92400e; background: #fffbeb; border: 1px solid #fde68a; border-radius: 6px; padding: 6px 12px; font-size: 13px; }
.text { max-height: 9em; overflow: auto; white-space: pre-wrap; font-size: 12px; max-width: 420px; }
details summary { cursor: pointer; color: var(--accent); margin: 8px 0; }
.badge { display: inline-block; font-size: 11px; padding: 1px 7px; border-radius: 9px; background: #e0e7ff; color: #3730a3; margin-left: 6px; }
footer { color: var(--muted); font-size: 12px; text-align: center; padding: 20px; }
"""


def _fmt(x) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    if isinstance(x, (int, np.integer)) or (isinstance(x, float) and x.is_integer() and abs(x) >= 10):
        return f"{int(x)}"
    return f"{x:.3f}"


def _headline(name: str) -> bool:
    """Columns of the headline table; per-category numbers go in the detail table (except "any")."""
    return "/" not in name or name.endswith("/any")


def _arrow(name: str) -> str:
    base = name.split("/")[0].removesuffix("_before")
    if base in LOWER_IS_BETTER:
        return " ↓"
    if base in ("length_bias_judge", "length_bias_human", "reward_length_spearman", "temperature", "threshold", "failed", "margin_p25",
                "margin_median", "margin_p75"):
        return ""
    return " ↑"


def _table(results: list[Evaluation], columns: list[str]) -> str:
    primary = {r.primary for r in results}
    head = "".join(f'<th class="{"primary" if c in primary else ""}" title="{escape(HELP.get(c.split("/")[0], ""))}">'
                   f"{escape(c)}{_arrow(c)}</th>" for c in columns)
    rows = []
    for r in results:
        cells = []
        for c in columns:
            value = r.metrics.get(c)
            ci = r.ci.get(c)
            interval = f'<span class="ci">[{_fmt(ci[0])}, {_fmt(ci[1])}]</span>' if ci else ""
            cells.append(f'<td class="num {"primary" if c == r.primary else ""}">{_fmt(value)}{interval}</td>')
        rows.append(f"<tr><th>{escape(r.judge)}</th><td class='num'>{r.n}</td>{''.join(cells)}</tr>")
    return (f'<div class="scroll"><table><thead><tr><th>judge</th><th>n</th>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div>")


def _figure(png: str, caption: str, alt: str) -> str:
    return (f'<figure><img src="data:image/png;base64,{png}" alt="{escape(alt)}">'
            f"<figcaption>{escape(caption)}</figcaption></figure>")


def _confusion_matrix(truth: np.ndarray, decision: np.ndarray, k: int) -> np.ndarray:
    matrix = np.zeros((k, k), int)
    ok = (decision >= 0) & (decision < k)
    np.add.at(matrix, (truth[ok], decision[ok]), 1)
    return matrix


def _judge_figures(r: Evaluation) -> list[str]:
    d, m, out = r.details, r.metrics, []
    if r.task == "pair":
        labels = ["A", "B", "tie"] if d["three_way"] else ["A", "B"]
        k = len(labels)
        decision = d["proba"][:, :k].argmax(1) if not d["hard"] else np.where(d["proba"].sum(1) > 0, d["proba"].argmax(1), -1)
        if not d["hard"]:
            curves = []
            if "proba_before" in d:
                pb = d["proba_before"]
                curves.append(("before (T = 1)", pb.max(1), pb.argmax(1) == d["label"]))
            p = d["proba"]
            t = m.get("temperature", 1.0)
            curves.append((f"after (T = {t:.2f})" if "proba_before" in d else f"judge (T = {t:.2f})", p.max(1), p.argmax(1) == d["label"]))
            out.append(_figure(plots.reliability(curves, "Reliability of the top-class probability", "mean confidence",
                                                 "observed accuracy"),
                               f"ECE {_fmt(m.get('ece_before'))} before, {_fmt(m['ece'])} after temperature scaling"
                               if "ece_before" in m else f"ECE {_fmt(m['ece'])}; no temperature fitted (pass --calibrate-on)",
                               "reliability diagram"))
        out.append(_figure(plots.confusion(_confusion_matrix(d["label"], decision, k), labels, "Confusion matrix"),
                           "rows: human majority label; columns: judge's most probable outcome", "confusion matrix"))
        out.append(_figure(plots.length_bias(d["len_diff"], d["pref"], d["human_pref"], m["length_bias_judge"],
                                             m["length_bias_human"], "judge: verdict (+1 A, -1 B)" if d["hard"] else "judge: p(A) - p(B)"),
                           "each point a pair; left the judge, right the humans", "length-bias scatter"))
        if "proba_first" in d:
            out.append(_figure(plots.position_bias(d["proba_first"], d["proba_swapped"], m["swap_consistency"],
                                                   m["first_position_preference"]),
                               "raw predictions, before test-time swap averaging", "position-bias figure"))
    elif r.task == "score":
        out.append(_figure(plots.score_scatter(d["y"], d["pred"], d["scale"]), "each point an example", "score scatter"))
        out.append(_figure(plots.score_distributions(d["y"], d["pred"], d["metric"], d["scale"]),
                           "score distributions per metric: humans (grey) and judge (blue)", "score distributions"))
    elif r.task == "safety":
        y, p = d["y"].astype(bool), d["p"]
        curves = []
        if d.get("p_before") is not None:
            curves.append(("before (T = 1)", d["p_before"], y))
        curves.append((f"after (T = {m.get('temperature', 1.0):.2f})" if curves else "judge", p, y))
        if r.data_task == "safety":
            out.append(_figure(plots.reliability(curves, "Reliability of p(unsafe)", "mean predicted p(unsafe)",
                                                 "observed share unsafe"),
                               f"ECE {_fmt(m.get('ece_before/any'))} before, {_fmt(m.get('ece/any'))} after temperature scaling"
                               if "ece_before/any" in m else f"ECE {_fmt(m.get('ece/any'))}", "reliability diagram"))
        out.append(_figure(plots.confusion(_confusion_matrix(y.astype(int), d["flagged"].astype(int), 2), ["safe", "unsafe"],
                                           "Confusion matrix at the threshold"), "rows: human label; columns: judge", "confusion matrix"))
        out.append(_figure(plots.probability_by_label(p, y, d["threshold"], "p(unsafe) by human label"),
                           "the dashed line is the saved threshold", "probability histogram"))
    elif r.task == "reward":
        out.append(_figure(plots.histogram(d["margin"], "Reward margin, chosen - rejected", "reward margin (reward units)", 0.0,
                                           "no preference"), f"{m['margin_negative']:.0%} of pairs rank the rejected response higher",
                           "margin histogram"))
        out.append(_figure(plots.length_bias(d["len_diff"], d["pref"], d["human_pref"], m["length_bias_judge"],
                                             m["length_bias_human"], "judge: reward(A) - reward(B)"),
                           "each point a pair; left the reward judge, right the humans", "length-bias scatter"))
    if d.get("history"):
        out.append(_figure(plots.loss_curves(d["history"]), "loss per epoch or optimizer step", "loss curves"))
    return out


def _mistakes(r: Evaluation) -> str:
    rows = r.details.get("mistakes") or []
    if not rows:
        return ""
    keys = list(rows[0])
    text_keys = {"prompt", "response", "response_a", "response_b"}
    head = "".join(f"<th>{escape(k)}</th>" for k in keys)
    body = "".join("<tr>" + "".join(
        f'<td><div class="text">{escape(str(row[k]))}</div></td>' if k in text_keys else f"<td>{escape(str(row[k]))}</td>"
        for k in keys) + "</tr>" for row in rows)
    title = "Largest errors" if r.task == "score" else "Most confident mistakes"
    return (f"<details><summary>{title} ({len(rows)})</summary><div class='scroll'><table><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table></div></details>")


def _section(index: int, results: list[Evaluation]) -> str:
    first = results[0]
    all_names = list(dict.fromkeys(c for r in results for c in r.metrics))
    headline = [c for c in all_names if _headline(c)]
    detail = [c for c in all_names if not _headline(c)]
    kind = {"score": "Score", "pair": "Pair", "safety": "Safety", "reward": "Reward"}[first.task]
    what = " (over-refusal on requests)" if first.data_task == "prompts" else ""
    parts = [f'<section id="s{index}"><h2>{kind} judges{what} <span class="badge">{escape(first.data or "data")}</span></h2>',
             f'<p class="sub">{len(results)} judge(s) on the same rows; primary metric highlighted; 95% bootstrap intervals '
             f"in brackets ({first.n_boot} resamples); ↓ lower is better, ↑ higher is better. Hover a column for its meaning.</p>",
             _table(results, headline)]
    if detail:
        parts.append(f"<details><summary>Per category / per metric ({len(detail)} numbers)</summary>{_table(results, detail)}</details>")
    if len(results) > 1:
        primaries = [r.primary for r in results]
        metric = max(set(primaries), key=primaries.count)
        named = [r for r in results if metric in r.metrics]
        parts.append('<div class="figures">' + _figure(
            plots.compare([r.judge for r in named], [r.metrics[metric] for r in named],
                          [tuple(r.ci.get(metric, (None, None))) for r in named], metric),
            "the same rows for every judge", "comparison chart") + "</div>")
    for r in results:
        parts.append(f"<h3>{escape(r.judge)} <span class='badge'>n = {r.n}</span></h3>")
        if r.notes:
            parts.append('<div class="notes">' + "<br>".join(escape(n) for n in r.notes) + "</div>")
        parts.append('<div class="figures">' + "".join(_judge_figures(r)) + "</div>")
        parts.append(_mistakes(r))
    parts.append("</section>")
    return "\n".join(parts)


def write_report(out_dir: str | Path, results: list[Evaluation], title: str = "referee evaluation report") -> Path:
    """Write `index.html` and `metrics.json` for evaluations of one or more judges and tasks into
    `out_dir`; returns the path of index.html."""
    out_dir = Path(out_dir)
    groups: dict[tuple, list[Evaluation]] = {}
    for r in results:
        groups.setdefault((r.data, r.task, r.data_task), []).append(r)
    sections = [_section(i, group) for i, group in enumerate(groups.values())]
    nav = "".join(f'<a href="#s{i}">{escape(g[0].task)} · {escape(g[0].data)}</a>' for i, g in enumerate(groups.values()))
    when = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    html = (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">'
            f"<title>{escape(title)}</title><style>{CSS}</style></head><body>"
            f"<header><h1>{escape(title)}</h1><p>referee {__version__} · {when} · {len(results)} evaluation(s)</p></header>"
            f"<main><nav>{nav}</nav>{''.join(sections)}</main>"
            "<footer>Generated by referee eval. Numbers in metrics.json beside this file.</footer></body></html>")
    write_text(out_dir / "metrics.json", json.dumps([r.to_dict() for r in results], indent=1, ensure_ascii=False))
    write_text(out_dir / "index.html", html)
    return out_dir / "index.html"
