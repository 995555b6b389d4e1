"""The `referee` command. It only wires what the library already does; each command's work lives in
its own package (data, judges, evaluate, serve, align)."""

from __future__ import annotations

import argparse
import sys

from referee import __version__
from referee.errors import UserError


# --- referee data ------------------------------------------------------------------------------

def _add_data(sub):
    data = sub.add_parser("data", help="inspect data files").add_subparsers(dest="data_command", required=True)
    inspect = data.add_parser("inspect", help="detected format and task, rows, labels, languages, lengths, problems")
    inspect.add_argument("path", help="a data file or folder (or 'hf:NAME', or 'default' for the embedded pyrit set)")
    inspect.add_argument("--format", help="override format detection (see README, 'Data formats')")
    inspect.add_argument("--json", action="store_true", help="print one JSON object")
    inspect.add_argument("--columns", help="column mapping for csv/jsonl/parquet/hf, e.g. prompt=question,response=answer,score=rating")
    inspect.add_argument("--on-error", choices=("raise", "skip"), default="raise",
                         help="stop at the first bad row (default), or skip bad rows and count them")
    inspect.set_defaults(func=_data_inspect)


def _data_inspect(args):
    import json

    from referee.data.inspect import inspect, render

    summary = inspect(args.path, args.format, columns=args.columns, on_error=args.on_error)
    print(json.dumps(summary, ensure_ascii=False) if args.json else render(summary))


# --- referee train / predict -------------------------------------------------------------------

def _add_judges(sub):
    pass


# --- referee eval ------------------------------------------------------------------------------

def _add_eval(sub):
    ev = sub.add_parser("eval", help="evaluate judges (and outside predictions) on labelled data",
                        description="Evaluate judges side by side on the same labelled rows: metrics with 95%% "
                                    "bootstrap intervals, calibration, position and length bias; optionally an HTML report.")
    ev.add_argument("judges", nargs="*", metavar="JUDGE_DIR", help="judge folders written by referee train")
    ev.add_argument("--data", required=True, help="labelled data of the judges' task (any format referee.data.load reads)")
    ev.add_argument("--format", help="data format; default: detect it")
    ev.add_argument("--predictions", action="append", default=[], metavar="FILE",
                    help="predictions from outside referee, as a judge: a CSV in a `referee predict` format, or a "
                         "PandaLM judge file (gpt-3.5-turbo-testset-v1.json); matched to the data by id; repeatable")
    ev.add_argument("--calibrate-on", metavar="PATH",
                    help="labelled validation data: fit each pair/safety judge's temperature on it first "
                         "(the judge folder is not changed); the report shows reliability before and after")
    ev.add_argument("--json", action="store_true", help="print one JSON object per judge and line: task, n, metrics, ci")
    ev.add_argument("--report", metavar="DIR", help="write DIR/index.html (plots embedded) and DIR/metrics.json")
    ev.add_argument("--bootstrap", type=int, default=1000, metavar="N", help="bootstrap resamples for the intervals")
    ev.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    ev.set_defaults(func=_eval)


def _eval(args):
    import json
    from pathlib import Path

    from referee.data import load
    from referee.evaluate import evaluate, read_predictions, write_report
    from referee.evaluate.evaluator import check_task
    from referee.judges import load_judge

    if not args.judges and not args.predictions:
        raise UserError("referee eval: name at least one JUDGE_DIR or --predictions FILE")
    examples = load(args.data, args.format).examples
    valid = load(args.calibrate_on).examples if args.calibrate_on else None
    judges = [(Path(folder).name, folder, load_judge(folder)) for folder in args.judges]
    judges += [(None, None, read_predictions(path)) for path in args.predictions]
    results = []
    for name, folder, judge in judges:
        if valid is not None and judge.task in ("pair", "safety") and folder is not None:
            check_task(name, judge.task, valid, where=args.calibrate_on)
            judge.calibrate(valid)
        results.append(evaluate(judge, examples, name=name, where=args.data, folder=folder, n_boot=args.bootstrap,
                                seed=args.seed))
    for r in results:
        if args.json:
            print(json.dumps(r.to_dict(), ensure_ascii=False))
            continue
        print(f"{r.judge} ({r.task} judge, n = {r.n})")
        for key, value in r.metrics.items():
            if "/" in key and not key.endswith("/any"):
                continue
            interval = f"  [{r.ci[key][0]:.4f}, {r.ci[key][1]:.4f}]" if key in r.ci else ""
            print(f"  {key:<28}{value:9.4f}{interval}{'   (primary)' if key == r.primary else ''}")
        for note in r.notes:
            print(f"  note: {note}")
    if args.report:
        path = write_report(args.report, results)
        print(f"report written to {path}", file=sys.stderr if args.json else sys.stdout)


# --- referee serve -----------------------------------------------------------------------------

def _add_serve(sub):
    pass


# --- referee demo ------------------------------------------------------------------------------

def _add_demo(sub):
    pass


# --- referee align -----------------------------------------------------------------------------

def _add_align(sub):
    pass


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="referee", description="Train, evaluate and serve judges of chatbot answers.")
    parser.add_argument("--version", action="version", version=f"referee {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_data, _add_judges, _add_eval, _add_serve, _add_demo, _add_align):
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except (UserError, FileNotFoundError) as err:
        print(f"referee: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("referee: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
