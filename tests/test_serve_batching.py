"""Micro-batching on real judges: concurrent requests share judge calls, a full queue answers 503 with
Retry-After, a slow judge answers 504. The judge's calls are counted (and, for the overload tests,
held at a gate) by wrapping its real method; every result still comes from the real judge."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import pytest
from judges_fixtures import pair_examples

from referee.judges import PairJudge
from referee.serve import create_app
from referee.serve.batching import MicroBatcher


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    return PairJudge(progress=False).fit(pair_examples()).save(tmp_path_factory.mktemp("serve") / "pair")


@pytest.fixture
def fitted(saved):
    """A fresh copy per test: the tests wrap its methods."""
    return PairJudge.load(saved)


def counted(judge, gate: threading.Event | None = None, entered: threading.Event | None = None):
    """The same judge with its predict_proba calls counted (sizes in `judge.calls`), optionally
    held at `gate` until the test opens it. Wrapped once the app has started, so that its warm-up
    call is neither counted nor held."""
    real = judge.predict_proba
    judge.calls = []

    def predict_proba(examples, swap_average=True):
        judge.calls.append(len(examples))
        if entered is not None:
            entered.set()
        if gate is not None:
            gate.wait(10)
        return real(examples, swap_average)

    judge.predict_proba = predict_proba
    return judge


def items(n: int) -> list[dict]:
    return [{"context": {"turns": [{"role": "user", "content": f"question {i}"}]},
             "response_a": "clear correct helpful" if i % 2 else "rude vague", "response_b": "wrong short"}
            for i in range(n)]


async def call_all(app, bodies, run):
    """Start the app's lifespan, then `run(client)` concurrently with the batchers running."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            return await run(client)


def test_concurrent_requests_share_judge_calls(fitted):
    """16 requests sent at once: batched (max_wait 200 ms) they need far fewer judge calls than
    unbatched (max_batch 1: one call each), and every answer equals the answer to a lone request."""
    bodies = items(16)

    judge = counted(fitted)

    async def run(client):
        judge.calls.clear()  # the start-up warm-up call is not part of the test
        responses = await asyncio.gather(*(client.post("/v1/compare", json=b) for b in bodies))
        return [r.json() for r in responses]

    batched = asyncio.run(call_all(create_app({"pair": judge}, max_batch=32, max_wait_ms=200), bodies, run))
    batched_calls = list(judge.calls)
    unbatched = asyncio.run(call_all(create_app({"pair": judge}, max_batch=1, max_wait_ms=0), bodies, run))
    assert sum(batched_calls) == 16 and len(batched_calls) <= 4 and max(batched_calls) > 1
    assert judge.calls == [1] * 16
    assert batched == unbatched  # batching changes how many calls, never an answer


def test_full_queue_answers_503_with_retry_after_then_recovers(fitted):
    gate, entered = threading.Event(), threading.Event()
    app = create_app({"pair": fitted}, max_batch=1, max_wait_ms=0, max_queue=1)
    first, second, third = items(3)

    async def run(client):
        counted(fitted, gate, entered)
        busy = asyncio.create_task(client.post("/v1/compare", json=first))  # taken by the worker, held at the gate
        await asyncio.to_thread(entered.wait, 10)
        waiting = asyncio.create_task(client.post("/v1/compare", json=second))  # fills the queue (size 1)
        batcher = app.state.batchers["pair"]
        while batcher._queue.qsize() < 1:
            await asyncio.sleep(0.005)
        refused = await client.post("/v1/compare", json=third)
        gate.set()
        return refused, await busy, await waiting, await client.post("/v1/compare", json=third)

    refused, busy, waiting, later = asyncio.run(call_all(app, None, run))
    assert refused.status_code == 503
    assert int(refused.headers["retry-after"]) >= 1
    assert "requests waiting" in refused.json()["detail"]
    assert busy.status_code == waiting.status_code == later.status_code == 200


def test_slow_judge_answers_504_and_the_server_carries_on(fitted):
    gate, entered = threading.Event(), threading.Event()
    app = create_app({"pair": fitted}, timeout_s=0.3)

    async def run(client):
        counted(fitted, gate, entered)
        slow = await client.post("/v1/compare", json=items(1)[0])
        gate.set()
        return slow, await client.post("/v1/compare", json=items(1)[0])

    slow, after = asyncio.run(call_all(app, None, run))
    assert slow.status_code == 504 and "did not answer within 0.3 s" in slow.json()["detail"]
    assert after.status_code == 200


def test_one_failing_request_does_not_fail_its_batch():
    """The batcher on its own: a batch that raises is retried request by request, so only the
    request that caused it gets the error."""
    async def run():
        batcher = MicroBatcher(lambda xs: [1 / x for x in xs], max_batch=8, max_wait_ms=100)
        batcher.start()
        results = await asyncio.gather(batcher.submit([1, 2]), batcher.submit([0]), batcher.submit([4]),
                                       return_exceptions=True)
        await batcher.stop()
        return results, batcher.calls

    (good, bad, also_good), calls = asyncio.run(run())
    assert good == [1.0, 0.5] and also_good == [0.25] and isinstance(bad, ZeroDivisionError)
    assert calls == 2  # the batch failed (not counted), then the three requests alone: 1/x raised for one


def test_batch_never_splits_a_request_and_respects_max_batch():
    async def run():
        sizes = []
        batcher = MicroBatcher(lambda xs: sizes.append(len(xs)) or xs, max_batch=4, max_wait_ms=100)
        batcher.start()
        out = await asyncio.gather(*(batcher.submit([i] * 3) for i in range(3)), batcher.submit(list(range(6))))
        await batcher.stop()
        return out, sizes

    out, sizes = asyncio.run(run())
    assert out == [[0] * 3, [1] * 3, [2] * 3, list(range(6))]
    assert sizes == [3, 3, 3, 6]  # 3 + 3 > 4: each 3 alone; 6 > 4 runs alone, whole


def test_without_a_wait_a_batch_is_what_waited_while_the_judge_was_busy():
    """The default (max_wait_ms=0): a lone request runs at once, and requests that arrive while the
    judge computes go together into the next call."""
    async def run():
        sizes = []

        def slow(xs):
            time.sleep(0.2)
            sizes.append(len(xs))
            return xs

        batcher = MicroBatcher(slow, max_batch=32)
        batcher.start()
        first = asyncio.create_task(batcher.submit([0]))
        await asyncio.sleep(0.05)  # the judge is now busy with the first request
        rest = await asyncio.gather(*(batcher.submit([i]) for i in range(1, 6)))
        await first
        await batcher.stop()
        return rest, sizes

    rest, sizes = asyncio.run(run())
    assert rest == [[1], [2], [3], [4], [5]] and sizes == [1, 5]


def test_native_memory_is_trimmed_at_most_once_a_second(monkeypatch):
    """glibc's arena limit takes, and `trim` hands freed pages back at most once every TRIM_EVERY_S."""
    import sys

    from referee.serve import memory

    if not sys.platform.startswith("linux") or memory._libc is None:
        pytest.skip("glibc only")
    assert memory.limit_arenas(2) is True
    calls = []
    monkeypatch.setattr(memory, "_libc", type("Libc", (), {"malloc_trim": staticmethod(lambda pad: calls.append(pad))})())
    monkeypatch.setattr(memory, "_last_trim", 0.0)
    memory.trim()
    memory.trim()
    assert calls == [0]
    monkeypatch.setattr(memory, "_last_trim", memory._last_trim - memory.TRIM_EVERY_S)
    memory.trim()
    assert calls == [0, 0]
