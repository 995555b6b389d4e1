"""How a conversation becomes model input.

Every backend sees the same rendering, so that TF-IDF, frozen encoders and fine-tuned transformers
compare on equal terms. Truncation keeps the response: when the text is too long, the oldest context
goes first, then the response is cut from its end.
"""

from __future__ import annotations

from referee.schema import Conversation

ROLE_TAGS = {"user": "User", "assistant": "Assistant"}


def render_context(conversation: Conversation, max_chars: int | None = None) -> str:
    """The system prompt and turns before the judged response, oldest first.

    >>> render_context(Conversation.from_text("Hi", "Hello", system="Be kind"))
    'System: Be kind\\nUser: Hi'
    """
    lines = [f"System: {conversation.system}"] if conversation.system else []
    lines += [f"{ROLE_TAGS[t.role]}: {t.content}" for t in conversation.context]
    text = "\n".join(lines)
    if max_chars is not None and len(text) > max_chars:
        text = text[len(text) - max_chars:]  # keep the most recent context
    return text


def render(conversation: Conversation, max_chars: int = 4000, response_share: float = 0.6) -> str:
    """The whole conversation as one string, the judged response last and never dropped.

    The response keeps up to `response_share` of `max_chars` (more when the context is short); the
    context fills the rest from its most recent end.

    >>> render(Conversation.from_text("Hi", "Hello"))
    'User: Hi\\nAssistant: Hello'
    """
    response = conversation.response
    if response is None:
        return render_context(conversation, max_chars)
    context = render_context(conversation)
    tagged = f"Assistant: {response}"
    budget_context = max(0, max_chars - min(len(tagged), int(max_chars * response_share)) - 1)
    context = context[len(context) - budget_context:] if len(context) > budget_context else context
    tagged = tagged[: max_chars - len(context) - bool(context)]  # bool: the joining newline
    return f"{context}\n{tagged}" if context else tagged
