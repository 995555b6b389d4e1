"""Distillation (`referee.jobs.teacher`, `referee train pair --teacher`): the mixed targets, the weight
chosen against human labels only, and one-line errors for teachers that cannot teach."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from judges_fixtures import pair_examples, safety_examples
from test_judges_cli import arena_csv

from referee.cli import main
from referee.config import ConfigError
from referee.errors import UserError
from referee.jobs.config import TrainConfig
from referee.jobs.teacher import (
    Teacher,
    choose_weight,
    distil,
    read_teacher,
    weight_search,
)
from referee.judges import PairJudge, SafetyJudge, load_judge
from referee.schema import Conversation, PairExample

SWAP = [1, 0, 2]


def _pair(id, **labels):
    return PairExample(id=id, a=Conversation.from_text("q", "x"), b=Conversation.from_text("q", "y"), **labels)


def test_mix_targets_of_matched_unknown_failed_and_unlabelled_rows():
    """w = 0.25: a human A (1, 0, 0) and a teacher B (0, 1, 0) -> (0.75, 0.25, 0); a soft human
    (0.5, 0, 0.5) and a teacher tie -> (0.375, 0, 0.625). The others are the rows they were."""
    rows = [_pair("a", label="A"), _pair("s", soft=(0.5, 0.0, 0.5)), _pair("unknown", label="B"),
            _pair("failed", label="B"), _pair("unlabelled")]
    teacher = Teacher(Path("t.json"), {"a": np.eye(3)[1], "s": np.eye(3)[2], "failed": None,
                                       "unlabelled": np.eye(3)[0]})
    mixed = teacher.mix(rows, 0.25)
    assert mixed[0].soft == (0.75, 0.25, 0.0) and mixed[0].label == "A"  # the human label stays (stratification)
    assert mixed[1].soft == (0.375, 0.0, 0.625)
    assert mixed[2:] == rows[2:]
    assert teacher.coverage(rows) == {"source": "t.json", "rows": 4, "matched": 2, "failed": 1}
    assert teacher.note(rows) == ("--teacher t.json: verdicts for 2 of 4 labelled training rows "
                                  "(1 failed, 1 unknown: those keep their human label)")


def test_weight_zero_is_exactly_the_human_only_judge():
    rows = pair_examples(36)
    teacher = Teacher(Path("t.csv"), {ex.id: np.array([0.2, 0.3, 0.5]) for ex in rows})
    alone = PairJudge(progress=False).fit(rows)
    taught = distil(PairJudge(progress=False), rows, teacher, choose_weight(PairJudge(), rows, teacher, 0.0))
    assert np.array_equal(taught.W_, alone.W_) and taught.temperature_ == alone.temperature_
    assert np.array_equal(taught.predict_proba(rows), alone.predict_proba(rows))
    assert taught.validation_ == alone.validation_
    assert taught.teacher_["chosen"] == 0.0 and taught.teacher_["matched"] == 36


def test_the_weight_is_scored_on_human_labels_so_a_wrong_teacher_gets_none():
    """The teacher says the opposite of every human label. Scored against the held-out human labels,
    every share of it hurts and w = 0 wins; scored against the teacher's verdicts on the held-out rows
    (the teacher leaking into the score), the student trained on most of it would have won."""
    rows = pair_examples(36, ties=False)
    teacher = Teacher(Path("t.csv"), {ex.id: np.asarray(ex.target)[SWAP] for ex in rows})
    found, oofs = weight_search(PairJudge(C=1.0), rows, teacher, grid=(0.0, 0.25, 0.75), k=3)
    assert found.chosen == 0.0 and found.curve[0] < found.curve[1] < found.curve[2]
    said = np.array([teacher.targets[ex.id].argmax() for ex in rows])
    assert [float(np.mean(oofs[w].argmax(1) == said)) for w in (0.0, 0.75)] == [0.0, 1.0]


class Spy(dict):
    """A teacher's verdicts that remember which ids were read."""

    def __init__(self, *args):
        super().__init__(*args)
        self.read = set()

    def get(self, key, default=None):
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)


def test_the_weight_search_never_reads_the_teachers_verdicts_on_held_out_rows(monkeypatch):
    """One split (rows 0-23 train, 24-35 held out): no verdict on a held-out row may be looked up."""
    from referee.judges import capacity

    rows = pair_examples(36)
    split = [(np.arange(24), np.arange(24, 36))]
    judges_own = capacity.folds_or_reason  # the student's capacity search keeps its folds
    monkeypatch.setattr(capacity, "folds_or_reason",
                        lambda examples, k, seed: (split, None) if examples == rows else judges_own(examples, k, seed))
    teacher = Teacher(Path("t.csv"), Spy({ex.id: np.array([0.2, 0.3, 0.5]) for ex in rows}))
    weight_search(PairJudge(C=1.0), rows, teacher, grid=(0.0, 0.5), k=3)
    assert teacher.targets.read == {ex.id for ex in rows[:24]}


def test_too_few_prompts_fall_back_to_the_stated_weight(capsys):
    rows = [_pair(str(i), label="AB"[i % 2]) for i in range(6)]  # one prompt: no grouped folds
    found, _ = weight_search(PairJudge(), rows, Teacher(Path("t"), {}))
    assert found.chosen == 0.5 and "cannot cross-validate the teacher's weight" in capsys.readouterr().err


def _predictions_csv(path, rows):
    pd.DataFrame({"id": [ex.id.lstrip("p") for ex in rows], "winner_model_a": [0.6] * len(rows),
                  "winner_model_b": [0.3] * len(rows), "winner_tie": [0.1] * len(rows)}).to_csv(path, index=False)
    return path


def test_train_pair_with_a_teacher_file_from_the_command_line_and_yaml(tmp_path, capsys):
    data = arena_csv(tmp_path / "train.csv")
    teacher = _predictions_csv(tmp_path / "teacher.csv", pair_examples(30)[:20])
    assert main(["train", "pair", "--data", str(data), "--teacher", str(teacher), "--folds", "3",
                 "--out", str(tmp_path / "judge"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"note: --teacher {teacher}: verdicts for 20 of 30 labelled training rows (0 failed, 10 unknown" in out
    assert "teacher_weight" in out and "by 3-fold CV (log_loss vs human labels" in out
    saved = json.loads((tmp_path / "judge" / "judge.json").read_text())["state"]["teacher"]
    assert saved["matched"] == 20 and saved["chosen"] in (0.0, 0.25, 0.5, 0.75) and len(saved["cv_curve"]) == 4
    assert "teacher" not in json.loads((tmp_path / "judge" / "judge.json").read_text())["params"]  # old code loads it
    assert load_judge(tmp_path / "judge").teacher_ == saved

    config = tmp_path / "c.yaml"
    config.write_text(f"teacher: {teacher}\nteacher_weight: 0.5\n")
    assert main(["train", "pair", "--data", str(data), "--config", str(config), "--out", str(tmp_path / "j2"),
                 "--no-progress"]) == 0
    assert "teacher_weight 0.5 (fixed by --teacher-weight)" in capsys.readouterr().out


def test_a_judge_and_pandalm_verdicts_as_teachers(tmp_path, capsys):
    rows = pair_examples(30)
    judge = PairJudge(progress=False).fit(rows[:15]).save(tmp_path / "teacher")
    found = read_teacher(judge, rows)
    assert len(found.targets) == 30 and np.allclose(found.targets["p3"].sum(), 1)
    assert "trained on the prompts of" in capsys.readouterr().err  # its verdicts on its own rows are in-sample

    verdicts = tmp_path / "gpt-3.5-turbo-testset-v1.json"
    verdicts.write_text(json.dumps([{"idx": 0, "gpt_result": "2"}, {"idx": 1, "gpt_result": "garbage"}]))
    pandalm = read_teacher(verdicts, [_pair("0", label="A"), _pair("1", label="B"), _pair("2", label="A")])
    assert pandalm.targets["0"].tolist() == [0.0, 1.0, 0.0] and pandalm.targets["1"] is None


def test_teachers_that_cannot_teach_stop_with_one_line(tmp_path):
    rows = pair_examples(12)
    with pytest.raises(UserError, match=r"missing.csv: no such teacher: expected a pair judge folder or a predictions"):
        read_teacher(tmp_path / "missing.csv", rows)
    other = _predictions_csv(tmp_path / "other.csv", rows)  # ids "0", "1", ... where the rows have "p0", ...
    with pytest.raises(UserError, match=r"other.csv: no teacher prediction matches a training row by id \(teacher ids '0'"):
        read_teacher(other, rows)
    SafetyJudge(progress=False).fit(safety_examples()).save(tmp_path / "safety")
    with pytest.raises(UserError, match=r"safety: holds a safety judge; the teacher of a pair judge is a pair judge"):
        read_teacher(tmp_path / "safety", rows)
    bad = tmp_path / "bad.csv"
    bad.write_text("id,winner_model_a,winner_model_b,winner_tie\np0,-1,0.5,0.5\n")
    with pytest.raises(UserError, match=r"bad.csv: id 'p0': expected probabilities >= 0"):
        read_teacher(bad, rows)
    for fields, message in [({"task": "reward", "teacher": "t.csv"}, "field 'teacher' applies to pair judges"),
                            ({"teacher_weight": 0.5}, "field 'teacher_weight' needs a 'teacher'"),
                            ({"teacher": "t.csv", "teacher_weight": 1.5}, "field 'teacher_weight': expected a number in")]:
        with pytest.raises(ConfigError, match=message):
            TrainConfig(data="x", out="j", **fields)
