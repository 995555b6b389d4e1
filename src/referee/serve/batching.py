"""Micro-batching: concurrent requests to one judge share one forward pass.

Each judge gets a `MicroBatcher`: an asyncio queue of requests and one worker task. The worker takes
the first waiting request, then keeps taking requests for at most `max_wait_ms` or until the batch
holds `max_batch` items, and runs the judge on them in a worker thread, so the event loop keeps
accepting (and rejecting) requests while the judge computes. A full queue refuses at once with
`Overloaded` (the app answers 503 + Retry-After) instead of letting latency pile up; a request that
waits longer than `timeout_s` gets `TimedOut` (504) and its items are dropped from later batches.
A thread cannot be killed, so the worker calls the judge on at most `chunk` items at a time and
stops a batch between calls once every request in it has timed out: an abandoned batch holds the
judge for at most one more call, not for the rest of its work.

Hand-written because no maintained library does bounded-wait request batching inside an asyncio
server without bringing its own server (Ray Serve, Triton, BentoML each own the process).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from referee.serve.memory import trim

log = logging.getLogger("referee.serve")


class Overloaded(Exception):
    """The queue is full: try again after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


class TimedOut(Exception):
    """The request waited longer than the server's timeout."""


class _Abandoned(Exception):
    """Every request of a batch timed out while the judge was still computing it."""


@dataclass
class _Request:
    items: list
    future: asyncio.Future
    deadline: float  # time.monotonic() after which nobody waits for the answer


class MicroBatcher:
    """Groups the items of concurrent `submit` calls into calls of `run(items) -> results`.

    `run` takes a list and returns a sequence of the same length, one result per item, in order. It
    runs in a worker thread, one call at a time. `max_batch=1, max_wait_ms=0` turns batching off
    (every request runs alone), which is how the load bench measures what batching buys.
    """

    def __init__(self, run: Callable[[list], Sequence[Any]], *, name: str = "judge", max_batch: int = 32,
                 max_wait_ms: float = 0.0, max_queue: int = 256, timeout_s: float = 30.0, chunk: int = 64):
        if max_batch < 1:
            raise ValueError(f"max_batch: expected at least 1, got {max_batch}")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms: expected 0 or more, got {max_wait_ms}")
        if max_queue < 1:
            raise ValueError(f"max_queue: expected at least 1, got {max_queue}")
        if chunk < 1:
            raise ValueError(f"chunk: expected at least 1, got {chunk}")
        self.run, self.name, self.chunk = run, name, chunk
        self.max_batch, self.max_wait_s, self.max_queue, self.timeout_s = max_batch, max_wait_ms / 1000, max_queue, timeout_s
        self.calls = 0  # judge calls made, for /v1/judges and the tests
        self._seconds_per_call = 0.0  # moving average, for Retry-After
        self._queue: asyncio.Queue[_Request] | None = None
        self._held: _Request | None = None  # taken from the queue but did not fit the last batch
        self._worker: asyncio.Task | None = None

    # --- lifecycle (the app's lifespan calls these inside the running event loop) ---

    def start(self) -> None:
        self._queue = asyncio.Queue(maxsize=self.max_queue)
        self._worker = asyncio.create_task(self._loop(), name=f"batcher-{self.name}")

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
        self._worker = None

    @property
    def running(self) -> bool:
        return self._worker is not None and not self._worker.done()

    # --- the request side ---

    async def submit(self, items: list) -> list:
        """The results for `items`, computed in a batch with whatever else is waiting."""
        if not self.running:
            raise Overloaded(f"judge {self.name!r} is not running yet; retry shortly", retry_after=1)
        request = _Request(list(items), asyncio.get_running_loop().create_future(), time.monotonic() + self.timeout_s)
        try:
            self._queue.put_nowait(request)
        except asyncio.QueueFull:
            raise Overloaded(
                f"judge {self.name!r} has {self.max_queue} requests waiting; retry after the Retry-After delay",
                retry_after=self.retry_after(),
            ) from None
        try:
            # shield: a timeout must not cancel a batch the worker is computing for other requests.
            return await asyncio.wait_for(asyncio.shield(request.future), self.timeout_s)
        except (asyncio.TimeoutError, TimeoutError):
            request.future.cancel()  # the worker skips cancelled requests
            raise TimedOut(
                f"judge {self.name!r} did not answer within {self.timeout_s:g} s; "
                "send fewer items per request or retry when the server is less busy"
            ) from None

    def retry_after(self) -> int:
        """Seconds until the queue has probably drained: waiting requests / batch size x call time."""
        waiting = self._queue.qsize() if self._queue is not None else 0
        calls = math.ceil(waiting / self.max_batch)
        return max(1, math.ceil(calls * self._seconds_per_call))

    # --- the worker side ---

    async def _next(self, timeout: float | None) -> _Request | None:
        if self._held is not None:
            request, self._held = self._held, None
            return request
        if timeout is None:
            return await self._queue.get()
        if timeout <= 0:
            return self._queue.get_nowait() if not self._queue.empty() else None
        try:
            return await asyncio.wait_for(self._queue.get(), timeout)
        except (asyncio.TimeoutError, TimeoutError):
            return None

    async def _collect(self) -> list[_Request]:
        """The first waiting request, then more until the wait or the batch is used up.

        A request is never split: one larger than `max_batch` runs alone (the app caps items per
        request), and one that would overflow the batch waits for the next.
        """
        loop = asyncio.get_running_loop()
        batch = [await self._next(None)]
        size = len(batch[0].items)
        deadline = loop.time() + self.max_wait_s
        while size < self.max_batch:
            request = await self._next(deadline - loop.time())
            if request is None:
                break
            if size + len(request.items) > self.max_batch:
                self._held = request
                break
            batch.append(request)
            size += len(request.items)
        return [r for r in batch if not r.future.done()]  # done = cancelled by its timeout

    async def _loop(self) -> None:
        while True:
            batch = await self._collect()
            if batch:
                await self._answer(batch)

    async def _answer(self, batch: list[_Request]) -> None:
        items = [item for request in batch for item in request.items]
        try:
            results = await self._call(items, max(r.deadline for r in batch))
        except _Abandoned:
            log.warning("judge %r: stopped a batch of %d items that every request gave up on", self.name, len(items))
            return
        except Exception as err:  # noqa: BLE001 - reported to each request below
            if len(batch) > 1:
                # One bad request must not fail the others it was batched with: retry each alone.
                for request in batch:
                    await self._answer([request])
                return
            log.exception("judge %r failed on a batch of %d items", self.name, len(items))
            _settle(batch[0].future, error=err)
            return
        start = 0
        for request in batch:
            _settle(request.future, result=list(results[start:start + len(request.items)]))
            start += len(request.items)

    async def _call(self, items: list, deadline: float) -> Sequence[Any]:
        started = time.perf_counter()
        results = await asyncio.to_thread(self._run_chunks, items, deadline)
        elapsed = time.perf_counter() - started
        self._seconds_per_call = elapsed if self.calls == 1 else 0.8 * self._seconds_per_call + 0.2 * elapsed
        return results

    def _run_chunks(self, items: list, deadline: float) -> list:
        """`run` over `items`, `chunk` at a time, in the worker thread; stops once past `deadline`."""
        results = []
        for start in range(0, len(items), self.chunk):
            if time.monotonic() > deadline:
                raise _Abandoned()
            part = items[start:start + self.chunk]
            out = self.run(part)
            self.calls += 1
            if len(out) != len(part):
                raise RuntimeError(f"judge {self.name!r} returned {len(out)} results for {len(part)} items")
            results.extend(out)
        trim()  # the batch's freed native memory back to the system (see `referee.serve.memory`)
        return results


def _settle(future: asyncio.Future, *, result=None, error: BaseException | None = None) -> None:
    if future.done():  # its request timed out meanwhile
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
