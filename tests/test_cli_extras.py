"""A command whose optional extra is not installed stops with one line naming the pip install."""

from __future__ import annotations

import pytest

import referee.cli as cli


@pytest.mark.parametrize("argv,extra,needs", [
    (["serve", "some-judge"], "serve", "SERVE_NEEDS"),
    (["demo", "--serve"], "serve", "SERVE_NEEDS"),
    (["align", "sft", "--data", "pairs.csv", "--out", "runs/sft"], "align", "ALIGN_NEEDS"),
    (["align", "eval", "--policies", "base=smollm2", "--judge", "j", "--out", "o"], "align", "ALIGN_NEEDS"),
])
def test_missing_extra_is_one_line(monkeypatch, capsys, tmp_path, argv, extra, needs):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli, needs, ("referee_test_absent_module",))
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"pip install 'referee[{extra}]'" in err and "referee_test_absent_module" in err
    assert list(tmp_path.iterdir()) == []  # stopped before doing anything
