"""Deterministic splits that keep every prompt on one side and keep label shares alike on both.

Examples are grouped by their opening request (the first user turn, whitespace- and case-normalised):
the rows of one prompt — several responses to it, its 8 RTP-LX categories, PandaLM's model pairs on
one instruction — always land together, so a judge is never tested on a prompt it was trained on.
Within that constraint the folds are stratified by the label (pair: A / B / tie; score: metric and
score band; safety: unsafe; prompts: label), using scikit-learn's StratifiedGroupKFold.

    train, valid = train_valid_split(examples, valid_fraction=0.2, seed=0)
    for train_idx, valid_idx in kfold(examples, k=5, seed=0): ...
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from referee.data.files import DataError


def group_key(example) -> str:
    """The opening request, normalised: the unit that must not cross a split."""
    conversation = example.a if example.task == "pair" else example.conversation
    first = next((t.content for t in conversation.turns if t.role == "user"), conversation.turns[0].content)
    return " ".join(first.split()).casefold()


def stratum(example) -> str:
    """The label a split keeps in proportion on both sides."""
    if example.task == "pair":
        return str(example.label)
    if example.task == "score":
        if example.score is None:
            return f"{example.metric}|none"
        low, high = example.scale
        band = min(int((example.score - low) / (high - low) * 3), 2)  # low / middle / high third
        return f"{example.metric}|{band}"
    if example.task == "safety":
        return str(example.unsafe)
    return str(example.label)


def kfold(examples, k: int = 5, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """k (train_idx, valid_idx) pairs of index arrays: grouped by prompt, stratified by label, every
    example in exactly one valid fold; the same examples and seed give the same folds."""
    if k < 2:
        raise DataError(f"kfold: k must be at least 2, got {k}")
    groups = np.array([group_key(e) for e in examples])
    n_groups = len(set(groups.tolist()))
    if n_groups < k:
        raise DataError(f"kfold: {k} folds need at least {k} distinct prompts, the data has {n_groups}")
    labels = np.array([stratum(e) for e in examples])
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        # Rare strata (fewer members than folds) are expected with small data; they are spread as well
        # as the groups allow.
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        return [(train, valid) for train, valid in splitter.split(np.zeros(len(examples)), labels, groups)]


def train_valid_split(examples, valid_fraction: float = 0.2, seed: int = 0) -> tuple[list, list]:
    """(train, valid) lists, valid about `valid_fraction` of the examples (one fold of round(1 /
    valid_fraction) grouped, stratified folds), no prompt on both sides, order kept within each side."""
    if not 0 < valid_fraction < 1:
        raise DataError(f"valid_fraction must be between 0 and 1, got {valid_fraction}")
    examples = list(examples)
    train_idx, valid_idx = kfold(examples, k=max(2, round(1 / valid_fraction)), seed=seed)[0]
    return [examples[i] for i in train_idx], [examples[i] for i in valid_idx]


def prompt_digest(examples) -> list[str]:
    """The opening requests of `examples`, hashed (sha256, 16 hex digits), sorted and unique: what a judge
    saves of its training data so that evaluation can tell when it is shown rows it learnt from, without
    keeping the text itself.

    >>> from referee.schema import Conversation, ScoreExample
    >>> rows = [ScoreExample(id=str(i), conversation=Conversation.from_text(p, "ok"), metric="m")
    ...         for i, p in enumerate(["Hi there", "hi   THERE", "Bye"])]
    >>> len(prompt_digest(rows)), overlap(rows[:1], prompt_digest(rows[1:2]))
    (2, 1)
    """
    return sorted({_hash(group_key(e)) for e in examples})


def overlap(examples, digest) -> int:
    """How many of `examples` open with a request whose hash is in `digest` (see `prompt_digest`)."""
    seen = set(digest)
    return sum(_hash(group_key(e)) in seen for e in examples)


def _hash(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
