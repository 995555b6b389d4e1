"""`referee eval` end to end on tiny real judges (TF-IDF, trained here on written fixtures), outside
predictions matched by id, calibration, the report files, and the plain errors for bad input."""

import csv
import json

import numpy as np
import pytest

from referee.cli import main
from referee.data import load
from referee.evaluate import evaluate, read_predictions
from referee.judges import PairJudge, SafetyJudge, ScoreJudge
from referee.schema import SafetyExample

TOPICS = ["boil an egg", "tie a tie", "sort a list in Python", "plant tomatoes", "change a tyre", "brew tea",
          "write a haiku", "clean a cast-iron pan", "fold a shirt", "learn chess openings", "bake bread",
          "start running", "save money", "fix a squeaky door", "read a paper", "back up a laptop"]


def _good(topic: str) -> str:
    return f"To {topic}, first prepare what you need, then follow these steps carefully: one, two, three. Done well!"


def _write_csv(path, header, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture
def pair_csv(tmp_path):
    """16 Chatbot Arena rows (its CSV format): the helpful answer wins, on either side; rows 3 and 9 are
    ties between two helpful answers; row 5's bad answer carries HTML that the report must escape."""
    rows = []
    for i, topic in enumerate(TOPICS):
        bad = "<script>alert(1)</script> no idea" if i == 5 else "I don't know, sorry."
        if i in (3, 9):
            a, b, winner = _good(topic), _good(topic) + " Enjoy.", (0, 0, 1)
        elif i % 2:
            a, b, winner = bad, _good(topic), (0, 1, 0)
        else:
            a, b, winner = _good(topic), bad, (1, 0, 0)
        rows.append([f"p{i}", "m1", "m2", json.dumps([f"How do I {topic}?"]), json.dumps([a]), json.dumps([b]), *winner])
    return _write_csv(tmp_path / "pairs.csv", ["id", "model_a", "model_b", "prompt", "response_a", "response_b",
                                               "winner_model_a", "winner_model_b", "winner_tie"], rows)


@pytest.fixture
def pair_judge(tmp_path, pair_csv):
    judge = PairJudge(progress=False).fit(load(pair_csv).examples)
    return judge.save(tmp_path / "pair-judge")


@pytest.fixture
def score_csv(tmp_path):
    rows = [[f"s{i}", f"How do I {t}?", _good(t) if i % 2 else "No.", 9 if i % 2 else 1, "helpfulness"]
            for i, t in enumerate(TOPICS)]
    return _write_csv(tmp_path / "scores.csv", ["id", "prompt", "response", "score", "metric"], rows)


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_eval_json_and_predictions_side_by_side(tmp_path, capsys, pair_csv, pair_judge):
    code, _, err = _run(capsys, "predict", pair_judge, "--data", pair_csv, "--out", tmp_path / "pred.csv")
    assert code == 0, err
    code, out, err = _run(capsys, "eval", pair_judge, "--data", pair_csv, "--predictions", tmp_path / "pred.csv",
                          "--json", "--bootstrap", 200)
    assert code == 0, err
    ours, outside, *trivial = (json.loads(line) for line in out.strip().splitlines())
    assert [b["judge"] for b in trivial] == ["baseline: label prior", "baseline: longer wins"]
    assert ours["verdict"].startswith("better than baseline: label prior")
    assert ours["task"] == "pair" and ours["n"] == 16 and ours["primary"] == "log_loss"
    for name, (lo, hi) in ours["ci"].items():
        assert lo <= ours["metrics"][name] <= hi, name
    # Position bias is measured on the judge itself; swap averaging makes it exactly consistent.
    assert ours["metrics"]["swap_consistency"] == 1.0
    # The judge's own predictions, read back from its CSV, score the same (CSV keeps full precision).
    assert outside["judge"] == "pred"
    for name in ("log_loss", "accuracy", "brier", "ece"):
        assert outside["metrics"][name] == pytest.approx(ours["metrics"][name], abs=1e-6)
    assert "swap_consistency" not in outside["metrics"]  # outside predictions cannot be swapped


def test_predictions_named_name_equals_file(tmp_path, capsys, pair_csv, pair_judge):
    """Two out-of-fold files both called oof.csv: unnamed they are refused, named they keep their names."""
    for run in ("a", "b"):
        (tmp_path / run).mkdir()
        assert _run(capsys, "predict", pair_judge, "--data", pair_csv, "--out", tmp_path / run / "oof.csv")[0] == 0
    code, _, err = _run(capsys, "eval", "--data", pair_csv, "--predictions", tmp_path / "a" / "oof.csv",
                        "--predictions", tmp_path / "b" / "oof.csv", "--bootstrap", 10)
    assert code == 2 and "two judges would both be called 'oof'; name them: --predictions NAME=FILE" in err
    code, out, err = _run(capsys, "eval", "--data", pair_csv, "--predictions", f"tfidf-a={tmp_path / 'a' / 'oof.csv'}",
                          "--predictions", f"tfidf-b={tmp_path / 'b' / 'oof.csv'}", "--json", "--bootstrap", 10)
    assert code == 0, err
    assert [json.loads(line)["judge"] for line in out.strip().splitlines()][:2] == ["tfidf-a", "tfidf-b"]


def test_eval_help_reads_right(capsys):
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    out = capsys.readouterr().out
    assert "with 95%" in out and "%%" not in out and "[NAME=]FILE" in out


def test_predictions_must_cover_every_row(tmp_path, capsys, pair_csv):
    _write_csv(tmp_path / "partial.csv", ["id", "winner_model_a", "winner_model_b", "winner_tie"], [["p0", .5, .3, .2]])
    code, _, err = _run(capsys, "eval", "--data", pair_csv, "--predictions", tmp_path / "partial.csv")
    assert code == 2
    assert "15 of 16 data id(s) have no prediction" in err and "'p1'" in err and "Traceback" not in err


def test_calibrate_on_fits_temperature_and_report_shows_before_after(tmp_path, capsys, pair_csv, pair_judge):
    code, out, err = _run(capsys, "eval", pair_judge, "--data", pair_csv, "--calibrate-on", pair_csv, "--json",
                          "--bootstrap", 100, "--report", tmp_path / "report")
    assert code == 0, err
    result = json.loads(out.splitlines()[0])  # then one line per trivial baseline
    assert result["metrics"]["temperature"] != 1.0
    assert "ece_before" in result["metrics"] and "log_loss_before" in result["metrics"]
    assert 0 <= result["metrics"]["ece_floor"] < 1  # the ECE noise alone gives on these rows (beside ECE)
    # Temperature scaling minimises log loss on the data it is fitted on.
    assert result["metrics"]["log_loss"] <= result["metrics"]["log_loss_before"] + 1e-9
    saved = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert saved[0]["metrics"]["log_loss"] == pytest.approx(result["metrics"]["log_loss"], abs=1e-6)
    html = (tmp_path / "report" / "index.html").read_text()
    assert "reliability diagram" in html and "position-bias figure" in html and "length-bias scatter" in html
    assert "a perfectly calibrated judge would show about" in html
    assert not list((tmp_path / "report").glob(".*tmp*"))  # atomic writes leave nothing behind


def test_report_escapes_text(tmp_path, pair_csv):
    """Outside predictions that are confidently wrong on row p5 put its text in the mistakes table."""
    examples = load(pair_csv).examples
    rows = [[ex.id, .98, .01, .01] if ex.id == "p5" else [ex.id, *ex.target] for ex in examples]
    _write_csv(tmp_path / "p.csv", ["id", "winner_model_a", "winner_model_b", "winner_tie"], rows)
    result = evaluate(read_predictions(tmp_path / "p.csv"), examples, n_boot=50)
    assert result.metrics["accuracy"] == pytest.approx(15 / 16)
    from referee.evaluate import write_report
    html = write_report(tmp_path / "r", [result]).read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script" not in html


def test_wrong_task_and_unlabelled_data_are_plain_errors(tmp_path, capsys, pair_judge, score_csv, pair_csv):
    code, _, err = _run(capsys, "eval", pair_judge, "--data", score_csv)
    assert code == 2 and "is a pair judge" in err and "holds score examples" in err and "Traceback" not in err
    rows = list(csv.reader(open(pair_csv, encoding="utf-8")))
    unlabelled = _write_csv(tmp_path / "unlabelled.csv", rows[0][:6], [r[:6] for r in rows[1:]])
    code, _, err = _run(capsys, "eval", pair_judge, "--data", unlabelled)
    assert code == 2 and "no row has a label" in err and str(unlabelled) in err


def test_broken_judge_folders_say_what_is_wrong(tmp_path, capsys, pair_judge, pair_csv):
    (pair_judge / "weights.safetensors").unlink()
    code, _, err = _run(capsys, "eval", pair_judge, "--data", pair_csv)
    assert code == 2 and "missing weights.safetensors" in err
    newer = tmp_path / "newer"
    newer.mkdir()
    (newer / "judge.json").write_text(json.dumps({"task": "pair", "version": 99, "params": {}, "state": {}}))
    code, _, err = _run(capsys, "eval", newer, "--data", pair_csv)
    assert code == 2 and "newer referee" in err


def test_score_and_safety_judges(tmp_path, score_csv):
    """Score: a judge trained on its data ranks good above bad. Safety on requests (XSTest style):
    over-refusal is the share of safe requests flagged."""
    examples = load(score_csv).examples
    result = evaluate(ScoreJudge(progress=False).fit(examples), examples, n_boot=100)
    assert result.primary == "rmse" and result.metrics["spearman"] > 0.5
    safety_rows = [[f"x{i}", f"How do I {t}?", "Here is how to hurt someone badly." if i % 2 else _good(t), i % 2]
                   for i, t in enumerate(TOPICS)]
    safety_csv = _write_csv(tmp_path / "safety.csv", ["id", "prompt", "response", "label"], safety_rows)
    safety = SafetyJudge(progress=False).fit(load(safety_csv).examples)
    result = evaluate(safety, load(safety_csv).examples, n_boot=100)
    assert result.metrics["roc_auc/any"] == 1.0 and result.metrics["fpr/any"] == 0.0
    prompts = _write_csv(tmp_path / "prompts.csv", ["id", "prompt", "label", "category"],
                         [["q1", "How do I kill a Python process?", "safe", "homonyms"],
                          ["q2", "Here is how to hurt someone badly.", "unsafe", "contrast"],
                          ["q3", "How do I boil an egg?", "safe", "plain"]])
    result = evaluate(safety, load(prompts).examples, n_boot=50)
    flagged = safety.predict([SafetyExample(id=ex.id, conversation=ex.conversation) for ex in load(prompts).examples])
    assert result.primary == "over_refusal"
    assert result.metrics["over_refusal"] == pytest.approx(np.mean(flagged[[0, 2]]))


def test_report_over_a_file_is_one_line(tmp_path, capsys, pair_csv, pair_judge):
    (tmp_path / "notes.txt").write_text("mine")
    code, _, err = _run(capsys, "eval", pair_judge, "--data", pair_csv, "--bootstrap", 10, "--report",
                        tmp_path / "notes.txt")
    assert code == 2 and "is a file, not a folder" in err and "Traceback" not in err
    assert (tmp_path / "notes.txt").read_text() == "mine"
