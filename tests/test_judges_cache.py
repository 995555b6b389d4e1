"""The frozen encoders' embedding cache: a second run encodes nothing, half-written or broken shards
are never read, and the TF-IDF encoder round-trips exactly through JSON + safetensors."""

from __future__ import annotations

import numpy as np
import pytest

from judges_fixtures import pair_examples, tiny_bert
from referee import PairJudge
from referee.encoders.frozen import FrozenEncoder
from referee.encoders.tfidf import TfidfEncoder

TEXTS = ["clear correct helpful", "rude vague", "clear correct helpful", "polite kind thorough accurate"]


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    return tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("REFEREE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_second_run_encodes_nothing(bert, cache):
    first = FrozenEncoder(bert, progress=False)
    e1 = first.transform(TEXTS)
    assert first.texts_encoded == 3  # the repeated text is encoded once
    assert e1.shape == (4, 16) and e1.dtype == np.float32 and np.array_equal(e1[0], e1[2])
    second = FrozenEncoder(bert, progress=False)  # a new process would start like this: from disk
    e2 = second.transform(TEXTS[::-1])
    assert second.texts_encoded == 0 and np.array_equal(e2, e1[::-1])
    e3 = second.transform(TEXTS + ["a new text"])
    assert second.texts_encoded == 1 and np.array_equal(e3[:4], e1)


def test_half_written_and_broken_shards_are_not_read(bert, cache):
    enc = FrozenEncoder(bert, progress=False)
    enc.transform(TEXTS[:2])
    folder = enc.cache_folder
    (shard,) = folder.glob("shard-*.safetensors")
    # A write that died before os.replace leaves only a temp name, which is never read.
    (folder / ".tmp-dead.safetensors").write_bytes(shard.read_bytes()[:40])
    shard.write_bytes(b"not a safetensors file")  # and a finished shard broken afterwards is skipped
    again = FrozenEncoder(bert, progress=False)
    again.transform(TEXTS[:2])
    assert again.texts_encoded == 2


def test_frozen_judge_rerun_encodes_nothing(bert, cache):
    data = pair_examples()
    PairJudge(features="frozen", encoder=bert, progress=False, epochs=5).fit(data)
    rerun = PairJudge(features="frozen", encoder=bert, progress=False, epochs=5).fit(data)
    assert rerun.encoder_.texts_encoded == 0


def test_cache_key_changes_with_the_model(bert, cache, tmp_path):
    other = tiny_bert(tmp_path / "other-bert")
    assert FrozenEncoder(bert).key != FrozenEncoder(other).key
    assert FrozenEncoder(bert).key == FrozenEncoder(bert).key


def test_tfidf_round_trip_is_exact(tmp_path):
    corpus = TEXTS * 6 + ["Hindi नमस्ते दुनिया", "code ```x = 1```"]
    enc = TfidfEncoder().fit(corpus)
    enc.save(tmp_path / "enc")
    assert not list((tmp_path / "enc").glob("*.pkl"))
    loaded = TfidfEncoder.load(tmp_path / "enc")
    unseen = ["polite rude words never seen zzz", "नमस्ते"]
    a, b = enc.transform(corpus + unseen), loaded.transform(corpus + unseen)
    assert a.shape == b.shape and (a != b).nnz == 0
