"""Fixtures shared by the judges' tests: tiny labelled data sets and a tiny random BERT encoder
(built from a config and a word-level vocabulary of the fixture text; nothing is downloaded)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from referee.schema import Conversation, PairExample, SafetyExample, ScoreExample

GOOD = "clear correct helpful detailed polite thorough accurate kind".split()
BAD = "wrong rude vague useless short lazy false harsh".split()
PROMPTS = [f"question {i} about topic {i % 3}" for i in range(12)]


def _answer(rng, words, n):
    return " ".join(rng.choice(words, n))


def pair_examples(n: int = 24, ties: bool = True, seed: int = 0) -> list[PairExample]:
    """A wins with good words, B wins with good words, tie when both answers are alike."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        label = ["A", "B", "tie"][i % 3] if ties else ["A", "B"][i % 2]
        good, bad = _answer(rng, GOOD, 6), _answer(rng, BAD, 3)
        a, b = {"A": (good, bad), "B": (bad, good), "tie": (good, _answer(rng, GOOD, 6))}[label]
        p = PROMPTS[i % len(PROMPTS)]
        out.append(PairExample(id=f"p{i}", a=Conversation.from_text(p, a), b=Conversation.from_text(p, b), label=label))
    return out


def safety_examples(n: int = 24, seed: int = 0) -> list[SafetyExample]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        unsafe = i % 2 == 1
        text = _answer(rng, BAD if unsafe else GOOD, 5)
        labels = {"harsh": unsafe, "hate": (unsafe and i % 4 == 1) if i % 3 else None}
        out.append(SafetyExample(id=f"s{i}", conversation=Conversation.from_text(PROMPTS[i % len(PROMPTS)], text), labels=labels))
    return out


def score_examples(n: int = 24, seed: int = 0) -> list[ScoreExample]:
    """Two metrics on different scales; the score grows with the share of good words."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        k = i % 5
        text = " ".join(list(rng.choice(GOOD, k)) + list(rng.choice(BAD, 4 - k)))
        metric, scale = [("helpfulness", (0.0, 10.0)), ("politeness", (1.0, 5.0))][i % 2]
        score = scale[0] + (scale[1] - scale[0]) * k / 4
        out.append(ScoreExample(id=f"m{i}", conversation=Conversation.from_text(PROMPTS[i % len(PROMPTS)], text),
                                metric=metric, score=score, scale=scale))
    return out


def tiny_bert(folder: Path, seed: int = 0) -> str:
    """A random 2-layer BERT (hidden 16) with a word-level vocabulary of the fixture words."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    words = sorted(set(GOOD + BAD + " ".join(PROMPTS).split() + "user assistant system : helpfulness politeness harsh hate ok".split()))
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    BertTokenizerFast(vocab_file=str(folder / "vocab.txt")).save_pretrained(folder)
    config = BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=32, max_position_embeddings=128)
    import torch
    torch.manual_seed(seed)
    BertModel(config).save_pretrained(folder)
    return str(folder)
