"""`referee predict --engine ray` (`referee.jobs.ray_engine`) on a local Ray instance with two CPUs:
the rows and values of the in-memory path, from JSON lines, CSV and a folder of Parquet shards."""

from __future__ import annotations

import gzip
import json
import shutil
import sys

import pandas as pd
import pytest
import ray

from judges_fixtures import pair_examples
from referee.errors import UserError
from referee.jobs.ray_engine import predict_ray
from referee.judges import PairJudge
from referee.jobs.predict import predict
from referee.jobs.stream import predict_stream
from test_predict_stream import real_hh


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def pair_judge(tmp_path_factory):
    folder = tmp_path_factory.mktemp("judges") / "pair"
    PairJudge(progress=False).fit(pair_examples()).save(folder)
    return folder


def ray_predict(judge, data, out, batch_rows=32, **kwargs):
    # Two actors of half a CPU each leave one of the two CPUs to Ray Data's read and write tasks.
    return predict_ray(judge, data, out, actors=2, actor_cpus=0.5, batch_rows=batch_rows, progress=False, **kwargs)


@pytest.mark.shared
# HH-RLHF only (its ids are positions, so order across batches is checked too); Arena's rows are
# checked byte for byte against the in-memory path by the streaming tests, and each Ray run costs
# a minute and more of the suite on two cores.
@pytest.mark.parametrize("source", [real_hh])
def test_ray_writes_the_rows_of_the_in_memory_path_on_real_data(shared_data, local_ray, pair_judge, tmp_path, source):
    data = source(shared_data, tmp_path / "in.jsonl")
    predict(pair_judge, data, tmp_path / "memory.csv")
    summary = ray_predict(pair_judge, data, tmp_path / "ray.parquet", batch_rows=256)
    memory = pd.read_csv(tmp_path / "memory.csv", dtype={"id": str})
    assert summary["rows"] == len(memory) and len(list((tmp_path / "ray.parquet").glob("*.parquet"))) >= 1
    # Same order too: the pipeline preserves the input's order (hh_rlhf ids are positions across batches).
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "ray.parquet"), memory, check_exact=True)


def test_parquet_shards_with_bad_rows(local_ray, pair_judge, tmp_path):
    records = [{"id": ex.id, "prompt": ex.a.prompt, "response_a": ex.response_a, "response_b": ex.response_b}
               for ex in pair_examples(40)]
    records[33]["response_b"] = None
    shards = tmp_path / "shards"
    shards.mkdir()
    for i in range(2):
        pd.DataFrame(records[i * 20:(i + 1) * 20]).to_parquet(shards / f"part-{i}.parquet")
    summary = ray_predict(pair_judge, shards, tmp_path / "b.parquet", on_error="skip")
    assert (summary["rows"], summary["skipped"]) == (39, 1)
    good = tmp_path / "good.jsonl"
    good.write_text("\n".join(json.dumps(r) for i, r in enumerate(records) if i != 33), encoding="utf-8")
    predict(pair_judge, good, tmp_path / "memory.csv")
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "b.parquet"),
                                  pd.read_csv(tmp_path / "memory.csv", dtype={"id": str}), check_exact=True)
    # Last: a failed pipeline's actors live until its exception is collected, and pytest's log capture
    # keeps that exception (Ray logs it) for the rest of the test, so a pipeline after it would wait.
    with pytest.raises(UserError, match=r"shards: record 34: field 'response_b' is empty"):
        ray_predict(pair_judge, shards, tmp_path / "a.parquet")


def test_json_lines_shards_split_count_and_name_lines_as_the_streaming_engine(local_ray, pair_judge, tmp_path):
    def hh(i, answer="Sure."):
        return json.dumps({"chosen": f"\n\nHuman: question {i}?\n\nAssistant: {answer}",
                           "rejected": f"\n\nHuman: question {i}?\n\nAssistant: No."}, ensure_ascii=False)

    # A raw U+2028 inside a JSON string is valid JSON, and not a line break in a JSON-lines file.
    first = [hh(0), "", hh(1, "Line one\u2028line two."), hh(2)]
    second = [hh(3), "{not json", hh(5)]
    shards = tmp_path / "shards"
    shards.mkdir()
    (shards / "a.jsonl").write_text("\n".join(first) + "\n", encoding="utf-8")
    with gzip.open(shards / "b.jsonl.gz", "wt", encoding="utf-8") as handle:
        handle.write("\n".join(second) + "\n")
    summary = ray_predict(pair_judge, shards, tmp_path / "ray.parquet", batch_rows=2, on_error="skip")
    assert (summary["rows"], summary["skipped"]) == (5, 1)
    whole = tmp_path / "whole.jsonl"  # the shards one after the other: ids are positions across them
    whole.write_text("\n".join(first + second) + "\n", encoding="utf-8")
    predict_stream(pair_judge, whole, tmp_path / "stream.parquet", on_error="skip", progress=False)
    ray_rows = pd.read_parquet(tmp_path / "ray.parquet")
    assert list(ray_rows["id"]) == ["0", "1", "2", "3", "5"]
    pd.testing.assert_frame_equal(ray_rows, pd.read_parquet(tmp_path / "stream.parquet"), check_exact=True)
    with pytest.raises(UserError, match=r"shards: b.jsonl.gz: line 2: invalid JSON"):
        ray_predict(pair_judge, shards, tmp_path / "a.parquet")


def test_a_judge_folder_that_names_an_outside_encoder_stops_before_ray(pair_judge, tmp_path):
    folder = shutil.copytree(pair_judge, tmp_path / "judge")
    (folder / "encoder" / "frozen.json").write_text(json.dumps({"format": "referee-frozen/1", "name": "/etc"}))
    with pytest.raises(UserError, match=r"frozen.json: field 'name' is '/etc'.*--trust-encoder"):
        predict_ray(folder, tmp_path / "in.jsonl", tmp_path / "out.parquet")


def test_without_ray_the_error_names_the_install(pair_judge, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets where it is not installed
    with pytest.raises(UserError, match=r"this needs referee's 'ray' extra \(ray is not installed\): pip install 'referee\[ray\]'"):
        predict_ray(pair_judge, tmp_path / "in.jsonl", tmp_path / "out.parquet")
