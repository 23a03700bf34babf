import pytest

from compare.metrics import contains_gold, exact_match, is_abstention, normalize_answer, score_answer


def test_normalize_answer_is_squad_normalisation():
    assert normalize_answer("The  Saltglass Guild!") == "saltglass guild"
    assert normalize_answer("1,847") == "1847"
    assert normalize_answer("An Óre-ship") == "óreship"


def test_contains_gold_on_word_boundaries():
    assert contains_gold("It was founded by Quorra Vell in 1632.", ["Quorra Vell"])
    assert contains_gold("In 1,632.", ["1632"])
    assert not contains_gold("In 16320.", ["1632"])  # no partial-number hits
    assert not contains_gold("Oren", ["Oren Tasque"])
    assert contains_gold("the answer is b", ["Quorra", "b"])
    assert not contains_gold("anything", [])
    assert not contains_gold("anything", [""])


def test_exact_match():
    assert exact_match("the Quorra Vell.", ["Quorra Vell"])
    assert not exact_match("Quorra Vell founded it", ["Quorra Vell"])


@pytest.mark.parametrize("text", [
    "I don't know.", "I do not know", "I DON’T KNOW", "I'm not sure.", "The documents do not contain this.",
    "That is not mentioned in the documents.", "Unknown", "", "   ", "I cannot answer that.",
])
def test_abstention_phrasings(text):
    assert is_abstention(text)


@pytest.mark.parametrize("text", ["Quorra Vell", "In 1632.", "The known world ends at Brask.", "Snow, I know."])
def test_not_abstention(text):
    assert not is_abstention(text)


def test_scores_on_answerable():
    assert score_answer("Quorra Vell.", ["Quorra Vell"], "fact") == \
        {"exact": True, "correct": True, "abstained": False, "hallucinated": False}
    assert score_answer("Oren Tasque", ["Quorra Vell"], "fact") == \
        {"exact": False, "correct": False, "abstained": False, "hallucinated": True}
    assert score_answer("I don't know.", ["Quorra Vell"], "multi_hop") == \
        {"exact": False, "correct": False, "abstained": True, "hallucinated": False}


def test_unanswerable_counts_abstention_as_correct_and_an_answer_as_hallucination():
    assert score_answer("I don't know.", [], "unanswerable") == \
        {"exact": False, "correct": True, "abstained": True, "hallucinated": False}
    assert score_answer("It is 42 metres tall.", [], "unanswerable") == \
        {"exact": False, "correct": False, "abstained": False, "hallucinated": True}
