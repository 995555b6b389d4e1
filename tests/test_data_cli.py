"""`referee data inspect`: text and JSON summaries, and one-line errors for bad input."""

import json

import pytest

from referee.cli import main
from referee.data.inspect import script_of


ARENA = ('id,model_a,model_b,prompt,response_a,response_b,winner_model_a,winner_model_b,winner_tie\n'
         '1,m1,m2,"[""Привет, как дела?""]","[""Хорошо""]","[""Нормально""]",1,0,0\n'
         '2,m1,m2,"[""What is 2+2?""]","[""4""]","[""5""]",0,1,0\n'
         '3,m1,m2,"[""你好""]","[""你好！""]","[""你好""]",1,1,0\n')


def test_inspect_json_and_skip(tmp_path, capsys):
    path = tmp_path / "train.csv"
    path.write_text(ARENA, encoding="utf-8")
    assert main(["data", "inspect", str(path), "--json"]) == 2
    assert "row 3 (line 4): fields winner_model_a, winner_model_b, winner_tie: one-hot winner sums to 2" in capsys.readouterr().err
    assert main(["data", "inspect", str(path), "--json", "--on-error", "skip"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["format"], summary["task"], summary["rows"], summary["skipped"]) == ("arena", "pair", 2, 1)
    assert summary["labels"] == {"A": 1, "B": 1}
    assert summary["languages"] == {"Cyrillic": 1, "Latin": 1}
    assert summary["problems"][0].startswith("1 row(s) skipped: 1 x fields winner_model_a")


def test_inspect_text_with_columns(tmp_path, capsys):
    path = tmp_path / "rated.csv"
    path.write_text("q,a,r\nनमस्ते,ঠিক আছে,3\nhello,hi,5\n", encoding="utf-8")
    assert main(["data", "inspect", str(path), "--columns", "prompt=q,response=a,score=r"]) == 0
    out = capsys.readouterr().out
    assert "format     csv  (task: score)" in out and "r: 2, 4.0 [3-5] on 1-5" in out
    assert "score scale not given: 1-5, inferred from the data (scores 3 to 5)" in out
    assert "languages  Devanagari 1, Latin 1  (by script)" in out


def test_inspect_unknown_format_is_one_message_without_traceback(tmp_path, capsys):
    path = tmp_path / "notes.md"
    path.write_text("# hello\n")
    assert main(["data", "inspect", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("referee: error:") and "Traceback" not in err and "  csv: not a .csv file" in err


@pytest.mark.parametrize("text, script", [("नमस्ते", "Devanagari"), ("আমি", "Bengali"), ("வணக்கம்", "Tamil"),
                                          ("hello", "Latin"), ("你好", "CJK"), ("Привет", "Cyrillic"),
                                          ("مرحبا", "Arabic"), ("123 !", "none")])
def test_script_of(text, script):
    assert script_of(text) == script


def test_inspect_real_files(shared_data, capsys):
    for path, fmt, rows in [("arena/train.csv", "arena", 800), ("pandalm/pandalm-7b-testset-v1.dev.json",
                                                                "pandalm_predictions", 694),
                            ("da5401", "da5401_catalogue", 145), ("arena/sample_submission.csv", "arena_submission", 3)]:
        assert main(["data", "inspect", str(shared_data / path), "--json"]) == 0
        summary = json.loads(capsys.readouterr().out)
        assert (summary["format"], summary["rows"]) == (fmt, rows)
