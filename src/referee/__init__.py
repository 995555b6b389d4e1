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
