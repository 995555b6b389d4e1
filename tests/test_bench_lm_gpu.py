"""bench/lm_gpu.py: features read on one machine (a GPU's) are filed under another machine's copy of the
same model and read from the cache there without running it; a text it did not read fails."""

from __future__ import annotations

import importlib
import json
import shutil
import sys
from pathlib import Path

import pytest
from align_fixtures import HELPFUL, HELPFUL_ANSWER, REFUSAL, UNHELPFUL_ANSWER, tiny_policy

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.fixture
def lm_gpu(tmp_path, monkeypatch):
    """The bench with its sets read from a small PandaLM-format file and an Auto-J-format file."""
    (tmp_path / "data" / "pandalm").mkdir(parents=True)
    (tmp_path / "data" / "autoj").mkdir()
    answers = [HELPFUL_ANSWER, REFUSAL, UNHELPFUL_ANSWER]
    pandalm = [{"idx": i, "motivation_app": "x", "cmp_key": "m1_m2", "instruction": HELPFUL[i % 6], "input": "",
                "response1": answers[i % 3], "response2": answers[(i + 1) % 3],
                "annotator1": i % 3, "annotator2": i % 3, "annotator3": i % 3} for i in range(9)]
    (tmp_path / "data" / "pandalm" / "testset-v1.dev.json").write_text(json.dumps(pandalm))
    autoj = [{"scenario": "default", "label": i % 3, "prompt": HELPFUL[i % 6] + " Please.",
              "response 1": answers[i % 3], "response 2": answers[(i + 2) % 3]} for i in range(6)]
    (tmp_path / "data" / "autoj" / "pairwise.dev.jsonl").write_text("".join(json.dumps(r) + "\n" for r in autoj))
    monkeypatch.setenv("REFEREE_DATA", str(tmp_path / "data"))
    monkeypatch.syspath_prepend(str(BENCH))
    for name in ("leaderboard", "lm_gpu"):
        sys.modules.pop(name, None)  # DATA is read at import
    yield importlib.import_module("lm_gpu")
    for name in ("leaderboard", "lm_gpu"):
        sys.modules.pop(name, None)


def test_features_read_elsewhere_are_filed_under_this_copy_and_read_without_the_model(lm_gpu, tmp_path, capsys):
    gpu_copy = tiny_policy(tmp_path / "gpu" / "llama")
    here = shutil.copytree(gpu_copy, tmp_path / "here" / "llama")  # same weights, another path: another key
    lm_gpu.main(["read", "--model", str(gpu_copy), "--sets", "pandalm", "--tokens", "64", "--dtype", "float32",
                 "--out", str(tmp_path / "pack")])
    assert "| pandalm | 18 |" in capsys.readouterr().out
    assert list((tmp_path / "pack").glob("lm-cache.tar.*"))

    lm_gpu.main(["file", str(tmp_path / "pack"), "--model", str(here)])
    assert "pandalm: all 18 conversations in the cache" in capsys.readouterr().out

    lm = lm_gpu.model(str(here), 64, "float32")
    assert lm.key != lm_gpu.model(str(gpu_copy), 64, "float32").key
    with pytest.raises(RuntimeError, match="missing from the GPU's features"):
        lm_gpu.check(lm, [("autoj", 12, 0, 0.0)])  # never read on the "GPU"
