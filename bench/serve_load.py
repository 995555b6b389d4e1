"""Serving under load: micro-batching on vs off, same judges, same requests, same run.

    .venv/bin/python bench/serve_load.py [--judges DIR] [--requests 400] [--concurrency 32]

For each judge and each setting it starts a real server (`referee serve`, a separate process, on
127.0.0.1 with a fresh embedding cache, so every text is encoded for real), warms it up, sends
`--requests` distinct real requests from ../shared/data at `--concurrency` with httpx (async), and
stops. It prints throughput, p50 / p99 latency, errors (must be 0) and the judge calls made.
Batching on: --max-batch 32 --max-wait-ms 5 (the defaults); off: --max-batch 1 --max-wait-ms 0.
Judges come from --judges (folders made by bench/serve_judges.py) or are trained first (--frozen).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from referee.data import load
from referee.serve.server import free_port

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_judges import DATA, train_judges  # noqa: E402

SETTINGS = {"on": ["--max-batch", "32", "--max-wait-ms", "5"], "off": ["--max-batch", "1", "--max-wait-ms", "0"]}
JUDGES = ["arena-pair", "arena-pair-minilm", "moderation-safety-minilm"]


def requests_for(task: str, n: int, offset: int) -> list[tuple[str, dict]]:
    """n distinct (path, body) pairs from real data, starting at row `offset`."""
    if task == "pair":
        rows = load(DATA / "arena" / "train.csv").examples
        return [("/v1/compare", {"a": ex.a.to_dict(), "b": ex.b.to_dict()}) for ex in rows[offset:offset + n]]
    rows = load(DATA / "openai_moderation" / "samples.dev.jsonl.gz").examples
    return [("/v1/safety", {"conversation": ex.conversation.to_dict()}) for ex in rows[offset:offset + n]]


async def send_all(url: str, requests: list[tuple[str, dict]], concurrency: int, name: str):
    """Latencies in seconds, error descriptions, and the wall time of the whole run."""
    latencies, errors = [], []
    queue = list(reversed(requests))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        async def worker():
            while queue:
                path, body = queue.pop()
                started = time.perf_counter()
                try:
                    r = await client.post(f"{path}?judge={name}", json=body)
                    if r.status_code != 200:
                        errors.append(f"{r.status_code}: {r.text[:200]}")
                except httpx.HTTPError as err:
                    errors.append(repr(err))
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return np.array(latencies), errors, time.perf_counter() - started


def run_one(folder: Path, setting: str, requests, warmup, concurrency: int) -> dict:
    port = free_port()
    env = dict(os.environ, REFEREE_CACHE=tempfile.mkdtemp(prefix="serve-load-cache-"))
    server = subprocess.Popen([sys.executable, "-m", "referee.cli", "serve", str(folder), "--port", str(port),
                               "--max-queue", "1024", *SETTINGS[setting]], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server for {folder.name} did not start")
            time.sleep(0.2)
        # Warm-up: loads the encoder model (lazily, on the first call) on requests not measured.
        asyncio.run(send_all(url, warmup, 4, folder.name))
        calls_before = judge_calls(url, folder.name)
        latencies, errors, wall = asyncio.run(send_all(url, requests, concurrency, folder.name))
        calls = judge_calls(url, folder.name) - calls_before
    finally:
        server.terminate()
        server.wait(30)
    return {"judge": folder.name, "batching": setting, "n": len(requests), "throughput": len(requests) / wall,
            "p50": 1000 * np.percentile(latencies, 50), "p99": 1000 * np.percentile(latencies, 99),
            "errors": len(errors), "calls": calls, "first_error": errors[0] if errors else ""}


def judge_calls(url: str, name: str) -> int:
    listing = httpx.get(url + "/v1/judges", timeout=10).json()["judges"]
    return next(j["calls"] for j in listing if j["name"] == name)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--judges", type=Path, help="folder of judge folders (bench/serve_judges.py --frozen)")
    parser.add_argument("--only", nargs="+", default=JUDGES, help="judge folder names to measure")
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=1, help="runs per setting, off and on alternating; the table "
                        "shows each setting's median run (by throughput), against noise from other processes")
    args = parser.parse_args()
    if args.judges is None:
        args.judges = Path(tempfile.mkdtemp(prefix="serve-load-judges-"))
        train_judges(args.judges, frozen=True)
    rows = []
    for name in args.only:
        folder = args.judges / name
        task = "pair" if "pair" in name else "safety"
        # The last rows of the data, so that warm-up and measured requests never share a text.
        requests = requests_for(task, args.requests, 0)
        warmup = requests_for(task, 16, args.requests)
        runs = {"off": [], "on": []}
        for _ in range(args.repeats):
            for setting in ("off", "on"):
                row = run_one(folder, setting, requests, warmup, args.concurrency)
                runs[setting].append(row)
                print(f"{name} batching {setting}: {row['throughput']:.1f} req/s, p50 {row['p50']:.0f} ms, "
                      f"p99 {row['p99']:.0f} ms, errors {row['errors']} {row['first_error']}", flush=True)
        for setting in ("off", "on"):
            by_speed = sorted(runs[setting], key=lambda r: r["throughput"])
            rows.append(by_speed[len(by_speed) // 2] | {"errors": sum(r["errors"] for r in by_speed)})
    print(f"\n{args.requests} requests at concurrency {args.concurrency}, server and client on one machine "
          f"({os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, load average "
          f"{os.getloadavg()[0]:.1f}); a fresh embedding cache per run; median of {args.repeats} run(s) per setting, "
          "errors summed over all runs\n")
    print("| judge | batching | throughput (req/s) | p50 (ms) | p99 (ms) | errors | judge calls | items per call |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['judge']} | {r['batching']} | {r['throughput']:.1f} | {r['p50']:.0f} | {r['p99']:.0f} | "
              f"{r['errors']} | {r['calls']} | {r['n'] / max(1, r['calls']):.1f} |")
    if any(r["errors"] for r in rows):
        sys.exit("errors: the server must answer every request of a bounded load")


if __name__ == "__main__":
    main()
