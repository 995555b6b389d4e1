"""Splits: deterministic, grouped by prompt, stratified by label."""

from collections import Counter

import numpy as np
import pytest

from referee.data import DataError
from referee.data.split import group_key, kfold, train_valid_split
from referee.schema import Conversation, PairExample, ScoreExample


def pairs(n_prompts=20, per_prompt=3):
    """n_prompts prompts, each answered by `per_prompt` pairs; labels cycle A, B, tie over prompts."""
    out = []
    for p in range(n_prompts):
        for r in range(per_prompt):
            prompt = f"Question {p}?" if r else f"  question {p}? "  # same prompt, other spacing and case
            out.append(PairExample(id=f"{p}-{r}", a=Conversation.from_text(prompt, f"a{r}"),
                                   b=Conversation.from_text(prompt, f"b{r}"), label="AB"[p % 2] if p % 5 else "tie"))
    return out


def test_train_valid_split_is_grouped_stratified_and_deterministic():
    examples = pairs()
    train, valid = train_valid_split(examples, valid_fraction=0.2, seed=0)
    assert len(train) + len(valid) == 60 and len(valid) in (12, 15)  # 4 or 5 of the 20 prompts, 3 pairs each
    assert not {group_key(e) for e in train} & {group_key(e) for e in valid}
    # 4 tie, 8 A and 8 B prompts overall: a fifth is 1 tie prompt and 1.6 of each of A and B.
    counts = Counter(e.label for e in valid)
    assert counts["tie"] == 3 and counts["A"] in (3, 6) and counts["B"] in (3, 6)
    again = train_valid_split(examples, valid_fraction=0.2, seed=0)
    assert [e.id for e in again[1]] == [e.id for e in valid]
    other = train_valid_split(examples, valid_fraction=0.2, seed=1)
    assert [e.id for e in other[1]] != [e.id for e in valid]


def test_kfold_covers_every_example_once():
    examples = pairs()
    folds = kfold(examples, k=5, seed=0)
    assert len(folds) == 5
    seen = np.concatenate([valid for _, valid in folds])
    assert sorted(seen.tolist()) == list(range(60))
    for train, valid in folds:
        assert not set(train) & set(valid)
        assert not {group_key(examples[i]) for i in train} & {group_key(examples[i]) for i in valid}


def test_score_examples_are_grouped_across_metrics():
    conv = Conversation.from_text
    examples = [ScoreExample(id=f"{p}/{m}", conversation=conv(f"prompt {p}"), metric=m, score=float(p % 5),
                             scale=(0, 4)) for p in range(10) for m in ("Toxicity", "Insult")]
    train, valid = train_valid_split(examples, valid_fraction=0.5)
    assert {e.id.split("/")[0] for e in train}.isdisjoint({e.id.split("/")[0] for e in valid})


def test_too_few_prompts_is_a_clear_error():
    with pytest.raises(DataError, match="5 folds need at least 5 distinct prompts, the data has 2"):
        kfold(pairs(n_prompts=2), k=5)
    with pytest.raises(DataError, match="valid_fraction must be between 0 and 1"):
        train_valid_split(pairs(), valid_fraction=1.5)
