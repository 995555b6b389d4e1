"""Atomic writes and the output-folder rule: a folder is replaced only when referee wrote it (its
marker file) or it is empty; anything else stops with one line; a file is never touched."""

from __future__ import annotations

import os

import pytest

from referee.errors import UserError
from referee.io import atomic_file, atomic_folder, check_replaceable, write_text


def test_atomic_file_keeps_the_old_content_when_writing_fails(tmp_path):
    path = write_text(tmp_path / "a.txt", "old")
    with pytest.raises(RuntimeError), atomic_file(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_atomic_file_refuses_a_folder_and_a_file_as_parent(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(UserError, match="is a folder"):
        write_text(tmp_path / "d", "x")
    (tmp_path / "f").write_text("mine")
    with pytest.raises(UserError, match="is a file, not a folder"):
        write_text(tmp_path / "f" / "x.csv", "x")
    assert (tmp_path / "f").read_text() == "mine"


@pytest.mark.parametrize("state", ["absent", "empty", "referee"])
def test_replaceable_folders(tmp_path, state):
    folder = tmp_path / "out"
    if state != "absent":
        folder.mkdir()
    if state == "referee":
        (folder / "judge.json").write_text("{}")
        (folder / "old.bin").write_text("old")
    with atomic_folder(folder, "judge.json") as tmp:
        (tmp / "judge.json").write_text("new")
    assert sorted(p.name for p in folder.iterdir()) == ["judge.json"] and (folder / "judge.json").read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary folders left


def test_a_folder_referee_did_not_write_is_kept_unless_overwrite(tmp_path):
    folder = tmp_path / "proj"
    folder.mkdir()
    (folder / "notes.txt").write_text("important")
    with pytest.raises(UserError, match=r"proj: holds files referee did not write \(no judge.json\).*--overwrite"):
        with atomic_folder(folder, "judge.json") as tmp:
            (tmp / "judge.json").write_text("{}")
    assert (folder / "notes.txt").read_text() == "important"
    assert [p.name for p in tmp_path.iterdir()] == ["proj"]
    with atomic_folder(folder, "judge.json", overwrite=True) as tmp:
        (tmp / "judge.json").write_text("{}")
    assert sorted(p.name for p in folder.iterdir()) == ["judge.json"]


def test_a_file_or_a_symlink_is_never_replaced(tmp_path):
    data = tmp_path / "train.csv"
    data.write_text("a,b\n")
    for overwrite in (False, True):
        with pytest.raises(UserError, match="is not a folder"):
            check_replaceable(data, "judge.json", overwrite=overwrite)
    (tmp_path / "real").mkdir()
    os.symlink(tmp_path / "real", tmp_path / "link")
    with pytest.raises(UserError, match="is not a folder"):
        check_replaceable(tmp_path / "link", "judge.json", overwrite=True)
    assert data.read_text() == "a,b\n"


def test_a_folder_filled_during_the_write_is_not_replaced(tmp_path):
    """The check runs again at the end: a long job must not remove what appeared meanwhile."""
    folder = tmp_path / "out"
    with pytest.raises(UserError, match="did not write"):
        with atomic_folder(folder, "judge.json") as tmp:
            (tmp / "judge.json").write_text("{}")
            folder.mkdir()
            (folder / "notes.txt").write_text("new meanwhile")
    assert [p.name for p in folder.iterdir()] == ["notes.txt"]


def test_checkpoint_folder_follows_the_rule(tmp_path):
    import torch

    from referee.train.checkpoint import save_checkpoint

    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.AdamW(model.parameters())
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    (tmp_path / "best").mkdir()
    (tmp_path / "best" / "mine.txt").write_text("mine")
    with pytest.raises(UserError, match="no state.json"):
        save_checkpoint(tmp_path / "best", model, optimizer, scheduler, {"step": 0})
    save_checkpoint(tmp_path / "last", model, optimizer, scheduler, {"step": 1})
    save_checkpoint(tmp_path / "last", model, optimizer, scheduler, {"step": 2})  # its own folder: replaced
    assert (tmp_path / "best" / "mine.txt").read_text() == "mine"
    assert sorted(p.name for p in (tmp_path / "last").iterdir()) == ["model.safetensors", "optimizer.safetensors",
                                                                      "state.json"]


def test_align_output_follows_the_rule_before_training(tmp_path):
    from referee.align.config import AlignConfig
    from referee.align.training import read_pairs

    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "notes.txt").write_text("important")
    with pytest.raises(UserError, match=r"no align.json\): choose another folder \(or empty it yourself\)"):
        read_pairs(AlignConfig(stage="sft", data=str(tmp_path / "never-read.csv"), out=str(tmp_path / "proj")))
    assert (tmp_path / "proj" / "notes.txt").read_text() == "important"
