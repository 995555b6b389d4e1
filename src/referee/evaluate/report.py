"""The evaluation report: one self-contained `index.html` (plots embedded as base64 PNG, no script,
no network) and `metrics.json`, both written to a temp file and moved into place.

    from referee.evaluate import evaluate, write_report
    write_report("report/", [evaluate(score_judge, s), evaluate(safety_judge, x), evaluate(pair_judge, p)])

The page opens with a summary in words: per section, the best judge on its primary metric beside
the best baseline, with their intervals and a verdict. Results on the same data and task share a
section: one headline table (every judge and baseline a row, every number with its 95% interval), a
comparison chart of the primary metric, then each judge's figures and its most confident mistakes
(text HTML-escaped). A baseline (an evaluation whose name starts with "baseline") gets its row and
its place in the chart, not figures: a constant prediction has no calibration or bias to draw.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from html import escape
from pathlib import Path

import numpy as np

from referee import __version__
from referee.evaluate.evaluators import Evaluation
from referee.io import write_text
from referee.schema import category_name

LOWER_IS_BETTER = ("log_loss", "brier", "ece", "rmse", "mae", "fpr", "over_refusal", "margin_negative",
                   "first_position_preference")
HELP = {
    "log_loss": "cross-entropy of p(A, B, tie) against the human label distribution",
    "accuracy": "most probable outcome = human majority (three-way when the data has ties)",
    "brier": "squared distance of p(A, B, tie) to the human label",
    "ece": "expected calibration error of the top-class confidence (10 bins)",
    "ece_before": "ECE at temperature 1, before temperature scaling",
    "ece_floor": "the ECE a perfectly calibrated judge would show on these rows (labels drawn from its own "
                 "probabilities): ECE near it is sampling noise",
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

# Bias and calibration diagnostics: a second table under the headline one, so that each fits the page.
DIAGNOSTICS = ("length_bias_judge", "length_bias_human", "swap_consistency", "first_position_preference",
               "temperature", "threshold", "ece_before", "ece_floor", "log_loss_before", "reward_length_spearman", "margin_mean",
               "margin_negative", "margin_p25", "margin_median", "margin_p75", "failed")

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
th { font-weight: 600; color: #374151; background: #f3f4f6; }
thead th { font-size: 12px; min-width: 64px; }
tbody th { min-width: 150px; max-width: 260px; overflow-wrap: anywhere; }
tr.baseline th, tr.baseline td { color: var(--muted); font-style: italic; }
td.num { font-variant-numeric: tabular-nums; white-space: nowrap; padding: 6px 7px; }
td.num .ci { color: var(--muted); font-size: 11.5px; display: block; }
th.primary, td.primary { background: #eff6ff; }
.scroll { overflow-x: auto; }
.figures { display: flex; flex-wrap: wrap; gap: 14px; margin: 10px 0; }
figure { margin: 0; background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 8px; }
figure img { display: block; max-width: 100%; height: auto; }
figcaption { color: var(--muted); font-size: 12px; margin-top: 4px; max-width: 520px; }
.notes { color: #92400e; background: #fffbeb; border: 1px solid #fde68a; border-radius: 6px; padding: 6px 12px; font-size: 13px; }
.text { max-height: 9em; overflow: auto; white-space: pre-wrap; overflow-wrap: anywhere; font-size: 12px; min-width: 140px; }
details summary { cursor: pointer; color: var(--accent); margin: 8px 0; }
.summary li { margin: 4px 0; }
.warning { color: #fff; background: #b91c1c; border-radius: 6px; padding: 6px 12px; margin: 6px 0; font-weight: 600; }
.verdict-good { color: #166534; font-weight: 600; } .verdict-bad { color: #991b1b; font-weight: 600; }
.verdict-even { color: #92400e; font-weight: 600; }
.badge { display: inline-block; font-size: 11px; padding: 1px 7px; border-radius: 9px; background: #e0e7ff; color: #3730a3; margin-left: 6px; }
footer { color: var(--muted); font-size: 12px; text-align: center; padding: 20px; }
"""


def _fmt(x) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    if isinstance(x, (int, np.integer)) or (isinstance(x, float) and x.is_integer() and abs(x) >= 10):
        return f"{int(x)}"
    return f"{x:.3f}"


def _floor(floor) -> str:
    """The reliability caption's note of the ECE that sampling noise alone gives on these rows."""
    return "" if floor is None else f"; a perfectly calibrated judge would show about {_fmt(floor)} on as many rows"


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


def is_baseline(r: Evaluation) -> bool:
    """Baselines (label prior, base rate, mean, "longer wins") are named so: "baseline: label prior"."""
    return r.judge.lower().startswith("baseline")


def _label(metric: str) -> str:
    """A metric key as a column head: words that may wrap, category codes spelt out.

    >>> _label("roc_auc/H2")
    'roc auc · hate/threatening (H2)'
    """
    base, _, category = metric.partition("/")
    return base.replace("_", " ") + (f" · {category_name(category)}" if category else "")


def _cell(r: Evaluation, metric: str) -> str:
    ci = r.ci.get(metric)
    interval = f'<span class="ci">[{_fmt(ci[0])}, {_fmt(ci[1])}]</span>' if ci else ""
    return f'<td class="num {"primary" if metric == r.primary else ""}">{_fmt(r.metrics.get(metric))}{interval}</td>'


def _head(metric: str, primary: set[str]) -> str:
    return (f'<th class="{"primary" if metric in primary else ""}" title="{escape(metric)}: '
            f'{escape(HELP.get(metric.split("/")[0], ""))}">{escape(_label(metric))}{_arrow(metric)}</th>')


def _table(results: list[Evaluation], columns: list[str]) -> str:
    """Judges (and baselines) as rows, metrics as columns."""
    head = "".join(_head(c, {r.primary for r in results}) for c in columns)
    rows = [f"<tr class='{'baseline' if is_baseline(r) else ''}'><th>{escape(r.judge)}</th><td class='num'>{r.n}</td>"
            f"{''.join(_cell(r, c) for c in columns)}</tr>" for r in results]
    return (f'<div class="scroll"><table><thead><tr><th>judge</th><th>n</th>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div>")


def _detail_table(results: list[Evaluation], metrics: list[str]) -> str:
    """Per-category / per-metric numbers: one row per number, one column per judge (there are many
    categories and few judges, so this way round the table fits the page)."""
    head = "".join(f"<th>{escape(r.judge)}</th>" for r in results)
    rows = [f"<tr><th title='{escape(m)}'>{escape(_label(m))}{_arrow(m)}</th>{''.join(_cell(r, m) for r in results)}</tr>"
            for m in metrics]
    return (f'<div class="scroll"><table><thead><tr><th>metric · category</th>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div>")


def _interval(r: Evaluation, metric: str) -> str:
    ci = r.ci.get(metric)
    return f"{_fmt(r.metrics[metric])}" + (f" [{_fmt(ci[0])}, {_fmt(ci[1])}]" if ci else "")


def verdict(judge: Evaluation, baseline: Evaluation | None, metric: str) -> tuple[str, str]:
    """(css class, words) comparing a judge with a baseline on `metric`, by their 95% intervals."""
    if baseline is None or metric not in baseline.metrics:
        return "verdict-even", "no baseline was evaluated on these rows, so this number has nothing to beat"
    lower = metric.split("/")[0] in LOWER_IS_BETTER
    j, b = judge.metrics[metric], baseline.metrics[metric]
    if not (math.isfinite(j) and math.isfinite(b)):
        return "verdict-even", f"cannot compare with {baseline.judge} (undefined {metric})"
    better = j < b if lower else j > b
    (jl, jh), (bl, bh) = judge.ci.get(metric, (j, j)), baseline.ci.get(metric, (b, b))
    apart = (jh < bl) if lower else (jl > bh)
    if better and apart:
        return "verdict-good", f"better than {baseline.judge} ({_interval(baseline, metric)}); the intervals do not overlap"
    if better:
        return "verdict-even", (f"not clearly better than {baseline.judge} ({_interval(baseline, metric)}): "
                                "the intervals overlap")
    return "verdict-bad", f"no better than {baseline.judge} ({_interval(baseline, metric)})"


def _best(results: list[Evaluation], metric: str) -> Evaluation | None:
    scored = [r for r in results if math.isfinite(r.metrics.get(metric, float("nan")))]
    if not scored:
        return None
    sign = 1 if metric.split("/")[0] in LOWER_IS_BETTER else -1
    return min(scored, key=lambda r: sign * r.metrics[metric])


def best_baseline(results: list[Evaluation], r: Evaluation) -> Evaluation | None:
    """The best baseline evaluated on the same rows and task as `r`, on `r`'s primary metric."""
    same = [b for b in results if is_baseline(b) and (b.data, b.task, b.data_task) == (r.data, r.task, r.data_task)]
    return _best(same, r.primary)


def summary_lines(results: list[Evaluation]) -> list[dict]:
    """Per group of results on the same data and task: the best judge on the primary metric, its number
    with its interval, and the verdict beside the best baseline. Keys: title, judge, number, verdict, css."""
    lines = []
    for group in _groups(results).values():
        first = group[0]
        judges, baselines = [r for r in group if not is_baseline(r)], [r for r in group if is_baseline(r)]
        primaries = [r.primary for r in judges] or [first.primary]
        metric = max(set(primaries), key=primaries.count)
        best = _best(judges, metric)
        line = {"title": f"{first.task} · {first.data}", "judge": "", "number": "", "css": "verdict-even",
                "verdict": f"no judge has a {metric} on these rows"}
        if best is not None:
            direction = "lower" if metric.split("/")[0] in LOWER_IS_BETTER else "higher"
            css, words = verdict(best, _best(baselines, metric), metric)
            line.update(judge=best.judge + (f" (best of {len(judges)})" if len(judges) > 1 else ""), css=css,
                        number=f"{_label(metric)} {_interval(best, metric)}, {direction} is better, n = {best.n}",
                        verdict=words)
        trained_on = [r for r in judges if r.train_overlap]
        line["warning"] = "; ".join(f"{r.judge} was trained on {r.train_overlap} of these {r.n} rows' requests: "
                                    "its numbers here overstate it" for r in trained_on)
        lines.append(line)
    return lines


def _summary(results: list[Evaluation]) -> str:
    items = "".join(f"<li><b>{escape(x['title'])}</b>: {escape(x['judge'])} — {escape(x['number'])}: "
                    f"<span class='{x['css']}'>{escape(x['verdict'])}</span>."
                    + (f"<div class='warning'>⚠ {escape(x['warning'])}</div>" if x["warning"] else "") + "</li>"
                    for x in summary_lines(results))
    return (f'<section class="summary"><h2>In short</h2><p class="sub">The best judge of each section beside the best '
            f"trivial baseline on the same rows; 95% bootstrap intervals in brackets.</p><ul>{items}</ul></section>")


def _figure(png: str, caption: str, alt: str) -> str:
    return (f'<figure><img src="data:image/png;base64,{png}" alt="{escape(alt)}">'
            f"<figcaption>{escape(caption)}</figcaption></figure>")


def _confusion_matrix(truth: np.ndarray, decision: np.ndarray, k: int) -> np.ndarray:
    matrix = np.zeros((k, k), int)
    ok = (decision >= 0) & (decision < k)
    np.add.at(matrix, (truth[ok], decision[ok]), 1)
    return matrix


def _judge_figures(r: Evaluation) -> list[str]:
    # matplotlib (~0.5 s) is imported where a figure is drawn: `referee eval` without --report never needs it.
    from referee.evaluate import plots

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
                               (f"ECE {_fmt(m.get('ece_before'))} before, {_fmt(m['ece'])} after temperature scaling"
                                if "ece_before" in m else f"ECE {_fmt(m['ece'])}; no temperature fitted (pass --calibrate-on)")
                               + _floor(m.get("ece_floor")), "reliability diagram"))
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
                               (f"ECE {_fmt(m.get('ece_before/any'))} before, {_fmt(m.get('ece/any'))} after temperature scaling"
                                if "ece_before/any" in m else f"ECE {_fmt(m.get('ece/any'))}") + _floor(m.get("ece_floor/any")),
                               "reliability diagram"))
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
    from referee.evaluate import plots

    first = results[0]
    all_names = list(dict.fromkeys(c for r in results for c in r.metrics))
    headline = [c for c in all_names if _headline(c) and c.split("/")[0] not in DIAGNOSTICS]
    diagnostics = [c for c in all_names if _headline(c) and c.split("/")[0] in DIAGNOSTICS]
    detail = [c for c in all_names if not _headline(c)]
    judged = [r for r in results if not is_baseline(r)]
    kind = {"score": "Score", "pair": "Pair", "safety": "Safety", "reward": "Reward"}[first.task]
    what = " (over-refusal on requests)" if first.data_task == "prompts" else ""
    parts = [f'<section id="s{index}"><h2>{kind} judges{what} <span class="badge">{escape(first.data or "data")}</span></h2>',
             f'<p class="sub">{len(results)} judge(s) on the same rows; primary metric highlighted; 95% bootstrap intervals '
             f"in brackets ({first.n_boot} resamples); ↓ lower is better, ↑ higher is better. Hover a column for its meaning.</p>",
             _table(results, headline)]
    if diagnostics and judged:
        parts.append(f"<p class='sub' style='margin-top:14px'>Bias and calibration diagnostics</p>{_table(judged, diagnostics)}")
    if detail:
        parts.append(f"<details><summary>Per category / per metric ({len(detail)} numbers)</summary>"
                     f"{_detail_table(results, detail)}</details>")
    if len(results) > 1:
        primaries = [r.primary for r in results]
        metric = max(set(primaries), key=primaries.count)
        named = [r for r in results if metric in r.metrics]
        parts.append('<div class="figures">' + _figure(
            plots.compare([r.judge for r in named], [r.metrics[metric] for r in named],
                          [tuple(r.ci.get(metric, (None, None))) for r in named], metric,
                          baseline=[is_baseline(r) for r in named],
                          lower_is_better=metric.split("/")[0] in LOWER_IS_BETTER),
            "the same rows for every judge; baselines in grey", "comparison chart") + "</div>")
    for r in results:
        if is_baseline(r):
            continue  # a row in the table and a point in the chart; constant outputs have nothing to draw
        parts.append(f"<h3>{escape(r.judge)} <span class='badge'>n = {r.n}</span></h3>")
        if r.notes:
            parts.append('<div class="notes">' + "<br>".join(escape(n) for n in r.notes) + "</div>")
        parts.append('<div class="figures">' + "".join(_judge_figures(r)) + "</div>")
        parts.append(_mistakes(r))
    parts.append("</section>")
    return "\n".join(parts)


def _groups(results: list[Evaluation]) -> dict[tuple, list[Evaluation]]:
    """Results on the same data, judge task and data task, in order of first appearance."""
    groups: dict[tuple, list[Evaluation]] = {}
    for r in results:
        groups.setdefault((r.data, r.task, r.data_task), []).append(r)
    return groups


def write_report(out_dir: str | Path, results: list[Evaluation], title: str = "referee evaluation report") -> Path:
    """Write `index.html` and `metrics.json` for evaluations of one or more judges and tasks into
    `out_dir`; returns the path of index.html.

    >>> from referee import Conversation, ScoreExample, ScoreJudge
    >>> rated = [("How do I boil an egg?", "Boil it for seven minutes, then cool it in cold water.", 5),
    ...          ("How do I boil an egg?", "No idea.", 1),
    ...          ("What is the capital of France?", "Paris is the capital of France.", 5),
    ...          ("What is the capital of France?", "Not sure, look it up.", 2),
    ...          ("How many legs has a spider?", "A spider has eight legs.", 5),
    ...          ("How many legs has a spider?", "No idea, sorry.", 1),
    ...          ("What colour is the sky?", "The sky is blue on a clear day.", 5),
    ...          ("What colour is the sky?", "Not sure, sorry.", 1)]
    >>> rows = [ScoreExample(id=str(i), conversation=Conversation.from_text(prompt, response),
    ...                      metric="helpfulness", score=score, scale=(1, 5))
    ...         for i, (prompt, response, score) in enumerate(rated)]
    >>> train, test = rows[:6], rows[6:]  # the sky question is held out
    >>> judge = ScoreJudge(progress=False).fit(train)
    >>> import tempfile
    >>> from referee.evaluate.baselines import baselines
    >>> from referee.evaluate.evaluators import evaluate
    >>> results = [evaluate(judge, test, name="mine", n_boot=100)]
    >>> results += [evaluate(b, test, name=b.name, n_boot=100) for b in baselines("score", test, learn_from=train)]
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     page = write_report(f"{tmp}/report", results)
    ...     sorted(p.name for p in page.parent.iterdir()), "In short" in page.read_text()
    (['index.html', 'metrics.json'], True)
    """
    out_dir = Path(out_dir)
    groups = _groups(results)
    sections = [_section(i, group) for i, group in enumerate(groups.values())]
    nav = "".join(f'<a href="#s{i}">{escape(g[0].task)} · {escape(g[0].data)}</a>' for i, g in enumerate(groups.values()))
    when = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    html = (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">'
            f"<title>{escape(title)}</title><style>{CSS}</style></head><body>"
            f"<header><h1>{escape(title)}</h1><p>referee {__version__} · {when} · {len(results)} evaluation(s)</p></header>"
            f"<main><nav>{nav}</nav>{_summary(results)}{''.join(sections)}</main>"
            "<footer>Generated by referee eval. Numbers in metrics.json beside this file.</footer></body></html>")
    write_text(out_dir / "metrics.json", json.dumps([r.to_dict() for r in results], indent=1, ensure_ascii=False))
    write_text(out_dir / "index.html", html)
    return out_dir / "index.html"
