"""One contract for every judge x feature backend: fit returns self, outputs have the promised
shapes and ranges, save/load predicts exactly the same, the pair judge is exactly swap-symmetric."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from judges_fixtures import pair_examples, safety_examples, score_examples, tiny_bert
from referee import Conversation, PairJudge, RewardJudge, SafetyJudge, ScoreJudge, load_judge
from referee.errors import UserError

BACKENDS = ["tfidf", "frozen", "finetune"]
# finetune: a few quick epochs of the tiny BERT, end to end (each judge's _fit_finetune)
FINETUNE = {"epochs": 3, "batch_size": 8, "lr": 1e-3, "patience": None, "progress": False}


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    return tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


def make(judge_class, backend, bert, **kwargs):
    encoder = bert if backend in ("frozen", "finetune", "stack") else None
    if backend == "finetune":
        kwargs.setdefault("finetune", FINETUNE)
    return judge_class(features=backend, encoder=encoder, progress=False, epochs=30, **kwargs)


DATA = {PairJudge: pair_examples, RewardJudge: lambda: pair_examples(ties=False),
        SafetyJudge: safety_examples, ScoreJudge: score_examples}


def outputs(judge, data):
    """Every output of a judge, as arrays, for exact comparison."""
    if isinstance(judge, PairJudge):
        return [judge.decision_function(data), judge.predict_proba(data), judge.predict_proba(data, swap_average=False)]
    if isinstance(judge, SafetyJudge):
        return [judge.decision_function(data), judge.predict_proba(data), judge.cost(data), judge.predict(data)]
    if isinstance(judge, RewardJudge):
        return [judge.reward([ex.a for ex in data]), judge.predict_proba(data)]
    return [judge.predict(data)]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("judge_class", [PairJudge, SafetyJudge, ScoreJudge, RewardJudge])
def test_contract(judge_class, backend, bert, tmp_path):
    data = DATA[judge_class]()
    judge = make(judge_class, backend, bert)
    assert judge.fit(data) is judge
    assert judge.task in ("pair", "safety", "score", "reward")
    n = len(data)
    if judge_class is PairJudge:
        p = judge.predict_proba(data)
        assert p.shape == (n, 3) and np.allclose(p.sum(1), 1)
        # Linear judges calibrate on their out-of-fold predictions; torch heads only when asked.
        assert (judge.temperature_ != 1.0) == (backend == "tfidf")
        assert set(judge.predict(data)) <= {"A", "B", "tie"}
    elif judge_class is SafetyJudge:
        assert judge.categories_ == ["harsh", "hate"]
        p = judge.predict_proba(data)
        assert p.shape == (n, 3) and ((p >= 0) & (p <= 1)).all()
        assert ((judge.cost(data) > 0) == (p[:, -1] > judge.threshold_)).all()
    elif judge_class is ScoreJudge:
        pred = judge.predict(data)
        low = np.array([ex.scale[0] for ex in data]); high = np.array([ex.scale[1] for ex in data])
        assert pred.shape == (n,) and ((pred >= low) & (pred <= high)).all()
    else:
        r = judge.reward([ex.a for ex in data] + [ex.b for ex in data])
        # Centred on the training responses (all of these for a linear judge; 90% for a torch head).
        assert r.shape == (2 * n,) and abs(r.mean()) < 0.05 * r.std()
        assert np.array_equal(judge.predict_proba(data) > 0.5, r[:n] > r[n:])

    folder = judge.save(tmp_path / "judge")
    meta = json.loads((folder / "judge.json").read_text())
    assert meta["task"] == judge.task and meta["version"] == 1
    assert not list(folder.rglob("*.pkl")) and not list(folder.rglob("*.pickle"))
    loaded = load_judge(folder, trust_encoder=True)  # frozen / stack name the tiny BERT by its path
    assert type(loaded) is judge_class and type(judge_class.load(folder, trust_encoder=True)) is judge_class
    for before, after in zip(outputs(judge, data), outputs(loaded, data)):
        assert np.array_equal(before, after)


@pytest.mark.parametrize("backend", BACKENDS + ["stack"])
def test_pair_swap_symmetry_is_exact(backend, bert):
    data = pair_examples()
    judge = make(PairJudge, backend, bert).fit(data)
    judge.temperature_ = 1.7  # symmetry must survive temperature scaling too
    p = judge.predict_proba(data)
    q = judge.predict_proba([ex.swapped() for ex in data])
    assert np.array_equal(p[:, 0], q[:, 1]) and np.array_equal(p[:, 1], q[:, 0]) and np.array_equal(p[:, 2], q[:, 2])
    # Without averaging the raw model is not symmetric in general: that is what averaging fixes.
    raw = judge.predict_proba(data, swap_average=False)
    raw_swapped = judge.predict_proba([ex.swapped() for ex in data], swap_average=False)
    assert not np.array_equal(raw[:, 0], raw_swapped[:, 1])


@pytest.mark.parametrize("backend", BACKENDS)
def test_pair_without_ties_is_two_way(backend, bert):
    judge = make(PairJudge, backend, bert).fit(pair_examples(ties=False))
    assert judge.classes_ == ["A", "B"]
    p = judge.predict_proba(pair_examples(ties=False))
    assert (p[:, 2] == 0).all() and np.allclose(p[:, :2].sum(1), 1)


def test_pair_soft_labels_and_calibration():
    from referee.schema import PairExample
    data = [PairExample(id=ex.id, a=ex.a, b=ex.b, soft=(0.6, 0.2, 0.2) if ex.label == "A" else
                        ((0.2, 0.6, 0.2) if ex.label == "B" else (0.2, 0.2, 0.6))) for ex in pair_examples(30)]
    judge = PairJudge(progress=False).fit(data[:24])
    judge.calibrate(data[24:])
    assert judge.temperature_ > 0 and judge.temperature_ != 1.0
    # The soft targets say "never more than 0.6 sure": calibration pulls confidence towards that.
    assert judge.predict_proba(data[24:]).max() < PairJudge(progress=False).fit(data[:24]).predict_proba(data[24:]).max()


def test_training_lowers_the_loss_and_changes_the_parameters(bert):
    torch.manual_seed(0)
    judge = make(PairJudge, "frozen", bert)
    judge.epochs = 40
    judge.patience = 40
    judge.fit(pair_examples())
    losses = [row["loss"] for row in judge.history_]
    assert losses[-1] < losses[0]
    fresh = judge._new_head()  # the weights fit started from
    assert all(torch.equal(p, q) for p, q in zip(fresh.state_dict().values(), judge._new_head().state_dict().values()))
    changed = [name for name, p in judge.head_.state_dict().items() if not torch.equal(p, fresh.state_dict()[name])]
    assert changed


def test_score_unknown_metric(bert):
    from referee.schema import ScoreExample
    data = score_examples()
    new = [ScoreExample(id="x", conversation=data[0].conversation, metric="honesty", scale=(0, 1))]
    tfidf = ScoreJudge(progress=False).fit(data)
    assert tfidf.metrics_ == ["helpfulness", "politeness"]
    with pytest.raises(UserError, match=r"unknown metric\(s\) \['honesty'\]; this judge knows: helpfulness, politeness"):
        tfidf.predict(new)
    # An encoder-embedded judge places a new metric by its name (zero-shot), on its scale.
    frozen = make(ScoreJudge, "frozen", bert).fit(data)
    assert 0 <= frozen.predict(new)[0] <= 1


def test_score_catalogue_and_two_tower(bert, tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "metric_names.json").write_text(json.dumps(["helpfulness", "politeness", "honesty"]))
    np.save(tmp_path / "metric_name_embeddings.npy", rng.normal(size=(3, 8)).astype(np.float32))
    judge = make(ScoreJudge, "frozen", bert, catalogue=str(tmp_path), head="two-tower", loss="huber", reweight=True)
    judge.fit(score_examples())
    assert judge.metric_embeddings_.shape == (3, 8)
    from referee.schema import ScoreExample
    conv = Conversation.from_text("q", "clear")
    assert judge.predict([ScoreExample(id="h", conversation=conv, metric="honesty")]).shape == (1,)
    with pytest.raises(UserError, match="unknown metric"):
        judge.predict([ScoreExample(id="z", conversation=conv, metric="zzz")])


def test_safety_threshold_for_a_target_fpr():
    judge = SafetyJudge(threshold="fpr", target_fpr=0.0, progress=False).fit(safety_examples(40))
    valid = safety_examples(20, seed=1)
    safe = np.array([ex.unsafe is False for ex in valid])
    judge.calibrate(valid)
    assert safe.any() and not judge.predict(valid)[safe].any()  # FPR 0 on the data the threshold was chosen on


def test_reward_margin_and_proba(bert):
    judge = make(RewardJudge, "frozen", bert, margin=1.0).fit(pair_examples(ties=False))
    data = pair_examples(ties=False)
    p = judge.predict_proba(data)
    q = judge.predict_proba([ex.swapped() for ex in data])
    assert np.allclose(p + q, 1)


# --- bad input -----------------------------------------------------------------------------

@pytest.mark.parametrize("judge_class", [PairJudge, SafetyJudge, ScoreJudge, RewardJudge])
def test_empty_data(judge_class):
    with pytest.raises(UserError, match="no examples given"):
        judge_class().fit([])


def test_wrong_task_data():
    with pytest.raises(UserError, match=r"row 0 \(id='s0'\) is safety data, but a pair judge needs PairExample"):
        PairJudge().fit(safety_examples())


def test_single_class():
    from referee.schema import SafetyExample
    safe = [SafetyExample(id=ex.id, conversation=ex.conversation, labels={"harsh": False}) for ex in safety_examples()]
    with pytest.raises(UserError, match="single class.*every known row is safe"):
        SafetyJudge().fit(safe)
    from referee.schema import PairExample
    ties = [PairExample(id=ex.id, a=ex.a, b=ex.b, label="tie") for ex in pair_examples()]
    with pytest.raises(UserError, match="every pair is a tie"):
        PairJudge().fit(ties)
    with pytest.raises(UserError, match="no example has a label of A or B"):
        RewardJudge().fit(ties)
    from referee.schema import ScoreExample
    flat = [ScoreExample(id=ex.id, conversation=ex.conversation, metric="m", score=5.0) for ex in score_examples()]
    with pytest.raises(UserError, match="single value"):
        ScoreJudge().fit(flat)


def test_bad_judge_folders(tmp_path):
    judge = PairJudge(progress=False).fit(pair_examples())
    folder = judge.save(tmp_path / "j")
    with pytest.raises(UserError, match="holds a pair judge, not a safety judge"):
        SafetyJudge.load(folder)
    meta = json.loads((folder / "judge.json").read_text())
    meta["version"] = 99
    (folder / "judge.json").write_text(json.dumps(meta))
    with pytest.raises(UserError, match="written by a newer referee"):
        load_judge(folder)
    meta["version"] = 1
    (folder / "judge.json").write_text(json.dumps(meta))
    (folder / "weights.safetensors").unlink()
    with pytest.raises(UserError, match="missing weights.safetensors"):
        load_judge(folder)
    with pytest.raises(UserError, match="missing judge.json"):
        load_judge(tmp_path)
    with pytest.raises(UserError, match="not fitted"):
        PairJudge().save(tmp_path / "unfitted")


def test_save_replaces_an_old_judge_whole(tmp_path):
    first = PairJudge(progress=False).fit(pair_examples())
    first.save(tmp_path / "j")
    second = PairJudge(progress=False, C=0.1).fit(pair_examples())
    second.save(tmp_path / "j")
    assert load_judge(tmp_path / "j").C == 0.1
    assert [p.name for p in tmp_path.iterdir()] == ["j"]  # no temp folders left behind


@pytest.mark.parametrize("judge_class", [PairJudge, SafetyJudge, ScoreJudge, RewardJudge])
def test_judges_are_scikit_learn_estimators(judge_class):
    """clone gives an unfitted judge with the same parameters; every parameter is in get_params
    (and so saved in judge.json); set_params changes one and returns the judge."""
    from sklearn.base import clone

    judge = judge_class(features="frozen", encoder="minilm", seed=3, progress=False, finetune={"epochs": 1})
    copy = clone(judge)
    assert copy is not judge and copy.get_params() == judge.get_params()
    assert copy.get_params(deep=True)["seed"] == 3 and copy.finetune == {"epochs": 1} and copy.finetune is not judge.finetune
    assert copy.set_params(seed=4) is copy and copy.seed == 4 and judge.seed == 3
    fitted = judge_class(progress=False).fit(DATA[judge_class]())
    assert not hasattr(clone(fitted), "encoder_")


@pytest.mark.parametrize("judge_class", [PairJudge, SafetyJudge, ScoreJudge, RewardJudge])
def test_what_a_judge_tells_the_code_above_it(judge_class, tmp_path):
    """describe, fingerprint, labelled, predict_table and outputs: the per-task knowledge jobs,
    evaluation and serving read from the judge instead of switching on its task."""
    data = DATA[judge_class]()
    judge = judge_class(progress=False).fit(data)
    info = judge.describe()
    assert info["task"] == judge.task and info["features"] == "tfidf" and info["validation"]["n"] > 0
    assert all(judge.labelled(ex) for ex in data) and judge.data_task in judge.eval_data
    table = judge.predict_table(data)
    assert list(table.columns[: 1 + len(judge.columns)]) == ["id", *judge.columns] and len(table) == len(data)
    assert isinstance(judge.outputs(data), dict)
    loaded = load_judge(judge.save(tmp_path / "j"))
    assert loaded.fingerprint() == judge.fingerprint() and loaded.describe() == info


def test_safety_threshold_is_the_best_midway_cut():
    """choose_threshold (on sklearn's roc_curve) against a brute-force search over every midway cut:
    f1 -> the lowest cut of highest F1; fpr -> the lowest cut whose false-positive rate <= the target."""
    from referee.judges.safety import choose_threshold

    def brute(p, y, rule, target):
        v = np.unique(p)
        cuts = np.r_[v[0] - 1e-6, (v[1:] + v[:-1]) / 2, v[-1] + 1e-6]
        flagged = p[None, :] > cuts[:, None]
        tp, fp = (flagged & y).sum(1), (flagged & ~y).sum(1)
        if rule == "fpr":
            return cuts[np.argmax(fp / (~y).sum() <= target)]
        return cuts[np.argmax(2 * tp / (2 * tp + fp + y.sum() - tp))]

    rng = np.random.default_rng(0)
    for _ in range(300):
        n = int(rng.integers(2, 30))
        p, y = np.round(rng.random(n), int(rng.integers(1, 3))), rng.random(n) < 0.4  # rounded: tied scores
        if y.all() or not y.any():
            continue
        for rule, target in (("f1", 0.05), ("fpr", 0.0), ("fpr", 0.2)):
            assert choose_threshold(p, y, rule, target) == pytest.approx(brute(p, y, rule, target), abs=1e-12)
