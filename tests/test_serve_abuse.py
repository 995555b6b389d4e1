"""Requests meant to hurt the server, against the real server (uvicorn on 127.0.0.1, a free port) over
real sockets: no request may block the others, every answer is a small 4xx that says what to fix.
Each test is bounded in requests and seconds."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time

import httpx
import pytest
from judges_fixtures import pair_examples, score_examples

from referee.judges import PairJudge, ScoreJudge
from referee.serve import create_app, read_api_keys, running
from referee.serve.batching import MicroBatcher, TimedOut


@pytest.fixture(scope="module")
def judges():
    return {"pair": PairJudge(progress=False).fit(pair_examples()),
            "score": ScoreJudge(progress=False).fit(score_examples())}


@pytest.fixture(scope="module")
def url(judges):
    with running(create_app(judges, max_work=40), header_timeout_s=0.5, keep_alive_s=1) as base:
        yield base


def conv(response="clear correct helpful"):
    return {"turns": [{"role": "user", "content": "question 1 about topic 1"}, {"role": "assistant", "content": response}]}


class Pulse:
    """Polls /healthz every 20 ms in a thread while a test runs; `worst` is the slowest answer."""

    def __init__(self, url: str):
        self.url, self.times, self.stop = url, [], threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        with httpx.Client(base_url=self.url, timeout=10) as client:
            while not self.stop.is_set():
                started = time.perf_counter()
                assert client.get("/healthz").status_code == 200
                self.times.append(time.perf_counter() - started)
                time.sleep(0.02)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(10)

    @property
    def worst(self) -> float:
        return max(self.times)


# --- item 2: metric amplification ----------------------------------------------------------------

def test_repeated_metrics_are_scored_once(url):
    r = httpx.post(url + "/v1/score", json={"conversation": conv(), "metrics": ["politeness"] * 20_000}, timeout=10)
    assert r.status_code == 200 and list(r.json()["scores"]) == ["politeness"]


def test_too_many_metrics_and_too_much_work_are_refused_at_once(url):
    started = time.perf_counter()
    r = httpx.post(url + "/v1/score", json={"conversation": conv(), "metrics": [f"m{i}" for i in range(65)]}, timeout=10)
    assert r.status_code == 422 and "65 distinct metrics; the limit is 64 per item" in r.json()["detail"]
    # 21 items x 2 metrics = 42 conversations to read > max_work 40; 20 pairs = 40 is allowed.
    many = [{"conversation": conv(f"answer {i}")} for i in range(21)]
    r = httpx.post(url + "/v1/score", json=many, timeout=10)
    assert r.status_code == 422 and "read 42 conversations" in r.json()["detail"] and "limit is 40" in r.json()["detail"]
    pairs = [{"a": conv(f"a {i}"), "b": conv(f"b {i}")} for i in range(20)]
    assert httpx.post(url + "/v1/compare", json=pairs, timeout=10).status_code == 200
    assert time.perf_counter() - started < 10


def test_a_timed_out_batch_stops_and_the_next_request_is_answered():
    """A judge that takes 0.1 s per call of 2 items, given 40 items (20 calls, 2 s) with a 0.3 s
    timeout: the request gets TimedOut, the worker stops after the call it was in (about 4 calls,
    not 20), and the next request is answered at once rather than after the rest of the 2 s."""
    calls = []

    def slow(items):
        calls.append(len(items))
        time.sleep(0.1)
        return items

    async def run():
        batcher = MicroBatcher(slow, max_batch=64, max_wait_ms=0, timeout_s=0.3, chunk=2)
        batcher.start()
        with pytest.raises(TimedOut):
            await batcher.submit(list(range(40)))
        started = time.perf_counter()
        answer = await batcher.submit([1, 2])
        waited = time.perf_counter() - started
        await batcher.stop()
        return answer, waited

    answer, waited = asyncio.run(run())
    assert answer == [1, 2]
    assert len(calls) <= 8 and waited < 1.0  # ran on: 20 calls of the big request, then waited ~1.7 s


# --- item 3: the size of a body is checked before its items ------------------------------------

def test_a_hundred_thousand_empty_items_are_refused_small_and_fast(url):
    body = json.dumps([{}] * 100_000).encode()  # ~400 KB, under the 1 MB body limit
    with Pulse(url) as pulse:
        time.sleep(0.1)
        started = time.perf_counter()
        r = httpx.post(url + "/v1/compare", content=body, headers={"content-type": "application/json"}, timeout=30)
        took = time.perf_counter() - started
        time.sleep(0.1)
    assert r.status_code == 422 and "100000 items in one request; the limit is 64" in r.json()["detail"]
    assert len(r.content) < 500 and took < 2.0
    assert pulse.worst < 1.0, pulse.times  # before: /healthz stalled for seconds


def test_problems_reported_are_capped(url):
    r = httpx.post(url + "/v1/compare", json=[{"a": 1, "b": 2, "context": 3}] * 60, timeout=10)
    body = r.json()
    assert r.status_code == 422 and len(body["problems"]) == 10 and body["more_problems"] >= 110
    assert len(r.content) < 3000 and "more" in body["detail"]


# --- item 4: non-finite numbers ----------------------------------------------------------------

@pytest.mark.parametrize("raw", ['[0, 1e309]', '[0, Infinity]', '[NaN, 1]', '[-1.7e308, 1.7e308]', '[3, 3]'])
def test_non_finite_or_degenerate_scale_is_a_422_and_the_connection_lives_on(url, raw):
    body = '{"conversation": %s, "scale": %s}' % (json.dumps(conv()), raw)
    with httpx.Client(base_url=url, timeout=10) as client:
        r = client.post("/v1/score", content=body, headers={"content-type": "application/json"})
        assert r.status_code == 422 and "body.scale" in r.json()["detail"], r.text
        again = client.post("/v1/score", json={"conversation": conv(), "scale": [1, 5]})  # same keep-alive connection
        assert again.status_code == 200 and r.headers.get("connection") != "close"


# --- item 5: slow clients ----------------------------------------------------------------------

def closed_within(url: str, send: bytes, seconds: float) -> float | None:
    """Seconds until the server closes a connection that sent `send` and then nothing; None if it
    was still open after `seconds`."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=seconds) as sock:
        started = time.perf_counter()
        sock.sendall(send)
        try:
            while sock.recv(4096):
                pass
        except TimeoutError:
            return None
        return time.perf_counter() - started


@pytest.mark.parametrize("send", [b"", b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "])
def test_a_client_that_never_finishes_its_headers_is_closed(url, send):
    took = closed_within(url, send, seconds=5)
    assert took is not None and took < 3  # header deadline 0.5 s in this server


def test_an_idle_keep_alive_connection_is_closed(url):
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    took = closed_within(url, request, seconds=5)
    assert took is not None and took < 3  # keep-alive 1 s in this server


# --- item 6: headers, Host, the docs' assets, keys -----------------------------------------------

def test_security_headers_on_every_answer(url):
    for path in ("/", "/healthz", "/v1/judges", "/docs", "/nope"):
        r = httpx.get(url + path, timeout=10)
        assert r.headers["x-content-type-options"] == "nosniff" and r.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert "script-src 'self';" not in httpx.get(url + "/docs").headers["content-security-policy"]
    assert "default-src 'self'" in httpx.get(url + "/").headers["content-security-policy"]


def test_docs_load_their_assets_from_this_server(url):
    page = httpx.get(url + "/docs", timeout=10).text
    assert "cdn." not in page and "/static-offline-docs/swagger-ui-bundle.js" in page
    r = httpx.get(url + "/static-offline-docs/swagger-ui-bundle.js", timeout=10)
    assert r.status_code == 200 and len(r.content) > 100_000
    schema = httpx.get(url + "/openapi.json", timeout=10).json()
    body = schema["paths"]["/v1/score"]["post"]["requestBody"]["content"]["application/json"]
    assert "ScoreItem" in schema["components"]["schemas"] and "one item" in body["examples"]


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "127.0.0.1.evil.example", "localhost.:80"])
def test_a_foreign_host_header_is_refused(url, host):
    """DNS rebinding: a page on evil.example whose name now resolves to 127.0.0.1 still sends its name."""
    r = httpx.get(url + "/v1/judges", headers={"host": host}, timeout=10)
    assert r.status_code == 400 and "--allow-host" in r.json()["detail"]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost:1234", "[::1]:80", "LOCALHOST"])
def test_loopback_host_headers_are_answered(url, host):
    assert httpx.get(url + "/healthz", headers={"host": host}, timeout=10).status_code == 200


def test_allowed_hosts(judges):
    with running(create_app({"pair": judges["pair"]}, hosts=["judge.internal"])) as base:
        assert httpx.get(base + "/healthz", headers={"host": "judge.internal:8000"}).status_code == 200
        assert httpx.get(base + "/healthz", headers={"host": "other.internal"}).status_code == 400


@pytest.mark.parametrize("key", ["k" * 16 + "\x07", "k" * 16 + "\x7f", "k" * 8 + "\x1b[2J" + "k" * 8, "k" * 16 + "é"])
def test_keys_with_control_or_non_ascii_characters_are_refused(tmp_path, key):
    path = tmp_path / "keys"
    path.write_text(key + "\n", encoding="utf-8")
    with pytest.raises(Exception, match="line 1: a key must be at least 16 printable ASCII characters"):
        read_api_keys(path)
