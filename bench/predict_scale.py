"""Judging at scale: rows/s and peak memory of `referee predict` in memory, streaming and on Ray with two
actors, for a TF-IDF and a frozen (MiniLM) pair judge, in one run on the same input; beside Ray, two
plain streaming processes, one per half of the input, at once: what two workers can get from these
cores without Ray, so that Ray's own cost can be told from the machine's.

    .venv/bin/python bench/predict_scale.py                          # the README table
    .venv/bin/python bench/predict_scale.py --rows 1000000 --engines stream --judges tfidf
    .venv/bin/python bench/predict_scale.py --rows 50000 --engines stream,halves,ray --judges tfidf --stream-rows 0 --rounds 4

The input is the real HH-RLHF harmless pairs of ../shared/data repeated to `--rows` lines (JSON lines in
the hh_rlhf format, whose ids are line positions, so every repeated row has a fresh id). The frozen
judge is measured on distinct rows only (`--frozen-rows`, at most 1,800), each run with an empty
embedding cache: repeated texts would be answered from the cache. Every measurement runs in a fresh
process; memory is the peak, sampled every second, of the proportional set size (PSS) summed over
that process and its children (Ray's workers), so memory that Ray's processes share counts once.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from itertools import cycle, islice
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
HH = DATA / "hh_rlhf_harmless" / "train.jsonl.gz"


def run_one(engine: str, judge: str, data: str, out: str) -> dict:
    """In the child process: one prediction, timed from the judge's loading to the last row written."""
    start = time.perf_counter()
    if engine == "memory":
        from referee.jobs.predict import predict
        summary = predict(judge, data, out)
    elif engine == "stream":
        from referee.jobs.stream import predict_stream
        summary = predict_stream(judge, data, out, chunk_rows=2000, progress=False)
    else:
        import ray
        from referee.jobs.ray_engine import predict_ray
        ray.init(num_cpus=3, include_dashboard=False, log_to_driver=False)  # two actors + one for reads
        # Batches of 2,000 rows (the CLI's default), fewer on small inputs: at least 40 batches, so that
        # both actors have work until the end.
        rows = sum(1 for _ in open(data, encoding="utf-8"))
        start = time.perf_counter()  # a cluster is started once, not per job
        summary = predict_ray(judge, data, out, actors=2, batch_rows=max(100, min(2000, rows // 40)), progress=False)
    return {"rows": summary["rows"], "seconds": time.perf_counter() - start}


def measure(engine: str, judge: Path, data: Path, work: Path) -> dict:
    """Run one prediction in a fresh process; sample its tree's memory while it runs. Engine "halves":
    two streaming processes at once, each on one half of the input (what two plain workers get from
    this machine's two cores, against which Ray's two actors can be read); seconds: the slower one's."""
    import psutil

    parts = [data]
    if engine == "halves":
        lines = data.read_text(encoding="utf-8").splitlines(keepends=True)
        parts = [work / f"half-{i}-{data.name}" for i in range(2)]
        for i, part in enumerate(parts):
            part.write_text("".join(lines[i * len(lines) // 2:(i + 1) * len(lines) // 2]), encoding="utf-8")
    outs, children = [], []
    for part in parts:
        outs.append(work / f"out-{engine}-{judge.name}-{time.monotonic_ns()}.{'csv' if engine == 'memory' else 'parquet'}")
        env = dict(os.environ, REFEREE_CACHE=tempfile.mkdtemp(dir=work, prefix="cache-"))
        one = "stream" if engine == "halves" else engine
        children.append(subprocess.Popen([sys.executable, __file__, "--one", one, str(judge), str(part), str(outs[-1])],
                                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True))
    peak = 0
    while any(child.poll() is None for child in children):
        total = 0
        for child in children:
            try:
                parent = psutil.Process(child.pid)
                for p in [parent, *parent.children(recursive=True)]:
                    try:
                        total += p.memory_full_info().pss
                    except (psutil.NoSuchProcess, psutil.AccessDenied):
                        pass
            except psutil.NoSuchProcess:
                pass
        peak = max(peak, total)
        # Once a second: reading the PSS of Ray's ~11 processes takes ~30 ms of CPU on the same two cores
        # the engine runs on; every 0.2 s that took 15% of a core from Ray, a few % from one process.
        time.sleep(1.0)
    results = []
    for child, out in zip(children, outs):
        stdout = child.stdout.read()
        if child.returncode != 0:
            raise SystemExit(f"{engine} on {judge.name} failed (exit {child.returncode}): {stdout[-2000:]}")
        results.append(json.loads(stdout.strip().splitlines()[-1]))
        shutil.rmtree(out, ignore_errors=True) if out.is_dir() else out.unlink(missing_ok=True)
    if engine == "halves":
        for part in parts:
            part.unlink()
    return {"rows": sum(r["rows"] for r in results), "seconds": max(r["seconds"] for r in results), "peak_mib": peak / 2**20}


def write_input(path: Path, rows: int) -> Path:
    with gzip.open(HH, "rt", encoding="utf-8") as handle:
        lines = [line.rstrip("\n") for line in handle if line.strip()]
    with open(path, "w", encoding="utf-8") as handle:
        for line in islice(cycle(lines), rows):
            handle.write(line + "\n")
    return path


def train_judges(work: Path, which: list[str]) -> dict[str, Path]:
    from referee.data import load
    from referee.judges import PairJudge

    pairs = load(HH).examples
    judges = {}
    if "tfidf" in which:
        judges["tfidf"] = PairJudge(progress=False).fit(pairs[:600]).save(work / "tfidf")
    if "frozen" in which:
        judges["frozen"] = PairJudge(features="frozen", progress=False).fit(pairs[:200]).save(work / "frozen")
    return {k: Path(v) for k, v in judges.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description="referee predict at scale: in memory vs streaming vs Ray")
    parser.add_argument("--rows", type=int, default=20000, help="input rows for the TF-IDF judge")
    parser.add_argument("--memory-rows", type=int, default=None, help="rows for the in-memory path (default: --rows)")
    parser.add_argument("--stream-rows", type=int, default=None,
                        help="also stream the TF-IDF judge over this many rows, to see memory stay flat (default: 10x --rows; 0: not)")
    parser.add_argument("--frozen-rows", type=int, default=600, help="distinct rows for the frozen judge (<= 1800)")
    parser.add_argument("--engines", default="memory,stream,halves,ray",
                        help="comma-separated: memory, stream, halves (two streaming processes on the halves), ray")
    parser.add_argument("--rounds", type=int, default=1,
                        help="measure every engine this many times, taking turns (the order reversed every other round)")
    parser.add_argument("--judges", default="tfidf,frozen", help="comma-separated: tfidf, frozen")
    parser.add_argument("--work", default=None, help="folder for inputs, judges and outputs (default: a temporary one)")
    parser.add_argument("--one", nargs=4, metavar=("ENGINE", "JUDGE", "DATA", "OUT"), help=argparse.SUPPRESS)
    a = parser.parse_args(argv)
    if a.one:
        print(json.dumps(run_one(*a.one)))
        return
    engines, which = a.engines.split(","), a.judges.split(",")
    work = Path(a.work or tempfile.mkdtemp(prefix="referee-predict-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ["REFEREE_CACHE"] = str(work / "train-cache")
    print(f"2 CPU cores shared with other jobs (load average {os.getloadavg()[0]:.1f} at the start); work in {work}")
    judges = train_judges(work, which)
    sizes = {"tfidf": a.rows, "frozen": min(a.frozen_rows, 1800)}
    table, rounds = [], {}  # rounds: (judge, round) -> {engine: rows/s}
    for name, judge in judges.items():
        big = write_input(work / f"in-{sizes[name]}.jsonl", sizes[name])
        small_rows = min(a.memory_rows or sizes[name], sizes[name])
        small = big if small_rows == sizes[name] else write_input(work / f"in-{small_rows}.jsonl", small_rows)
        base = None
        for turn in range(a.rounds):
            # Rounds take the engines in turn, the order reversed every other round: on a shared
            # machine whose speed drifts, a ratio of runs made one after the other says little.
            for engine in engines if turn % 2 == 0 else engines[::-1]:
                data = small if engine == "memory" else big
                r = measure(engine, judge, data, work)
                rate = r["rows"] / r["seconds"]
                base = rate if engine == "memory" else base
                table.append((name, engine, r["rows"], r["seconds"], rate, r["peak_mib"],
                              f"{rate / base:.2f}x" if base else "-"))
                rounds.setdefault((name, turn), {})[engine] = rate
                print(f"  {name} {engine}: {r['rows']:,} rows in {r['seconds']:.1f} s, peak {r['peak_mib']:.0f} MiB",
                      flush=True)
        big.unlink()
        if small != big:
            small.unlink()
        more = 10 * sizes[name] if a.stream_rows is None else a.stream_rows  # 0: no larger run
        if name == "tfidf" and "stream" in engines and more > sizes[name]:
            larger = write_input(work / f"in-{more}.jsonl", more)
            r = measure("stream", judge, larger, work)
            rate = r["rows"] / r["seconds"]
            table.append((name, "stream", r["rows"], r["seconds"], rate, r["peak_mib"], f"{rate / base:.2f}x" if base else "-"))
            print(f"  {name} stream: {r['rows']:,} rows in {r['seconds']:.1f} s, peak {r['peak_mib']:.0f} MiB", flush=True)
            larger.unlink()
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}\n")
    for name in judges:
        for engine in ("halves", "ray"):
            ratios = [r[engine] / r["stream"] for (judge, _), r in sorted(rounds.items())
                      if judge == name and engine in r and "stream" in r]
            if ratios:
                print(f"{name}, {engine} against one streaming process, round by round: "
                      + ", ".join(f"{x:.2f}x" for x in ratios) + f"; median {statistics.median(ratios):.2f}x")
    print("| judge | engine | rows | seconds | rows/s | peak memory (MiB) | rows/s vs in-memory |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, engine, rows, seconds, rate, peak, ratio in table:
        label = {"memory": "in memory", "stream": "streaming", "halves": "2 streaming processes, one per half",
                 "ray": "Ray, 2 actors"}[engine]
        print(f"| {name} | {label} | {rows:,} | {seconds:.1f} | {rate:.1f} | {peak:.0f} | {ratio} |")


if __name__ == "__main__":
    main()
