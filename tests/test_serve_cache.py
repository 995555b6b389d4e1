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
