"""The recipes of docs/llm.md — PandaLM-7B, Auto-J-13B and a Prometheus-style rubric judge evaluated
by bench/llm_judge.py — run end to end on a tiny random Llama over small files in PandaLM's and
Auto-J's own formats (the real models need a GPU and the hub; the code path is the same)."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import pytest
from align_fixtures import HELPFUL, HELPFUL_ANSWER, REFUSAL, UNHELPFUL_ANSWER, tiny_policy

BENCH = Path(__file__).resolve().parents[1] / "bench" / "llm_judge.py"
N = 15  # five of each human verdict: enough for 5 stratified folds


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tiny_policy(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """N pairs in PandaLM's test-set layout (with the two shipped judges' verdicts) and in Auto-J's."""
    root = tmp_path_factory.mktemp("data")
    (root / "pandalm").mkdir()
    (root / "autoj").mkdir()
    rows, gpt, panda, autoj = [], [], [], []
    answers = [HELPFUL_ANSWER, REFUSAL, UNHELPFUL_ANSWER]
    for i in range(N):
        vote = i % 3  # 0 tie, 1 first, 2 second
        rows.append({"idx": i, "motivation_app": "x", "cmp_key": "m1_m2", "instruction": HELPFUL[i % 6], "input": "",
                     "response1": answers[i % 3], "response2": answers[(i + 1) % 3],
                     "annotator1": vote, "annotator2": vote, "annotator3": vote})
        gpt.append({"idx": i, "gpt_result": str(vote), "gpt_reason": "", "gpt_reference": ""})
        panda.append({"idx": i, "pandalm_result": str((vote + 1) % 3), "pandalm_reason": "", "pandalm_reference": ""})
        autoj.append({"scenario": "default", "label": [2, 0, 1][vote], "prompt": HELPFUL[i % 6],
                      "response 1": answers[i % 3], "response 2": answers[(i + 1) % 3]})
    (root / "pandalm" / "testset-v1.dev.json").write_text(json.dumps(rows))
    (root / "pandalm" / "gpt-3.5-turbo-testset-v1.dev.json").write_text(json.dumps(gpt))
    (root / "pandalm" / "pandalm-7b-testset-v1.dev.json").write_text(json.dumps(panda))
    (root / "autoj" / "pairwise.dev.jsonl").write_text("".join(json.dumps(r) + "\n" for r in autoj))
    return root


def run_bench(monkeypatch, *args) -> dict:
    monkeypatch.setattr(sys, "argv", ["llm_judge.py", *map(str, args)])
    runpy.run_path(str(BENCH), run_name="__main__")
    out = Path(args[list(args).index("--out") + 1])
    return json.loads((out / "results.json").read_text())["results"]


@pytest.mark.parametrize("template", ["pandalm", "autoj", "prometheus"])
def test_recipe_runs_on_a_tiny_llama(model_dir, data, tmp_path, monkeypatch, capsys, template):
    results = run_bench(monkeypatch, "--model", model_dir, "--template", template, "--limit", 0, "--dtype", "float32",
                        "--data", data, "--out", tmp_path / "out")
    assert set(results) == {"PandaLM", "Auto-J"}
    panda = results["PandaLM"]
    assert panda["speed"]["pairs"] == N and panda["ties"] == N // 3
    # The shipped GPT-3.5 verdicts agree with every (unanimous) human label here; PandaLM-7B's never do.
    assert panda["table"]["GPT-3.5 (shipped verdicts)"]["accuracy (3-way)"].startswith("1.000")
    assert panda["table"]["PandaLM-7B (shipped verdicts)"]["accuracy (3-way)"].startswith("0.000")
    after = panda["position bias"]["after averaging"]
    assert after == {"swap consistency": 1.0, "first-position preference": 0.0}
    assert "| LM verdict + length head |" in capsys.readouterr().out


def test_recipe_with_response_likelihoods(model_dir, data, tmp_path, monkeypatch):
    results = run_bench(monkeypatch, "--model", model_dir, "--sets", "PandaLM", "--limit", 0, "--dtype", "float32",
                        "--likelihood", "--data", data, "--out", tmp_path / "out")
    assert "LM verdict + likelihood + length head" in results["PandaLM"]["table"]
    assert results["PandaLM"]["likelihood cost"]["texts"] == 12  # distinct (request, answer) conversations
