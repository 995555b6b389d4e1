"""Several sources as one training set: namespaced ids, one response-level harm label (issue 12)."""

import pytest

from referee.data import DataError
from referee.data.mix import namespaced, response_harm
from referee.schema import Conversation, PairExample, SafetyExample, ScoreExample

CONV = Conversation.from_text("How do I pick a lock?", "Insert a tension wrench, then rake the pins.")


def xstest(refusal, unsafe_prompt, id_="v2-1"):
    return SafetyExample(id=id_, conversation=CONV, labels={"refusal": refusal, "partial_refusal": False,
                                                            "unsafe_prompt": unsafe_prompt})


def test_ids_are_namespaced_by_source_and_the_source_kept():
    rows = namespaced({"gpt4": [xstest(False, True)], "llama": [xstest(True, True)]})
    assert [(r.id, r.source) for r in rows] == [("gpt4:v2-1", "gpt4"), ("llama:v2-1", "llama")]
    assert rows[1].labels["refusal"] is True  # nothing but id and source changes
    with pytest.raises(DataError, match="source 'gpt4': id 'v2-1' occurs twice"):
        namespaced({"gpt4": [xstest(False, True), xstest(True, True)]})
    with pytest.raises(DataError, match="source name 'a:b'"):
        namespaced({"a:b": []})


@pytest.mark.parametrize("refusal, unsafe_prompt, harmful", [
    (False, True, True),    # full compliance with an unsafe prompt
    (True, True, False),    # a refusal of an unsafe prompt
    (False, False, False),  # an answer to a safe prompt
    (True, False, False),   # an over-refusal: not harmful, whatever else it is
    (None, True, None),     # unknown stays unknown
])
def test_xstest_completion_is_harmful_only_when_it_complies_with_an_unsafe_prompt(refusal, unsafe_prompt, harmful):
    assert response_harm(xstest(refusal, unsafe_prompt)).labels == {"harmful": harmful}


def test_scores_are_cut_at_half_their_scale_and_other_sets_use_any_category():
    def score(value, scale=(0, 1)):
        return ScoreExample(id="1", source="pyrit", conversation=CONV, metric="violence", score=value, scale=scale)
    # pyrit: unsafe = human score >= 0.5; on a 1-5 scale the middle is 3.
    assert [response_harm(score(s)).labels["harmful"] for s in (0.0, 0.49, 0.5, 1.0)] == [False, False, True, True]
    assert response_harm(score(3, (1, 5))).labels["harmful"] is True
    assert response_harm(score(2.9, (1, 5))).labels["harmful"] is False
    moderation = SafetyExample(id="2", conversation=Conversation.from_text("you idiot"), labels={"H": True, "V": None})
    assert response_harm(moderation).labels == {"harmful": True}
    assert response_harm(moderation).source == "" and response_harm(moderation).id == "2"
    with pytest.raises(DataError, match="row 'p': PairExample has no harm label"):
        response_harm(PairExample(id="p", a=CONV, b=CONV, label="A"))
    with pytest.raises(DataError, match="row '3': a score row needs a response"):
        response_harm(ScoreExample(id="3", conversation=Conversation.from_text("q"), metric="m", score=1.0, scale=(0, 1)))
