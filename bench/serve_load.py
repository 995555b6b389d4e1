"""Serving under load and under abuse, against a real `referee serve` process on 127.0.0.1.

    .venv/bin/python bench/serve_load.py latency [--requests 48] [--concurrency 1 8 32] [--rounds 4]
    .venv/bin/python bench/serve_load.py memory [--requests 6000] [--cache-mib 1]
    .venv/bin/python bench/serve_load.py abuse

latency: a frozen all-MiniLM-L6-v2 pair judge (trained on Arena by bench/serve_judges.py) answers real
  Arena compares (two whole conversations, responses cut at MiniLM's 256 tokens) at each concurrency,
  micro-batching on (the defaults, --max-batch 32 --max-wait-ms 0: what waits while the judge is busy)
  and off (--max-batch 1 --max-wait-ms 0). One server per setting, each with a fresh embedding cache,
  and a fresh block of Arena rows per concurrency, so every text is encoded for real. The baseline, in
  the same run: the same judge's predict_proba in this process on the same pairs with a fresh cache
  (what the encoder does offline). Each block is split into --rounds; in each round the baseline and
  both servers take the same rows in turn (the servers' order alternating), and "vs offline" is the
  median of the rounds' ratios: the shared CPU's slow spells fall on every setting alike.
memory: the server's RSS after warm-up and every --requests/6 distinct requests (short texts, made
  distinct by a counter), with the in-memory embedding cache capped at --cache-mib and uncapped.
abuse: issue 15's items 2-5 against a live server of TF-IDF judges with default limits, while a
  thread polls /healthz every 50 ms: repeated and too many metrics, the heaviest legal score request,
  100,000 empty items, non-finite scales, and connections that send nothing or half a header. It
  reports every probe's status, time and answer size, and the slowest /healthz answer (target 100 ms).

The CPU is shared (other processes may run beside it): the table prints the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import numpy as np
import psutil

from referee.data import load, load_default
from referee.paths import cache_dir

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_judges import DATA, train_judges  # noqa: E402

SETTINGS = {"off": ["--max-batch", "1", "--max-wait-ms", "0"], "on": ["--max-batch", "32", "--max-wait-ms", "0"]}


# --- a real server --------------------------------------------------------------------------------

@contextmanager
def server(folders: list[Path], *args: str, cache: str | None = None):
    """`referee serve FOLDERS --port 0 ARGS` in a subprocess; yields (url, process) once /readyz is ready.

    Each server gets an empty embedding cache; the encoder's ONNX export, made once in this process's
    cache, is linked into it (exporting is a one-off cost, not serving)."""
    if cache is None:
        cache = tempfile.mkdtemp(prefix="serve-load-cache-")
        os.symlink(cache_dir("onnx"), Path(cache) / "onnx")
    env = dict(os.environ, REFEREE_CACHE=cache)
    proc = subprocess.Popen([sys.executable, "-m", "referee.cli", "serve", *map(str, folders), "--port", "0",
                             "--max-queue", "1024", *args], env=env, stdout=subprocess.PIPE, text=True)
    try:
        lines = []
        for line in iter(proc.stdout.readline, ""):  # the URL, once the port listens (after an export's line)
            lines.append(line)
            if "http://" in line:
                break
        else:
            raise RuntimeError(f"the server did not start: {''.join(lines)!r}")
        url = "http://" + line.split("http://")[1].split("/")[0]
        deadline = time.monotonic() + 300
        while httpx.get(url + "/readyz", timeout=30).status_code != 200:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the server did not get ready")
            time.sleep(0.2)
        yield url, proc
    finally:
        proc.terminate()
        proc.wait(60)


async def send_all(url: str, requests: list[tuple[str, dict]], concurrency: int):
    """Latencies in seconds, error descriptions, and the wall time of the whole run."""
    latencies, errors = [], []
    queue = list(reversed(requests))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as client:
        async def worker():
            while queue:
                path, body = queue.pop()
                started = time.perf_counter()
                try:
                    r = await client.post(path, json=body)
                    if r.status_code != 200:
                        errors.append(f"{r.status_code}: {r.text[:200]}")
                except httpx.HTTPError as err:
                    errors.append(repr(err))
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return np.array(latencies), errors, time.perf_counter() - started


def judge_calls(url: str) -> int:
    return sum(j["calls"] for j in httpx.get(url + "/v1/judges", timeout=30).json()["judges"])


def machine() -> str:
    return (f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), load average "
            f"{os.getloadavg()[0]:.1f} at the end: the CPU is shared with other processes")


def frozen_pair_judge(judges: Path | None) -> Path:
    if judges is None:
        judges = Path(tempfile.mkdtemp(prefix="serve-load-judges-"))
    if not (judges / "arena-pair-minilm").is_dir():
        train_judges(judges, only=["arena-pair-minilm"])
    return judges / "arena-pair-minilm"


# --- latency: concurrency x batching ------------------------------------------------------------------

def latency(args) -> None:
    folder = frozen_pair_judge(args.judges)
    arena = load(DATA / "arena" / "train.csv").examples
    n, levels, rounds = args.requests, args.concurrency, args.rounds
    blocks = {c: arena[16 + i * n:16 + (i + 1) * n] for i, c in enumerate(levels)}  # rows 0-15: warm-up
    if 16 + len(levels) * n > len(arena):
        sys.exit(f"--requests {n} x {len(levels)} levels needs more than Arena's {len(arena)} rows")
    as_requests = lambda rows: [("/v1/compare", {"a": ex.a.to_dict(), "b": ex.b.to_dict()}) for ex in rows]  # noqa: E731

    # The baseline: the same judge on the same pairs in this process, fresh cache, one call per 32 pairs.
    from referee.judges import load_judge

    os.environ["REFEREE_CACHE"] = tempfile.mkdtemp(prefix="serve-load-offline-")
    judge = load_judge(folder)
    judge.predict_proba(arena[:16])  # loads the model

    def offline(rows):
        started = time.perf_counter()
        for i in range(0, len(rows), 32):
            judge.predict_proba(rows[i:i + 32])
        return time.perf_counter() - started

    # Every setting runs on every round's rows, in an order that alternates round by round, so that
    # a slower spell of the shared CPU falls on all of them alike (one server after the other once
    # made whichever ran second look 9-20% slower).
    settings = list(dict.fromkeys(args.batching))
    runs = {(c, s): {"lat": [], "errors": [], "wall": 0.0, "calls": 0, "ratios": []} for c in levels for s in settings}
    with ExitStack() as stack:
        urls = {s: stack.enter_context(server([folder], *SETTINGS[s]))[0] for s in settings}
        for url in urls.values():
            asyncio.run(send_all(url, as_requests(arena[:16]), 4))  # warm-up on rows not measured
        for c in levels:
            for r in range(rounds):
                rows = blocks[c][r * n // rounds:(r + 1) * n // rounds]
                base = len(rows) / offline(rows)
                for s in settings if r % 2 == 0 else settings[::-1]:
                    calls = judge_calls(urls[s])
                    lat, errors, wall = asyncio.run(send_all(urls[s], as_requests(rows), c))
                    run = runs[c, s]
                    run["lat"] += list(lat)
                    run["errors"] += errors
                    run["wall"] += wall
                    run["calls"] += judge_calls(urls[s]) - calls
                    run["ratios"].append((len(rows) - len(errors)) / wall / base)  # a 504 is not throughput
                print(f"c={c} round {r + 1}/{rounds}: offline {base:.2f} pairs/s; " + ", ".join(
                    f"{s} {runs[c, s]['ratios'][-1]:.2f}x" for s in settings), flush=True)
    print(f"\nfrozen MiniLM pair judge, {n} distinct Arena compares per concurrency in {rounds} rounds (offline, then each "
          f"server, in alternating order), server and client on one machine; {machine()}\n")
    print("| concurrency | batching | answered (req/s) | vs offline, median of rounds [range] | p50 (ms) | p99 (ms) | errors | items per judge call |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for c in levels:
        for s in settings:
            run = runs[c, s]
            lat, ratios = 1000 * np.array(run["lat"]), run["ratios"]
            print(f"| {c} | {s} | {(n - len(run['errors'])) / run['wall']:.2f} | {np.median(ratios):.2f} [{min(ratios):.2f}, "
                  f"{max(ratios):.2f}] | {np.percentile(lat, 50):.0f} | {np.percentile(lat, 99):.0f} | {len(run['errors'])} | "
                  f"{n / max(1, run['calls']):.1f} |")


# --- memory: RSS with the cache capped and uncapped ------------------------------------------------------

def memory(args) -> None:
    folder = frozen_pair_judge(args.judges)
    arena = load(DATA / "arena" / "train.csv").examples

    def request(i: int) -> tuple[str, dict]:
        ex = arena[i % len(arena)]
        prompt = ex.a.turns[0].content[:120]
        return ("/v1/compare", {"context": {"turns": [{"role": "user", "content": f"{prompt} [{i}]"}]},
                                "response_a": f"{ex.a.response[:160]} [{i}]", "response_b": f"{ex.b.response[:160]} [{i}]"})

    steps = 6
    table = {}
    for label, mib in ((f"capped at {args.cache_mib:g} MiB", args.cache_mib), ("uncapped", 1e9)):
        with server([folder], "--cache-mib", str(mib)) as (url, proc):
            asyncio.run(send_all(url, [request(-i) for i in range(1, 33)], 8))  # warm-up
            rss = [psutil.Process(proc.pid).memory_info().rss / 2**20]
            for step in range(steps):
                start = step * args.requests // steps
                block = [request(i) for i in range(start, (step + 1) * args.requests // steps)]
                lat, errors, wall = asyncio.run(send_all(url, block, 8))
                rss.append(psutil.Process(proc.pid).memory_info().rss / 2**20)
                print(f"{label}: {start + len(block)} requests, RSS {rss[-1]:.0f} MiB, {len(block) / wall:.1f} req/s, "
                      f"errors {len(errors)} {errors[:1]}", flush=True)
            table[label] = rss
    print(f"\nserver RSS (MiB) after warm-up and after each {args.requests // steps} distinct compares (3 new texts each, "
          f"concurrency 8); {machine()}\n")
    done = [0] + [(s + 1) * args.requests // steps for s in range(steps)]
    print("| in-memory cache | " + " | ".join(f"{d} req" for d in done) + " | growth |")
    print("|---|" + "---:|" * (len(done) + 1))
    for label, rss in table.items():
        print(f"| {label} | " + " | ".join(f"{v:.0f}" for v in rss) + f" | {rss[-1] - rss[0]:+.0f} |")


# --- abuse: issue 15, items 2-5 ---------------------------------------------------------------------

class Pulse:
    """Polls /healthz every 50 ms in a thread; `times` are the answer times in seconds."""

    def __init__(self, url: str):
        self.url, self.times, self.failures, self.stop = url, [], [], threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self.stop.is_set():
                started = time.perf_counter()
                try:
                    if client.get("/healthz").status_code != 200:
                        self.failures.append("status")
                except httpx.HTTPError as err:
                    self.failures.append(repr(err))
                self.times.append(time.perf_counter() - started)
                time.sleep(0.05)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(30)


def closed_after(url: str, send: bytes, limit: float) -> float:
    """Seconds until the server closed a connection that sent `send` and then nothing (inf: still open)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=limit) as sock:
        started = time.perf_counter()
        sock.sendall(send)
        try:
            while sock.recv(4096):
                pass
        except TimeoutError:
            return float("inf")
        return time.perf_counter() - started


def abuse(args) -> None:
    judges = args.judges or Path(tempfile.mkdtemp(prefix="serve-load-judges-"))
    if not all((judges / name).is_dir() for name in ("pyrit-score", "arena-pair")):
        train_judges(judges, only=["pyrit-score", "arena-pair"])
    metrics = sorted({ex.metric for ex in load_default().examples})
    turn = lambda text: {"turns": [{"role": "user", "content": "How do I boil an egg?"},  # noqa: E731
                                   {"role": "assistant", "content": text}]}
    probes = []

    def probe(item: str, name: str, expect: int, client: httpx.Client, path: str, body: bytes, check=lambda r: True):
        started = time.perf_counter()
        r = client.post(path, content=body, headers={"content-type": "application/json"})
        took = time.perf_counter() - started
        ok = r.status_code == expect and check(r)
        probes.append((item, name, len(body), r.status_code, took, len(r.content), ok))
        print(f"{item} {name}: {r.status_code} in {1000 * took:.0f} ms, {len(r.content)} bytes, {'ok' if ok else 'WRONG'}", flush=True)

    with server([judges / "pyrit-score", judges / "arena-pair"]) as (url, _), Pulse(url) as pulse:
        with httpx.Client(base_url=url, timeout=120) as client:
            one = lambda **kw: json.dumps({"conversation": turn("Simmer it for 8 minutes."), **kw}).encode()  # noqa: E731
            probe("2", f'metrics: ["{metrics[0]}"] x 20,000', 200, client, "/v1/score", one(metrics=[metrics[0]] * 20_000),
                  lambda r: len(r.json()["scores"]) == 1)
            probe("2", "65 distinct metrics", 422, client, "/v1/score", one(metrics=[f"m{i}" for i in range(65)]))
            heavy = [{"conversation": turn(f"answer {i}"), "metrics": metrics} for i in range(64)]
            probe("2", f"64 items x {len(metrics)} metrics (heaviest legal)", 200, client, "/v1/score", json.dumps(heavy).encode())
            probe("3", "100,000 empty items", 422, client, "/v1/score", json.dumps([{}] * 100_000).encode())
            probe("3", "64 items with 3 problems each", 422, client, "/v1/compare",
                  json.dumps([{"a": 1, "b": 2, "context": 3}] * 64).encode(), lambda r: len(r.json()["problems"]) <= 10)
            for raw in ("[0, 1e309]", "[0, Infinity]", "[-1.7e308, 1.7e308]"):
                body = b'{"conversation": %s, "scale": %s}' % (json.dumps(turn("x")).encode(), raw.encode())
                probe("4", f"scale {raw}", 422, client, "/v1/score", body)
            probe("4", "a good request on the same connection", 200, client, "/v1/score", one(scale=[1, 5]))
        slow = {"send nothing": b"", "send half a header": b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "}
        for name, send in slow.items():
            times = []
            threads = [threading.Thread(target=lambda: times.append(closed_after(url, send, 30))) for _ in range(20)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            worst = max(times)
            probes.append(("5", f"20 connections that {name}", len(send), "closed", worst, 0, worst < 15))
            print(f"5 {name}: all 20 closed after at most {worst:.1f} s", flush=True)
    health = 1000 * np.array(pulse.times)
    print(f"\nabuse probes against a live server (TF-IDF judges, default limits: 64 items, 64 metrics, work 1024, "
          f"header deadline 10 s); {machine()}\n")
    print("| item | probe | body bytes | status | time | answer bytes | as intended |")
    print("|---|---|---:|---:|---:|---:|---|")
    for item, name, size, status, took, answer, ok in probes:
        shown = f"{took:.1f} s" if status == "closed" else f"{1000 * took:.0f} ms"
        print(f"| {item} | {name} | {size:,} | {status} | {shown} | {answer:,} | {'yes' if ok else 'NO'} |")
    print(f"\n/healthz throughout: {len(health)} polls, p50 {np.percentile(health, 50):.1f} ms, p99 "
          f"{np.percentile(health, 99):.1f} ms, max {health.max():.1f} ms, failures {len(pulse.failures)}: "
          f"{'within' if health.max() < 100 and not pulse.failures else 'NOT within'} 100 ms throughout")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=["latency", "memory", "abuse"])
    parser.add_argument("--judges", type=Path, help="folder of judge folders from bench/serve_judges.py (else trained)")
    parser.add_argument("--requests", type=int, help="per concurrency (latency, default 48) or in all (memory, 6000)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--batching", nargs="+", default=["off", "on"], choices=list(SETTINGS),
                        help="latency: the servers to compare (both run, taking turns round by round)")
    parser.add_argument("--rounds", type=int, default=4, help="latency: rounds each concurrency's requests are split into")
    parser.add_argument("--cache-mib", type=float, default=1.0, help="memory: the capped server's --cache-mib")
    args = parser.parse_args()
    args.requests = args.requests or {"latency": 48, "memory": 6000, "abuse": 0}[args.mode]
    {"latency": latency, "memory": memory, "abuse": abuse}[args.mode](args)


if __name__ == "__main__":
    main()
