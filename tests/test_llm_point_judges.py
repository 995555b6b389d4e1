"""The score and safety judges' `features="llm"` backend (pointwise: one response, one rubric per metric
or category) on a tiny random Llama: the judge contract (fit returns self, shapes, save / load predicts
exactly the same), a second prediction served from the disk cache, serving, and the one-line errors for
a metric without a rubric and for a template of the wrong kind."""

from __future__ import annotations

import json

import numpy as np
import pytest
from align_fixtures import tiny_policy
from fastapi.testclient import TestClient
from judges_fixtures import safety_examples, score_examples

from referee import RewardJudge, SafetyJudge, ScoreJudge, load_judge
from referee.errors import UserError
from referee.schema import Conversation, SafetyExample, ScoreExample
from referee.serve import create_app

DATA = {ScoreJudge: score_examples, SafetyJudge: safety_examples}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tiny_policy(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="module")
def judges(model_dir):
    return {cls: cls(features="llm", encoder=str(model_dir), progress=False).fit(data()) for cls, data in DATA.items()}


def every_output(judge, data):
    if isinstance(judge, SafetyJudge):
        return [judge.decision_function(data), judge.predict_proba(data), judge.cost(data), judge.predict(data)]
    return [judge.predict(data)]


@pytest.mark.parametrize("cls", [ScoreJudge, SafetyJudge])
def test_contract_fit_save_load_exact_and_cached(cls, judges, tmp_path):
    judge, data = judges[cls], DATA[cls]()
    if cls is ScoreJudge:
        # Per metric block: p("1") .. p("5"), the expected score, 5 length features (D = 11), for 2 metrics:
        # D shared + 2 x D per metric + 2 one-hot.
        assert judge.w_.shape == (11 + 2 * 11 + 2,) and judge.capacity_["param"] == "alpha"
        pred = judge.predict(data)
        assert all(ex.scale[0] <= p <= ex.scale[1] for ex, p in zip(data, pred))
    else:
        # One logistic per category and "any" over the LM's margin per category (harsh, hate) and 5 lengths.
        assert judge.W_.shape == (3, 2 + 5) and judge.categories_ == ["harsh", "hate"]
        assert judge.predict_proba(data).shape == (len(data), 3) and judge.validation_["on"] == "out-of-fold"
    folder = judge.save(tmp_path / "judge")
    assert json.loads((folder / "judge.json").read_text())["params"]["features"] == "llm"
    assert (folder / "encoder" / "template.yaml").read_text() == judge.encoder_.template.text
    assert not list(folder.rglob("*.pkl"))
    loaded = load_judge(folder, trust_encoder=True)  # the tiny model is named by its path
    assert type(loaded) is cls and loaded.encoder_.template == judge.encoder_.template
    read = loaded.encoder_.lm.texts_computed  # load's probe (`judges.folder.probe`) reads a new text per rubric
    for before, after in zip(every_output(judge, data), every_output(loaded, data)):
        assert np.array_equal(before, after)
    # The loaded judge's model read no prompt of the data: every (model, template, metric, text) came from
    # the disk cache its first fit wrote.
    assert read == (1 if cls is ScoreJudge else 2) and loaded.encoder_.lm.texts_computed == read


def test_every_metric_gets_its_own_rubric(judges):
    """Each (response, metric) is one prompt with its metric's rubric: the same response under two
    metrics gives two readings, and the cache keeps them apart."""
    judge = judges[ScoreJudge]
    conv = Conversation.from_text("how do I bake bread", "Mix flour and water, then bake.")
    logp = judge.encoder_.points([conv, conv], ["helpfulness", "politeness"])
    assert logp.shape == (2, 5) and not np.array_equal(logp[0], logp[1])


def test_serve_answers_what_the_judges_answer(judges):
    conv = {"turns": [{"role": "user", "content": "how do I bake bread"},
                      {"role": "assistant", "content": "Mix flour and water, then bake."}]}
    plain = Conversation.from_text("how do I bake bread", "Mix flour and water, then bake.")
    app = create_app({"score": judges[ScoreJudge], "safety": judges[SafetyJudge]})
    with TestClient(app, base_url="http://127.0.0.1") as client:
        scores = client.post("/v1/score", json={"conversation": conv, "metrics": ["politeness"]}).json()
        safety = client.post("/v1/safety", json={"conversation": conv}).json()
    assert "scores" in scores and "probability" in safety, (scores, safety)
    expected = judges[ScoreJudge].predict([ScoreExample(id="x", conversation=plain, metric="politeness", scale=(1.0, 5.0))])
    assert scores["scores"]["politeness"] == pytest.approx(float(expected[0]), abs=1e-12)
    ex = SafetyExample(id="x", conversation=plain)
    assert safety["probability"] == pytest.approx(float(judges[SafetyJudge].predict_proba([ex])[0, -1]), abs=1e-12)
    assert safety["cost"] == pytest.approx(float(judges[SafetyJudge].cost([ex])[0]), abs=1e-12)


def test_a_metric_without_a_rubric_stops_before_the_model_reads(model_dir, tmp_path):
    template = tmp_path / "rubrics.yaml"
    template.write_text("kind: point\nprompt: '{instruction} {response} {rubric}'\nanswer: 'Score: '\n"
                        "rubrics:\n  helpfulness: Is the answer helpful?\nverdicts: {1: ['1'], 2: ['2'], 3: ['3']}\n")
    judge = ScoreJudge(features="llm", encoder=f"{model_dir}#{template}", progress=False)
    with pytest.raises(UserError, match=r"rubrics.yaml: no rubric for 'politeness': field 'rubrics' names only "
                                        r"\['helpfulness'\]; add it there, or a default 'rubric'$"):
        judge.fit(score_examples())
    assert judge.encoder_.lm.texts_computed == 0


@pytest.mark.parametrize("cls, template, message", [
    (ScoreJudge, "pair", "pair: a pair template, but this judge reads one response at a time"),
    (SafetyJudge, "score", r"score: field 'verdicts': a safety judge reads 1 \(unsafe\) and 0 \(safe\), got \[1, 2, 3, 4, 5\]"),
])
def test_a_template_of_the_wrong_kind_is_one_line(model_dir, cls, template, message):
    with pytest.raises(UserError, match=message) as err:
        cls(features="llm", encoder=f"{model_dir}#{template}", progress=False).fit(DATA[cls]())
    assert "\n" not in str(err.value)


def test_the_reward_judge_says_llm_is_not_its_backend_yet(model_dir):
    from judges_fixtures import pair_examples

    with pytest.raises(UserError, match="features='llm' is not available for the reward judge"):
        RewardJudge(features="llm", encoder=str(model_dir), progress=False).fit(pair_examples(ties=False))


def test_cli_train_score_with_llm_features(model_dir, tmp_path):
    from referee.cli import main

    code = main(["train", "score", "--data", "examples/ratings.csv", "--features", "llm", "--encoder", str(model_dir),
                 "--columns", "prompt=question,response=answer,score=rating", "--out", str(tmp_path / "judge"),
                 "--no-progress"])
    assert code == 0
    judge = load_judge(tmp_path / "judge", trust_encoder=True)
    assert judge.features == "llm" and judge.encoder_.template.name == "score"
