import pytest

from referee.schema import Conversation, PairExample, PromptExample, SafetyExample, SchemaError, ScoreExample, Turn
from referee.text import render


def conv(prompt="What is 2+2?", response="4", system=None):
    return Conversation.from_text(prompt, response, system=system)


def test_conversation_response_and_context():
    c = Conversation((Turn("user", "hi"), Turn("assistant", "hello"), Turn("user", "bye"), Turn("assistant", "ciao")),
                     system="sys")
    assert c.response == "ciao"
    assert [t.content for t in c.context] == ["hi", "hello", "bye"]
    assert c.prompt == "bye"
    assert Conversation.from_dict(c.to_dict()) == c
    assert Conversation.from_text("only a request").response is None


@pytest.mark.parametrize("make, field", [
    (lambda: Turn("bot", "x"), "role"),
    (lambda: Conversation(()), "turns"),
    (lambda: ScoreExample(id="1", conversation=conv(), metric="toxicity", score=11), "score"),
    (lambda: ScoreExample(id="1", conversation=conv(), metric="", score=1), "metric"),
    (lambda: ScoreExample(id="", conversation=conv(), metric="m", score=1), "id"),
    (lambda: PairExample(id="p", a=conv(), b=conv(), label="C"), "label"),
    (lambda: PairExample(id="p", a=conv(), b=conv(), soft=(0.5, 0.6, 0.0)), "soft"),
    (lambda: PairExample(id="p", a=conv(), b=Conversation.from_text("q"), label="A"), "b"),
    (lambda: SafetyExample(id="s", conversation=conv(), labels={"S": 1}), "labels['S']"),
    (lambda: PromptExample(id="q", conversation=conv()), "conversation"),
])
def test_validation_names_the_field(make, field):
    with pytest.raises(SchemaError, match=f"field '{field}'" if "[" not in field else "labels"):
        make()


def test_soft_labels_give_majority_and_swap_flips():
    """Annotators (1, 1, 0) -> p = (2/3, 0, 1/3): majority A; swapped -> (0, 2/3, 1/3), majority B."""
    p = PairExample(id="p", a=conv(response="a"), b=conv(response="b"), soft=(2 / 3, 0, 1 / 3))
    assert p.label == "A" and p.chosen.response == "a" and p.rejected.response == "b"
    s = p.swapped()
    assert s.label == "B" and s.soft == pytest.approx((0, 2 / 3, 1 / 3)) and s.response_a == "b"
    assert PairExample(id="t", a=conv(), b=conv(), soft=(0.5, 0.5, 0.0)).label == "tie"
    assert PairExample(id="t", a=conv(), b=conv(), label="B").target == (0.0, 1.0, 0.0)


def test_safety_unsafe_with_unknown_categories():
    assert SafetyExample(id="1", conversation=conv(), labels={"S": None, "H": True}).unsafe is True
    assert SafetyExample(id="2", conversation=conv(), labels={"S": None, "H": False}).unsafe is None
    assert SafetyExample(id="3", conversation=conv(), labels={"S": False, "H": False}).unsafe is False


def test_render_keeps_the_response_when_truncating():
    c = Conversation.from_text("x" * 5000, "the answer", system="s")
    text = render(c, max_chars=100)
    assert len(text) <= 100 and text.endswith("Assistant: the answer")
    long = render(Conversation.from_text("q", "y" * 500), max_chars=100)
    assert len(long) <= 100 and long.startswith("User: q")
