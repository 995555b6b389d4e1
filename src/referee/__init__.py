"""referee: learn how people judge chatbot answers, and use those judges to make chatbots better."""

__version__ = "0.1.0"

from referee.schema import (  # noqa: E402
    Conversation,
    PairExample,
    PromptExample,
    SafetyExample,
    SchemaError,
    ScoreExample,
    Turn,
)

__all__ = [
    "Conversation", "Turn", "ScoreExample", "PairExample", "SafetyExample", "PromptExample", "SchemaError",
]

_JUDGES = ("ScoreJudge", "PairJudge", "SafetyJudge", "RewardJudge", "load_judge")
__all__ += list(_JUDGES) + ["load"]


def __getattr__(name):
    # Judges import torch and scikit-learn, the loaders pandas: load them on first use, not on `import referee`.
    if name in _JUDGES:
        import referee.judges

        return getattr(referee.judges, name)
    if name == "load":
        from referee.data import load

        return load
    raise AttributeError(f"module 'referee' has no attribute {name!r}")
