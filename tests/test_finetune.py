"""features="finetune": the config, the Accelerator loop (loss falls, checkpoints, resume, early
stopping), k-fold out-of-fold predictions, judge save/load round trips and the reward model's
Hugging Face export. Tiny random BERT built from a config (judges_fixtures.tiny_bert); no downloads."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from judges_fixtures import pair_examples, safety_examples, score_examples, tiny_bert
from safetensors.torch import load_file

from referee.encoders.transformer import TransformerEncoder, resolve_model_path
from referee.judges import PairJudge, RewardJudge, SafetyJudge, ScoreJudge, load_judge
from referee.judges.heads import SafetyHead, TextModel
from referee.judges.losses import masked_bce
from referee.text import render
from referee.config import ConfigError
from referee.train.config import FinetuneConfig
from referee.jobs.kfold import cross_validate
from referee.train.loop import read_state, resolve_mixed_precision, train


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models on a shared 2-core machine run several times faster on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    return tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


FAST = {"epochs": 2, "batch_size": 8, "lr": 1e-3, "patience": None, "progress": False}


# --- config ----------------------------------------------------------------------------------------

def test_config_names_the_bad_field_and_value():
    with pytest.raises(ConfigError, match=r"field 'warmup_ratio'.*got 1.5"):
        FinetuneConfig(warmup_ratio=1.5)
    with pytest.raises(ConfigError, match=r"field 'mixed_precision'.*got 'fp8'"):
        FinetuneConfig(mixed_precision="fp8")


def test_config_from_yaml_with_flag_overrides(tmp_path):
    path = tmp_path / "ft.yaml"
    path.write_text("finetune:\n  lr: 2.0e-5\n  epochs: 4\n  batch_size: 8\n")
    config = FinetuneConfig.from_yaml(path, epochs=1, batch_size=None)  # None: the flag was not given
    assert (config.lr, config.epochs, config.batch_size) == (2e-5, 1.0, 8)
    path.write_text("lr: 1e-5\nbatchsize: 8\n")
    with pytest.raises(ConfigError, match="unknown field.*batchsize"):
        FinetuneConfig.from_yaml(path)


def test_mixed_precision_auto_is_off_on_cpu():
    if not torch.cuda.is_available():
        assert resolve_mixed_precision("auto") == "no"
    assert resolve_mixed_precision("bf16") == "bf16"


# --- encoder ---------------------------------------------------------------------------------------

def test_packaged_minilm_is_found_inside_its_sentence_transformers_folder():
    path, normalize = resolve_model_path(None)
    assert (path.rstrip("/") + "/config.json") and normalize  # all-MiniLM-L6-v2 ends in a Normalize module


def test_smollm2_and_gguf_files_are_fine_tuned_from_their_converted_folder(monkeypatch):
    import referee.encoders.causal_lm as causal_lm

    asked = []
    monkeypatch.setattr(causal_lm, "resolve", lambda spec: asked.append(spec) or f"/converted/{spec}")
    assert resolve_model_path("smollm2") == ("/converted/smollm2", False)
    assert resolve_model_path("model.Q4_1.gguf") == ("/converted/model.Q4_1.gguf", False)
    assert asked == ["smollm2", "model.Q4_1.gguf"]


def test_mean_pooling_ignores_padding(bert):
    encoder = TransformerEncoder.from_pretrained(bert).eval()
    alone = encoder.transform(["clear correct helpful"])
    padded = encoder.transform(["clear correct helpful", "wrong rude vague useless short lazy false harsh"])
    np.testing.assert_allclose(alone[0], padded[0], atol=1e-5)


# --- the loop --------------------------------------------------------------------------------------

def _safety_setup(bert, dropout: float = 0.1):
    """A safety model (encoder + SafetyHead) and its collate, straight on the loop."""
    torch.manual_seed(0)
    encoder = TransformerEncoder.from_pretrained(bert)
    judge = SafetyJudge()
    judge.categories_ = ["harsh", "hate"]
    head = SafetyHead(encoder.dim, 0, 3, hidden=16, dropout=dropout)
    model = TextModel(encoder, head)
    if dropout == 0:
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0

    def collate(examples):
        tokens = encoder.tokenize([render(ex.conversation) for ex in examples])
        return {"tokens": tokens, "extra": torch.zeros(len(examples), 0)}, torch.tensor(judge._labels(examples),
                                                                                         dtype=torch.float32)
    return model, collate


def test_training_lowers_the_loss_and_changes_the_parameters(bert):
    model, collate = _safety_setup(bert)
    before = copy.deepcopy(model.state_dict())
    result = train(model, safety_examples(24), collate, masked_bce,
                   FinetuneConfig(epochs=6, batch_size=8, lr=1e-3, warmup_ratio=0.0, progress=False))
    losses = [row["loss"] for row in result.history]
    assert len(losses) == 18  # 3 batches x 6 epochs
    assert np.mean(losses[-3:]) < np.mean(losses[:3])
    after = model.state_dict()
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert any(n.startswith("encoder.backbone.encoder.layer.0.") for n in changed)  # the backbone learned
    assert any(n.startswith("head.") for n in changed)


def test_best_checkpoint_is_kept_and_resume_continues_exactly(bert, tmp_path):
    """An interrupted run resumed from its last checkpoint ends with the weights of an uninterrupted one.

    24 rows / batch 4 = 6 updates an epoch, 2 epochs = 12; evaluated (and checkpointed) every 4."""
    config = dict(epochs=2, batch_size=4, lr=1e-3, eval_every=4, patience=None, progress=False)
    data, valid = safety_examples(24), safety_examples(8, seed=1)

    model, collate = _safety_setup(bert, dropout=0.0)
    full = train(model, data, collate, masked_bce, FinetuneConfig(output_dir=str(tmp_path / "full"), **config),
                 valid_data=valid)
    assert full.steps == 12
    for name in ("model.safetensors", "optimizer.safetensors", "state.json"):
        assert (tmp_path / "full" / "best" / name).is_file()
    assert read_state(tmp_path / "full" / "best")["step"] == full.best_step
    assert [r["step"] for r in full.history if "valid_loss" in r] == [4, 8, 12]

    calls = {"n": 0}
    model, collate = _safety_setup(bert, dropout=0.0)

    def interrupted(examples):
        calls["n"] += 1
        if calls["n"] == 9:  # after the step-4 checkpoint, before step 8's
            raise KeyboardInterrupt
        return collate(examples)

    with pytest.raises(KeyboardInterrupt):
        train(model, data, interrupted, masked_bce, FinetuneConfig(output_dir=str(tmp_path / "cut"), **config),
              valid_data=valid)
    assert read_state(tmp_path / "cut" / "last")["step"] == 4

    model, collate = _safety_setup(bert, dropout=0.0)
    resumed = train(model, data, collate, masked_bce,
                    FinetuneConfig(output_dir=str(tmp_path / "cut"), resume_from=str(tmp_path / "cut" / "last"),
                                   **config), valid_data=valid)
    assert resumed.steps == 12 and [r["step"] for r in resumed.history] == list(range(1, 13))
    a, b = load_file(str(tmp_path / "full/last/model.safetensors")), load_file(str(tmp_path / "cut/last/model.safetensors"))
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=1e-6, rtol=1e-5)


def test_early_stopping(bert):
    """min_delta is out of reach, so only the first evaluation counts as an improvement: with
    patience 2 the run stops at the third evaluation (step 3 of 9) and keeps step 1's weights."""
    model, collate = _safety_setup(bert)
    result = train(model, safety_examples(24), collate, masked_bce,
                   FinetuneConfig(epochs=3, batch_size=8, eval_every=1, patience=2, min_delta=1e9, progress=False),
                   valid_data=safety_examples(8, seed=1))
    assert result.stopped_early and result.steps == 3 and result.best_step == 1


# --- judges ----------------------------------------------------------------------------------------

def _fit(kind, bert, **options):
    if kind == "pair":
        return PairJudge(features="finetune", encoder=bert, finetune=dict(FAST, **options), progress=False).fit(
            pair_examples(24), valid=pair_examples(6, seed=1)), pair_examples(9, seed=2), "predict_proba"
    if kind == "safety":
        return SafetyJudge(features="finetune", encoder=bert, finetune=FAST, progress=False).fit(
            safety_examples(24), valid=safety_examples(8, seed=1)), safety_examples(6, seed=2), "predict_proba"
    if kind == "score":
        return ScoreJudge(features="finetune", encoder=bert, finetune=FAST, progress=False).fit(
            score_examples(24), valid=score_examples(8, seed=1)), score_examples(6, seed=2), "predict"
    return RewardJudge(features="finetune", encoder=bert, finetune=FAST, progress=False).fit(
        pair_examples(24, ties=False), valid=pair_examples(6, ties=False, seed=1)), pair_examples(6, seed=2), "predict_proba"


@pytest.mark.parametrize("kind,options", [("pair", {}), ("pair", {"cross_encoder": True}),
                                          ("pair", {"warm_start": True}), ("safety", {}),
                                          ("score", {}), ("reward", {})])
def test_saved_judge_predicts_identically(bert, tmp_path, kind, options):
    judge, test, method = _fit(kind, bert, **options)
    assert judge.history_ and "valid_" in "".join(judge.history_[-1])
    judge.save(tmp_path / "judge")
    loaded = load_judge(tmp_path / "judge")
    assert type(loaded) is type(judge)
    np.testing.assert_array_equal(getattr(judge, method)(test), getattr(loaded, method)(test))


def test_cross_encoder_swap_averaging_is_exact(bert):
    judge, test, _ = _fit("pair", bert, cross_encoder=True)
    p, q = judge.predict_proba(test), judge.predict_proba([ex.swapped() for ex in test])
    np.testing.assert_array_equal(p[:, [1, 0, 2]], q)


def test_reward_folder_loads_as_a_hugging_face_sequence_classifier(bert, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    judge, _, _ = _fit("reward", bert)
    judge.save(tmp_path / "reward")
    convs = [ex.a for ex in pair_examples(6, seed=3)]
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "reward" / "encoder").eval()
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "reward" / "encoder")
    assert model.config.num_labels == 1
    with torch.no_grad():
        logits = model(**tokenizer([render(c) for c in convs], padding=True, return_tensors="pt")).logits
    np.testing.assert_allclose(logits[:, 0].numpy(), judge.reward(convs), atol=1e-5)
    # Centred: the offset went into the output bias, so the training responses average to zero.
    assert judge.offset_ == 0.0
    train_convs = [c for ex in pair_examples(24, ties=False) for c in (ex.a, ex.b)]
    assert abs(judge.reward(train_convs).mean()) < 1e-4


@pytest.mark.parametrize("kind", ["pair", "reward"])
def test_a_causal_lm_without_a_pad_token_fine_tunes_saves_and_loads(tmp_path, kind):
    """SmolLM2 and Llama tokenizers ship no pad token (transformers 5.17's GGUF reading of SmolLM2 gave none
    on the GPU machine): batches pad with the end-of-text token, and the reward model's classifier is told it."""
    from align_fixtures import tiny_policy
    from transformers import AutoConfig, AutoTokenizer

    folder = tiny_policy(tmp_path / "llama")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.pad_token = None
    tokenizer.save_pretrained(folder)
    config = AutoConfig.from_pretrained(folder)
    config.pad_token_id = None
    config.save_pretrained(folder)
    assert AutoTokenizer.from_pretrained(folder).pad_token is None

    judge, test, method = _fit(kind, str(folder))
    judge.save(tmp_path / "judge")
    np.testing.assert_array_equal(getattr(judge, method)(test), getattr(load_judge(tmp_path / "judge"), method)(test))


def test_unknown_finetune_field_is_named(bert):
    with pytest.raises(ConfigError, match="unknown field.*learning_rate"):
        PairJudge(features="finetune", encoder=bert, finetune={"learning_rate": 1e-4}).fit(pair_examples(12))


# --- k-fold ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("features", ["tfidf", "finetune"])
def test_kfold_gives_one_out_of_fold_prediction_per_row(bert, tmp_path, features):
    data = pair_examples(21)
    judge = PairJudge(features="tfidf", progress=False) if features == "tfidf" else (
        PairJudge(features="finetune", encoder=bert, finetune=dict(FAST, epochs=1), progress=False))
    cv = cross_validate(judge, data, k=3, progress=False)
    table = cv.table()
    assert list(table["id"]) == [ex.id for ex in data] and table["fold"].between(0, 2).all()
    assert sorted(np.bincount(cv.fold_of)) == sorted(f["n_valid"] for f in cv.folds) and sum(np.bincount(cv.fold_of)) == 21
    probs = table[["winner_model_a", "winner_model_b", "winner_tie"]].to_numpy()
    np.testing.assert_allclose(probs.sum(1), 1.0)
    oof_path, folds_path = cv.write(tmp_path)
    saved = json.loads(folds_path.read_text())
    assert len(saved["folds"]) == 3 and "log_loss" in saved["mean"]


def test_train_cli_folds_writes_out_of_fold_predictions(tmp_path):
    import pandas as pd

    from referee.cli import main

    rows = [{"id": ex.id, "model_a": "x", "model_b": "y", "prompt": json.dumps([ex.a.prompt]),
             "response_a": json.dumps([ex.response_a]), "response_b": json.dumps([ex.response_b]),
             "winner_model_a": int(ex.label == "A"), "winner_model_b": int(ex.label == "B"),
             "winner_tie": int(ex.label == "tie")} for ex in pair_examples(21)]
    pd.DataFrame(rows).to_csv(tmp_path / "arena.csv", index=False)
    assert main(["train", "pair", "--data", str(tmp_path / "arena.csv"), "--folds", "3", "--out",
                 str(tmp_path / "judge"), "--no-progress"]) == 0
    oof = pd.read_csv(tmp_path / "judge" / "cv" / "oof.csv")
    assert list(oof["id"]) == [r["id"] for r in rows] and set(oof["fold"]) == {0, 1, 2}
    assert len(json.loads((tmp_path / "judge" / "cv" / "folds.json").read_text())["folds"]) == 3


def test_yaml_finetune_section_reaches_the_judge(tmp_path):
    from referee.config import ConfigError as TrainConfigError
    from referee.jobs.config import TrainConfig

    path = tmp_path / "job.yaml"
    path.write_text("features: finetune\nfinetune:\n  epochs: 2\n  cross_encoder: true\n")
    config = TrainConfig.from_yaml(path, task="pair", data="x.csv", out="judge")
    assert config.judge_options()["finetune"] == {"epochs": 2, "cross_encoder": True}
    path.write_text("finetune:\n  epoch: 2\n")
    with pytest.raises(TrainConfigError, match="unknown field.*epoch"):
        TrainConfig.from_yaml(path, task="pair", data="x.csv", out="judge")
