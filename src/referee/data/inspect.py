"""What `referee data inspect` reports about a data file: format and task, rows, label distribution,
languages (by writing script), length statistics and problems — as one dict (`--json`) or as text.

Files that hold no examples but belong to a data set — an LLM judge's predictions on PandaLM, a
Kaggle submission, the DA5401 metric catalogue and score vector — are described too, with task
"predictions" or "catalogue", rather than refused.
"""

from __future__ import annotations

import statistics
import unicodedata
from collections import Counter
from pathlib import Path

from referee.data import load
from referee.data.da5401 import EMBEDDINGS_FILE, NAMES_FILE, describe_catalogue, describe_scores
from referee.data.files import LoadResult, base_name, csv_header, first_json_record, read_csv
from referee.data.pandalm import load_judge_predictions, prediction_field
from referee.data.split import group_key

# Unicode name prefixes -> script names shown; letters of other scripts count under their own prefix.
SCRIPTS = {"LATIN": "Latin", "CJK": "CJK", "HIRAGANA": "Japanese kana", "KATAKANA": "Japanese kana",
           "HANGUL": "Hangul", "CYRILLIC": "Cyrillic", "ARABIC": "Arabic", "DEVANAGARI": "Devanagari",
           "BENGALI": "Bengali", "TAMIL": "Tamil", "TELUGU": "Telugu", "KANNADA": "Kannada",
           "MALAYALAM": "Malayalam", "GUJARATI": "Gujarati", "GURMUKHI": "Gurmukhi", "THAI": "Thai",
           "HEBREW": "Hebrew", "GREEK": "Greek"}


def script_of(text: str, limit: int = 2000) -> str:
    """The writing script most of the letters of `text` are in ("none" without letters).

    >>> script_of("नमस्ते दुनिया, hello")
    'Devanagari'
    """
    counts: Counter = Counter()
    for ch in text[:limit]:
        if ch.isalpha():
            prefix = unicodedata.name(ch, "UNKNOWN").split(" ", 1)[0]
            counts[SCRIPTS.get(prefix, prefix.title())] += 1
    return counts.most_common(1)[0][0] if counts else "none"


def inspect(path: str, format: str | None = None, *, columns=None, on_error: str = "raise") -> dict:
    """The summary of `path` (any input `referee.data.load` takes)."""
    other = describe_other(Path(path)) if format is None and not columns else None
    if other is not None:
        return other
    return summarize(load(path, format, columns=columns, on_error=on_error))


def describe_other(path: Path) -> dict | None:
    """A summary for a file that belongs to a data set but holds no examples, or None."""
    if not path.exists():
        return None
    base = {"path": str(path), "languages": {}, "lengths": {}, "problems": []}
    if path.is_dir() and (path / NAMES_FILE).exists() or path.name in (NAMES_FILE, EMBEDDINGS_FILE):
        folder = path if path.is_dir() else path.parent
        catalogue = describe_catalogue(folder)
        groups = catalogue.pop("groups")
        return {**base, "format": "da5401_catalogue", "task": "catalogue", "rows": catalogue["metrics"],
                "labels": dict(sorted(groups.items(), key=lambda kv: -kv[1])), "catalogue": catalogue}
    if path.is_file() and path.suffix == ".npy":
        scores = describe_scores(path)
        return {**base, "format": "scores", "task": "catalogue", "rows": scores.pop("rows"),
                "labels": scores.pop("labels"), "statistics": scores}
    if path.is_file() and base_name(path).endswith(".json"):
        record = first_json_record(path)
        if isinstance(record, dict) and prediction_field(record):
            predictions = load_judge_predictions(path)
            failed = sum(v is None for v in predictions.values())
            labels = Counter("unparsed" if v is None else v for v in predictions.values())
            return {**base, "format": "pandalm_predictions", "task": "predictions", "rows": len(predictions),
                    "labels": dict(labels.most_common()),
                    "problems": [f"{failed} prediction(s) the judge did not give as 1, 2 or tie (None)"] if failed else []}
    if path.is_file() and base_name(path).endswith(".csv"):
        header = csv_header(path)
        if header[:1] == ["id"] and {"winner_model_a", "winner_model_b", "winner_tie"} <= set(header) \
                and "prompt" not in header:
            _, rows = read_csv(path)
            means = {c: round(statistics.fmean(float(r[c]) for _, r in rows), 4)
                     for c in ("winner_model_a", "winner_model_b", "winner_tie")}
            return {**base, "format": "arena_submission", "task": "predictions", "rows": len(rows),
                    "labels": {"mean p": means}}
    return None


def texts(example) -> tuple[str, str | None]:
    """(request, response) texts of an example; for a pair the response is A's and B's joined."""
    if example.task == "pair":
        return example.a.prompt, f"{example.response_a}\n{example.response_b}"
    return example.conversation.prompt, example.conversation.response


def length_stats(values: list[int]) -> dict:
    if not values:
        return {}
    return {"min": min(values), "median": int(statistics.median(values)), "mean": round(statistics.fmean(values), 1),
            "max": max(values)}


def label_distribution(examples: list, task: str) -> dict:
    if task == "pair":
        labels = Counter(str(e.label) for e in examples)
        out = {k: labels[k] for k in ("A", "B", "tie", "None") if labels[k]}
        soft = sum(e.soft is not None for e in examples)
        if soft:
            out["soft"] = soft
        return out
    if task == "score":
        by_metric: dict[str, list] = {}
        for e in examples:
            by_metric.setdefault(e.metric, []).append(e)
        out = {}
        for metric, group in sorted(by_metric.items()):
            scores = [e.score for e in group if e.score is not None]
            entry = {"n": len(group), "scale": list(group[0].scale)}
            if scores:
                entry.update(mean=round(statistics.fmean(scores), 3), min=min(scores), max=max(scores))
            if len(scores) < len(group):
                entry["unlabelled"] = len(group) - len(scores)
            out[metric] = entry
        return out
    if task == "safety":
        out = {}
        for e in examples:
            for category, value in e.labels.items():
                entry = out.setdefault(category, {"true": 0, "false": 0, "unknown": 0})
                entry["true" if value is True else "false" if value is False else "unknown"] += 1
        return out
    categories = Counter(str(e.category) for e in examples)
    return {"label": dict(Counter(str(e.label) for e in examples)),
            "category": dict(categories.most_common())}


def summarize(result: LoadResult) -> dict:
    examples = result.examples
    requests, responses = zip(*(texts(e) for e in examples)) if examples else ((), ())
    scripts = Counter(script_of(f"{q} {r or ''}") for q, r in zip(requests, responses))
    problems = []
    if result.skipped:
        reasons = Counter(why for _, why in result.skipped)
        problems.append(f"{len(result.skipped)} row(s) skipped: " +
                        "; ".join(f"{n} x {why}" for why, n in reasons.most_common(5)))
    problems += result.notes
    empty = sum(1 for e in examples for r in ((e.response_a, e.response_b) if e.task == "pair" else
                                              (e.conversation.response,)) if r is not None and not r.strip())
    if empty:
        problems.append(f"{empty} empty response(s)")
    if result.task == "pair":
        same = sum(e.response_a.strip() == e.response_b.strip() for e in examples)
        if same:
            problems.append(f"{same} pair(s) whose two responses are identical")
    multi = sum(len((e.a if e.task == "pair" else e.conversation).turns) > 2 for e in examples)
    lengths = {"request_chars": length_stats([len(q) for q in requests]),
               "response_chars": length_stats([len(r) for r in responses if r is not None])}
    if multi:
        lengths["multi_turn"] = multi
    return {
        "path": result.path, "format": result.format, "task": result.task, "rows": len(examples),
        "prompts": len({group_key(e) for e in examples}),
        "labels": label_distribution(examples, result.task),
        "languages": dict(scripts.most_common()),
        "lengths": {k: v for k, v in lengths.items() if v},
        "skipped": len(result.skipped),
        "problems": problems,
    }


def render(summary: dict) -> str:
    """The summary as aligned text lines."""
    lines = [f"{summary['path']}",
             f"  format     {summary['format']}  (task: {summary['task']})",
             f"  rows       {summary['rows']:,}" + (f"  ({summary['prompts']:,} distinct prompts)" if "prompts" in summary else "")]
    labels = summary.get("labels") or {}
    if summary["task"] == "score":
        lines.append("  labels     metric: n, mean [min-max] on scale")
        for metric, entry in labels.items():
            span = f"{entry['mean']} [{entry['min']:g}-{entry['max']:g}]" if "mean" in entry else "unlabelled"
            lines.append(f"             {metric}: {entry['n']:,}, {span} on {entry['scale'][0]:g}-{entry['scale'][1]:g}")
    elif summary["task"] == "safety":
        lines.append("  labels     category: true / false / unknown")
        for category, entry in labels.items():
            lines.append(f"             {category}: {entry['true']:,} / {entry['false']:,} / {entry['unknown']:,}")
    elif summary["task"] == "prompts":
        lines.append(f"  labels     {fmt(labels.get('label', {}))}")
        lines.append(f"  categories {fmt(labels.get('category', {}), limit=8)}")
    else:
        lines.append(f"  labels     {fmt(labels, limit=12)}")
    for key in ("catalogue", "statistics"):
        if key in summary:
            lines.append(f"  {key:<10} {fmt(summary[key])}")
    if summary["format"] == "da5401_catalogue":
        lines[-2] = lines[-2].replace("  labels    ", "  groups    ")
    if summary.get("languages"):
        lines.append(f"  languages  {fmt(summary['languages'])}  (by script)")
    for name, stats in (summary.get("lengths") or {}).items():
        value = stats if isinstance(stats, int) else "min {min:,} / median {median:,} / mean {mean:,} / max {max:,}".format(**stats)
        lines.append(f"  {name:<14} {value}" if name != "multi_turn" else f"  multi-turn     {value:,} conversation(s)")
    problems = summary.get("problems") or []
    lines.append("  problems   " + ("none" if not problems else problems[0]))
    lines += [f"             {p}" for p in problems[1:]]
    return "\n".join(lines)


def fmt(mapping: dict, limit: int | None = None) -> str:
    items = list(mapping.items())
    shown = ", ".join(f"{k} {v:,}" if isinstance(v, int) and not isinstance(v, bool) else f"{k} {v}"
                      for k, v in items[:limit])
    return shown + (f", … ({len(items) - limit} more)" if limit and len(items) > limit else "")

