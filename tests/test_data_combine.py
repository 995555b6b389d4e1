"""Several files as one training set (ids namespaced by file where they clash) and a safety set narrowed
to the categories the user names (issue 12, item 3)."""

import pytest
from test_data_loaders import XSTEST_COMPLETIONS, XSTEST_PROMPTS, jsonl, write

from referee.data import DataError
from referee.data.combine import load_all, only_categories


def test_files_sharing_ids_get_ids_namespaced_by_file(tmp_path):
    write(tmp_path / "xstest_prompts.csv", XSTEST_PROMPTS)
    gpt4 = write(tmp_path / "xstest_v2_completions_gpt4.csv", XSTEST_COMPLETIONS)
    llama = write(tmp_path / "xstest_v2_completions_llama2new.csv", XSTEST_COMPLETIONS)
    res = load_all([gpt4, llama])
    assert (res.task, len(res)) == ("safety", 4)
    assert [e.id for e in res.examples] == [
        "xstest_v2_completions_gpt4.csv:v2-1", "xstest_v2_completions_gpt4.csv:v2-26",
        "xstest_v2_completions_llama2new.csv:v2-1", "xstest_v2_completions_llama2new.csv:v2-26"]
    assert "namespaced by file" in res.notes[-1]
    # Ids unique across files stay as they are.
    a = jsonl(tmp_path / "a.jsonl", [{"id": "1", "prompt": "p", "response_a": "x", "response_b": "y", "label": "A"}])
    b = jsonl(tmp_path / "b.jsonl", [{"id": "2", "prompt": "q", "response_a": "x", "response_b": "y", "label": "B"}])
    assert [e.id for e in load_all([a, b]).examples] == ["1", "2"]
    # Two tasks at once is an error naming both files.
    with pytest.raises(DataError, match=r"b\.jsonl holds pair examples but .*gpt4\.csv holds safety examples"):
        load_all([gpt4, b])


def test_only_the_named_categories_are_learnt(tmp_path):
    write(tmp_path / "xstest_prompts.csv", XSTEST_PROMPTS)
    examples = load_all([write(tmp_path / "xstest_v2_completions_gpt4.csv", XSTEST_COMPLETIONS)]).examples
    assert [e.labels for e in only_categories(examples, ["refusal"])] == [{"refusal": False}, {"refusal": True}]
    with pytest.raises(DataError, match="--categories: no row labels 'H2'; the data labels: partial_refusal, "
                                        "refusal, unsafe_prompt"):
        only_categories(examples, ["H2"])
