"""The server's in-memory embedding cache is capped (least recently used rows go first), while the
cache on disk keeps every row: a frozen judge over a tiny random BERT, served for real."""

from __future__ import annotations

import httpx
import pytest
from judges_fixtures import pair_examples, tiny_bert

from referee.encoders.frozen import FrozenEncoder, text_key
from referee.judges import PairJudge
from referee.serve import create_app, running


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    return tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("REFEREE_CACHE", str(tmp_path / "cache"))


def test_least_recently_used_rows_go_first(bert, cache):
    enc = FrozenEncoder(bert, progress=False)
    enc.max_cached_rows = 2
    full = enc.transform(["a b", "c d", "e f"])
    assert list(enc._read_index()) == [text_key("c d"), text_key("e f")]  # "a b", the oldest, went
    enc.transform(["c d"])  # used: now the most recent
    enc.transform(["g h"])
    assert list(enc._read_index()) == [text_key("c d"), text_key("g h")]
    assert enc.texts_encoded == 4
    assert enc.transform(["a b"]).tolist() == full[:1].tolist()  # dropped from memory: encoded again, alike
    fresh = FrozenEncoder(bert, progress=False)
    fresh.transform(["a b", "c d", "e f", "g h"])
    assert fresh.texts_encoded == 0  # the disk keeps every row, whatever the memory cap


def test_served_frozen_judge_keeps_its_cache_under_the_cap(bert, cache):
    judge = PairJudge(features="frozen", encoder=bert, progress=False, epochs=2).fit(pair_examples())
    dim = judge.encoder_.dim
    cap_rows = 10
    with running(create_app({"pair": judge}, cache_mib=cap_rows * 4 * dim / 2**20)) as url:
        with httpx.Client(base_url=url, timeout=30) as client:
            answers = [client.post("/v1/compare", json={"context": {"turns": [{"role": "user", "content": f"q {i}"}]},
                                                         "response_a": f"answer a {i}", "response_b": f"answer b {i}"})
                       for i in range(12)]
            assert all(r.status_code == 200 for r in answers)
            assert client.get("/v1/judges").json()["limits"]["cache_mib"] > 0
    assert judge.encoder_.max_cached_rows == cap_rows
    assert len(judge.encoder_._read_index()) <= cap_rows  # 24 distinct texts were seen


def test_a_server_writes_new_embeddings_together_and_at_shutdown(bert, cache):
    """Served, a frozen encoder keeps new rows in memory and writes them as one shard at shutdown
    (or once `write_every_s` has passed), not one shard per request; a new encoder then reads them all."""
    judge = PairJudge(features="frozen", encoder=bert, progress=False, epochs=2).fit(pair_examples())
    enc = judge.encoder_
    before = len(enc._shards())
    with running(create_app({"pair": judge})) as url:
        with httpx.Client(base_url=url, timeout=30) as client:
            for i in range(5):
                r = client.post("/v1/compare", json={"context": {"turns": [{"role": "user", "content": f"q {i}"}]},
                                                     "response_a": f"new a {i}", "response_b": f"new b {i}"})
                assert r.status_code == 200
            assert len(enc._shards()) == before  # nothing written yet: five requests, no shard each
    assert len(enc._shards()) == before + 1 and not enc._unwritten[0]  # one shard, at shutdown
    assert set(FrozenEncoder(bert, progress=False)._read_index()) >= set(enc._read_index())  # all on disk


def test_write_every_s_waits_then_writes_one_shard(bert, cache):
    enc = FrozenEncoder(bert, progress=False)
    enc.write_every_s = 3600
    for text in ["one", "two", "three"]:
        enc.transform([text])
    assert enc._shards() == [] and len(enc._unwritten[0]) == 3
    enc.write_every_s = 0  # the wait is over: the next call writes everything waiting, as one shard
    enc.transform(["four"])
    assert len(enc._shards()) == 1 and not enc._unwritten[0]
    plain = FrozenEncoder(bert, progress=False)  # the default: a shard at the end of each call
    plain.transform(["five"])
    assert len(plain._shards()) == 2


def test_a_served_stack_caps_and_defers_its_frozen_part(bert, cache):
    """The default judges are stacks: their frozen encoder sits inside a part, and gets the same cap
    and the same one-shard-at-shutdown writes as a frozen judge's own encoder."""
    judge = PairJudge(features="stack", encoder=bert, progress=False).fit(pair_examples(n=36))
    (enc,) = [part.encoder_ for part in judge.encoder_.parts if part.features == "frozen"]
    before = len(enc._shards())
    with running(create_app({"pair": judge}, cache_mib=4 * 4 * enc.dim / 2**20)) as url:
        with httpx.Client(base_url=url, timeout=30) as client:
            for i in range(5):
                r = client.post("/v1/compare", json={"context": {"turns": [{"role": "user", "content": f"q {i}"}]},
                                                     "response_a": f"stack a {i}", "response_b": f"stack b {i}"})
                assert r.status_code == 200
            assert len(enc._shards()) == before
    assert enc.max_cached_rows == 4 and len(enc._read_index()) <= 4
    assert len(enc._shards()) == before + 1 and not enc._unwritten[0]
