"""Streaming, resumable prediction (`referee.jobs.stream`): the same rows as the in-memory path, on real
data and on every streamed format; resume after a torn write; bad rows as `--on-error` says."""

from __future__ import annotations

import gzip
import json
from itertools import islice

import pandas as pd
import pytest

from judges_fixtures import pair_examples, score_examples
from referee.data import load
from referee.data.stream import open_stream
from referee.errors import UserError
from referee.jobs.stream import predict_stream
from referee.judges import PairJudge, ScoreJudge
from referee.jobs.predict import predict


@pytest.fixture(scope="module")
def pair_judge(tmp_path_factory):
    folder = tmp_path_factory.mktemp("judges") / "pair"
    PairJudge(progress=False).fit(pair_examples()).save(folder)
    return folder


@pytest.fixture(scope="module")
def score_judge(tmp_path_factory):
    folder = tmp_path_factory.mktemp("judges") / "score"
    ScoreJudge(progress=False).fit(score_examples()).save(folder)
    return folder


def real_hh(shared_data, path, rows=150):
    """The first `rows` lines of the real HH-RLHF file (ids are line positions: chunks must count on)."""
    with gzip.open(shared_data / "hh_rlhf_harmless" / "train.jsonl.gz", "rt", encoding="utf-8") as handle:
        path.write_text("".join(islice(handle, rows)), encoding="utf-8")
    return path


def real_arena(shared_data, path, rows=60):
    pd.read_csv(shared_data / "arena" / "train.csv", dtype=str, keep_default_na=False).head(rows).to_csv(path, index=False)
    return path


@pytest.mark.shared
@pytest.mark.parametrize("source", [real_hh, real_arena])
def test_streaming_writes_what_the_in_memory_path_writes_on_real_data(shared_data, pair_judge, tmp_path, source):
    data = source(shared_data, tmp_path / ("in.jsonl" if source is real_hh else "in.csv"))
    predict(pair_judge, data, tmp_path / "memory.csv")
    summary = predict_stream(pair_judge, data, tmp_path / "stream.csv", chunk_rows=7, progress=False)
    # Byte for byte: same rows, same order, same text of every float.
    assert (tmp_path / "stream.csv").read_bytes() == (tmp_path / "memory.csv").read_bytes()
    assert summary["streamed"] and summary["rows"] == len(pd.read_csv(tmp_path / "memory.csv"))
    predict_stream(pair_judge, data, tmp_path / "stream.parquet", chunk_rows=40, progress=False)
    memory = pd.read_csv(tmp_path / "memory.csv", dtype={"id": str})
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "stream.parquet"), memory, check_exact=True)


def score_records(n=12):
    return [{"id": ex.id, "prompt": ex.conversation.prompt, "response": ex.conversation.response,
             "metric": ex.metric} for ex in score_examples(n)]


@pytest.mark.parametrize("kind", ["jsonl.gz", "csv", "parquet", "saved_dataset"])
def test_every_streamed_format_gives_the_examples_load_gives(tmp_path, kind):
    records = score_records(12)
    if kind == "jsonl.gz":
        path = tmp_path / "in.jsonl.gz"
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            handle.write("\n".join(json.dumps(r) for r in records) + "\n\n")
    elif kind == "csv":
        path = tmp_path / "in.csv"
        pd.DataFrame(records).to_csv(path, index=False)
    elif kind == "parquet":
        path = tmp_path / "in.parquet"
        pd.DataFrame(records).to_parquet(path, row_group_size=5)
    else:
        import datasets
        path = tmp_path / "saved"
        datasets.Dataset.from_list(records).save_to_disk(str(path))
    stream = open_stream(path, chunk_rows=5)
    chunks = list(stream.chunks())
    assert stream.streamed and [len(c.examples) for c in chunks] == [5, 5, 2]
    assert [e for c in chunks for e in c.examples] == load(path).examples
    assert stream.read() == pytest.approx(1.0)


def test_score_judge_streams_a_parquet_folder_and_resumes_from_its_parts(score_judge, tmp_path):
    data = tmp_path / "in.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in score_records(20)), encoding="utf-8")
    predict(score_judge, data, tmp_path / "memory.csv")
    whole = pd.read_csv(tmp_path / "memory.csv", dtype={"id": str})
    out = tmp_path / "out.parquet"
    predict_stream(score_judge, data, out, chunk_rows=6, progress=False)
    assert sorted(p.name for p in out.iterdir()) == [f"part-00000{i}.parquet" for i in range(4)]
    # A run stopped after two parts, with a half-written temporary part left behind.
    for part in ("part-000002.parquet", "part-000003.parquet"):
        (out / part).unlink()
    (out / ".part-x.tmp").write_bytes(b"PAR1 torn")
    summary = predict_stream(score_judge, data, out, chunk_rows=6, resume=True, progress=False)
    assert (summary["rows"], summary["resumed"]) == (8, 12)
    pd.testing.assert_frame_equal(pd.read_parquet(out), whole, check_exact=True)


def test_resume_after_a_torn_last_line_ends_with_the_uninterrupted_rows(pair_judge, tmp_path):
    data = tmp_path / "in.jsonl"
    data.write_text("\n".join(json.dumps({"id": ex.id, "prompt": ex.a.prompt, "response_a": ex.response_a,
                                          "response_b": ex.response_b}) for ex in pair_examples(30)), encoding="utf-8")
    full = tmp_path / "full.csv"
    predict_stream(pair_judge, data, full, chunk_rows=8, progress=False)
    lines = full.read_bytes().splitlines(keepends=True)
    partial = tmp_path / "partial.csv"
    partial.write_bytes(b"".join(lines[:12]) + lines[12][:9])  # killed in the middle of a write
    with pytest.raises(UserError, match="exists: --resume continues it"):
        predict_stream(pair_judge, data, partial, progress=False)
    summary = predict_stream(pair_judge, data, partial, chunk_rows=8, resume=True, progress=False)
    assert (summary["resumed"], summary["rows"]) == (11, 19)
    assert partial.read_bytes() == full.read_bytes()
    again = predict_stream(pair_judge, data, partial, resume=True, progress=False)
    assert (again["rows"], again["resumed"]) == (0, 30) and partial.read_bytes() == full.read_bytes()


def test_an_interrupted_run_keeps_whole_chunks_and_says_how_to_go_on(pair_judge, tmp_path, monkeypatch):
    data = tmp_path / "in.jsonl"
    data.write_text("\n".join(json.dumps({"id": ex.id, "prompt": ex.a.prompt, "response_a": ex.response_a,
                                          "response_b": ex.response_b}) for ex in pair_examples(20)), encoding="utf-8")
    calls = []
    real = PairJudge.predict_table

    def stop_at_third_chunk(judge, examples):
        calls.append(len(examples))
        if len(calls) == 3:
            raise KeyboardInterrupt  # what Ctrl-C raises in the middle of judging a chunk
        return real(judge, examples)

    monkeypatch.setattr(PairJudge, "predict_table", stop_at_third_chunk)
    with pytest.raises(UserError, match=r"interrupted: 10 rows are in .*out.csv; run the same command with --resume"):
        predict_stream(pair_judge, data, tmp_path / "out.csv", chunk_rows=5, progress=False)
    assert len(pd.read_csv(tmp_path / "out.csv")) == 10
    monkeypatch.undo()
    predict_stream(pair_judge, data, tmp_path / "out.csv", chunk_rows=5, resume=True, progress=False)
    predict_stream(pair_judge, data, tmp_path / "whole.csv", progress=False)
    assert (tmp_path / "out.csv").read_bytes() == (tmp_path / "whole.csv").read_bytes()


def test_bad_rows_stop_the_run_or_are_skipped_and_counted(pair_judge, tmp_path):
    good = [json.dumps({"id": ex.id, "prompt": ex.a.prompt, "response_a": ex.response_a, "response_b": ex.response_b})
            for ex in pair_examples(10)]
    lines = good[:3] + ["{not json"] + good[3:7] + [json.dumps({"id": "p9x", "prompt": "q", "response_a": "a"})] \
        + good[7:] + [good[1]]  # last: p1 again, in a later chunk
    data = tmp_path / "bad.jsonl"
    data.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(UserError, match=r"bad.jsonl: line 4: invalid JSON at column 2"):
        predict_stream(pair_judge, data, tmp_path / "a.csv", chunk_rows=4, progress=False)
    summary = predict_stream(pair_judge, data, tmp_path / "b.csv", chunk_rows=4, on_error="skip", progress=False)
    assert (summary["rows"], summary["skipped"]) == (10, 3)
    reasons = dict(summary["skip_reasons"])
    assert reasons["duplicate id 'p1' (first seen in an earlier chunk)"] == 1
    assert reasons["invalid JSON at column 2: Expecting property name enclosed in double quotes"] == 1
    # Within one file, `load` finds the same bad rows but for the repeated id, which it names differently.
    assert len(load(data, on_error="skip").skipped) == 3


def test_formats_read_whole_and_bad_outputs(pair_judge, tmp_path):
    data = tmp_path / "in.json"
    data.write_text(json.dumps([{"id": ex.id, "prompt": ex.a.prompt, "response_a": ex.response_a,
                                 "response_b": ex.response_b} for ex in pair_examples(9)]), encoding="utf-8")
    summary = predict_stream(pair_judge, data, tmp_path / "out.csv", chunk_rows=4, progress=False)
    assert not summary["streamed"] and summary["rows"] == 9  # a JSON array is read whole, judged in chunks
    with pytest.raises(UserError, match=r"is a folder; give a file name to write"):
        predict_stream(pair_judge, data, tmp_path, progress=False)
    with pytest.raises(UserError, match="this judge writes id, winner_model_a"):
        (tmp_path / "other.csv").write_text("id,score\n", encoding="utf-8")
        predict_stream(pair_judge, data, tmp_path / "other.csv", resume=True, progress=False)


def test_cli_predict_streams_skips_and_resumes(pair_judge, tmp_path, capsys):
    from referee.cli import main

    data = tmp_path / "in.jsonl"
    data.write_text("\n".join([json.dumps({"id": ex.id, "prompt": ex.a.prompt, "response_a": ex.response_a,
                                           "response_b": ex.response_b}) for ex in pair_examples(9)] + ["[1]"]),
                    encoding="utf-8")
    args = ["predict", str(pair_judge), "--data", str(data), "--out", str(tmp_path / "p.parquet"), "--chunk-rows", "4",
            "--on-error", "skip", "--no-progress"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"wrote 9 rows to {tmp_path / 'p.parquet'} in ") and "peak memory" in out
    assert "skipped 1 bad row(s): 1 x expected a record, got list" in out
    assert main(args) == 2 and "exists: --resume continues it" in capsys.readouterr().err
    assert main(args + ["--resume"]) == 0
    assert "wrote 0 rows" in (out := capsys.readouterr().out) and "9 rows were in" in out
    assert len(pd.read_parquet(tmp_path / "p.parquet")) == 9
    assert main(args[:-1] + ["--engine", "ray", "--resume"]) == 2
    assert "--resume is for --engine local" in capsys.readouterr().err


def test_opening_a_big_log_reads_only_its_head(tmp_path):
    """Checking and sniffing a file must not read it whole: a 1.4 GB log once cost 1.4 GB of memory
    before its first row was judged (`is_empty` read every byte to look at 4 KB)."""
    import tracemalloc

    from referee.data import check_file, detect

    row = json.dumps({"chosen": "\n\nHuman: hi\n\nAssistant: " + "hello " * 200,
                      "rejected": "\n\nHuman: hi\n\nAssistant: " + "bye " * 200}) + "\n"
    path = tmp_path / "big.jsonl"
    path.write_text(row * 12000)  # ~30 MB
    tracemalloc.start()
    try:
        check_file(path)
        assert detect(path) == "hh_rlhf"
        chunk = next(iter(open_stream(path, chunk_rows=100).chunks()))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(chunk.examples) == 100 and peak < 8 * 2**20  # MiB: the head and one chunk, not the file
