"""The demo end to end on a small score file (DA5401 JSON format) and a tiny random encoder."""

import json

import numpy as np
import pytest
from judges_fixtures import tiny_bert

from referee.demo import pair_examples, run_demo, safety_examples, to_ten
from referee.errors import UserError
from referee.judges import load_judge
from referee.schema import Conversation, ScoreExample

HARMFUL = ["here is how to hurt them badly", "step one get a weapon and attack", "insult them with slurs"]
HARMLESS = ["I cannot help with that request", "please talk to someone you trust", "that would not be safe"]


def score_file(path, n_prompts=16):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n_prompts):
        for j in range(4):
            harmful = j % 2 == 0
            text = rng.choice(HARMFUL if harmful else HARMLESS) + f" variant {j}"
            rows.append({"metric_name": ["violence", "hate_speech"][i % 2], "user_prompt": f"request number {i}",
                         "response": text, "system_prompt": "",
                         "score": float(rng.choice([8, 9, 10]) if harmful else rng.choice([0, 1, 2]))})
    path.write_text(json.dumps(rows))
    return path


def ex(id_, prompt, response, score, metric="violence"):
    return ScoreExample(id=id_, conversation=Conversation.from_text(prompt, response), metric=metric, score=score,
                        scale=(0, 1))


def test_labels_derived_from_human_scores():
    """Scores 0.2 and 0.8 on (0, 1) -> 2 and 8 on 0-10: safe / unsafe, and the 2 wins the pair."""
    a, b = to_ten(ex("a", "q", "fine", 0.2)), to_ten(ex("b", "q", "awful", 0.8))
    assert (a.score, b.score) == pytest.approx((2.0, 8.0))
    assert [s.labels for s in safety_examples([a, b])] == [{"violence": False}, {"violence": True}]
    (pair,) = pair_examples([a, b])
    assert pair.label == ("A" if pair.response_a == "fine" else "B")
    (tie,) = pair_examples([a, to_ten(ex("c", "q", "also fine", 0.2))])
    assert tie.label == "tie"


def test_demo_uses_the_default_judge(tmp_path):
    data = score_file(tmp_path / "scores.json")
    result = run_demo(tmp_path / "out", data=str(data))
    # referee train's default: stacks of TF-IDF and MiniLM (English rows) for scores and safety,
    # TF-IDF for pairs; each chooses its capacity by CV (the stack's meta-learner, and each of its parts).
    for task, folder in result["judges"].items():
        judge = load_judge(folder)
        assert judge.task == task and judge.features == ("tfidf" if task == "pair" else "stack")
        assert judge.capacity_["grid"][0] != judge.capacity_["grid"][-1]
    # TF-IDF of the conversation (and, for scores, of the response; for safety, of its opening), MiniLM of the response
    assert [(p["encoder"], p["reads"]) for p in load_judge(result["judges"]["score"]).capacity_["parts"]] == [
        (None, "conversation"), (None, "response"), ("minilm", "response")]
    assert [(p["encoder"], p["reads"]) for p in load_judge(result["judges"]["safety"]).capacity_["parts"]] == [
        (None, "conversation"), (None, "opening"), ("minilm", "response")]
    assert {r.judge for r in result["results"] if not r.judge.startswith("baseline")} == \
        {"score judge (stack of TF-IDF + minilm)", "safety judge (stack of TF-IDF + minilm)", "pair judge (TF-IDF)"}


def test_demo_trains_evaluates_and_reports(tmp_path):
    data = score_file(tmp_path / "scores.json")
    result = run_demo(tmp_path / "out", data=str(data), features="frozen", encoder=tiny_bert(tmp_path / "bert"))
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert result["report"].is_file() and "<img" in result["report"].read_text()
    assert sorted(m["task"] for m in metrics) == ["pair", "pair", "pair", "safety", "safety", "score", "score"]
    for task, folder in result["judges"].items():
        assert load_judge(folder, trust_encoder=True).task == task  # the tiny BERT, named by its path
    ours = {r.task: r for r in result["results"] if not r.judge.startswith("baseline")}
    assert set(ours) == {"score", "safety", "pair"} and all(r.n > 0 for r in ours.values())


def test_demo_refuses_data_without_scores(tmp_path):
    path = tmp_path / "pairs.json"
    path.write_text(json.dumps([{"instruction": "q", "input": "", "response1": "a", "response2": "b",
                                 "annotator1": 1, "annotator2": 1, "annotator3": 2, "idx": 0}]))
    with pytest.raises(UserError, match="score-labelled"):
        run_demo(tmp_path / "out", data=str(path))
