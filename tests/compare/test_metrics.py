import math

import pytest

from compare.metrics import (attribute_failure, contains_gold, content_words, crag_score, exact_match, gold_recall,
                             gold_retrieved, grounding, is_abstention, is_stale, normalize_answer, score_answer,
                             token_f1)


def test_normalize_answer_is_squad_normalisation():
    assert normalize_answer("The  Saltglass Guild!") == "saltglass guild"
    assert normalize_answer("1,847") == "1847"
    assert normalize_answer("An Óre-ship") == "óreship"


def test_unit_spellings_match_either_way():
    assert contains_gold("The Deepwell Mine is 640 meters deep.", ["640 metres"])
    assert contains_gold("1.9 million Liters a year", ["1.9 million litres"])
    assert contains_gold("a causeway of 3 kilometers", ["3 kilometres"])
    assert normalize_answer("the diameter of the meteor") == "diameter of meteor"  # whole words only
    assert not contains_gold("640 meters deep", ["64 metres"])


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


def test_token_f1_hand_values():
    # pred {quorra, vell, founded, it} vs gold {quorra, vell}: P = 2/4, R = 2/2, F1 = 2*0.5*1/1.5 = 2/3
    assert token_f1("Quorra Vell founded it", ["Quorra Vell"]) == pytest.approx(2 / 3)
    assert token_f1("The Quorra Vell.", ["Quorra Vell"]) == 1.0
    assert token_f1("Oren Tasque", ["Quorra Vell"]) == 0.0
    # best gold wins: vs "Oren" P = 1/2, R = 1 -> 2/3; vs "Oren Tasque" 1.0
    assert token_f1("Oren Tasque", ["Oren", "Oren Tasque"]) == 1.0
    # repeated tokens count once each side (multiset intersection): pred {vell, vell}, gold {vell}: P=1/2, R=1
    assert token_f1("vell vell", ["Vell"]) == pytest.approx(2 / 3)
    assert token_f1("anything", []) == 0.0


@pytest.mark.parametrize("text", [
    "I don't know.", "I do not know", "I DON’T KNOW", "I'm not sure.", "The documents do not contain this.",
    "That is not mentioned in the documents.", "Unknown", "", "   ", "I cannot answer that.",
    "I'm unable to determine that from the documents.", "There is no information about it.",
    "Sorry, I could not find that.", "I don’t know who that is",
])
def test_abstention_phrasings(text):
    assert is_abstention(text)


@pytest.mark.parametrize("text", ["Quorra Vell", "In 1632.", "The known world ends at Brask.", "Snow, I know.",
                                  "Unknowable Reef", "Knowles Harbour"])
def test_not_abstention(text):
    assert not is_abstention(text)


def test_scores_on_answerable():
    assert score_answer("Quorra Vell.", ["Quorra Vell"], "fact") == \
        {"exact": True, "f1": 1.0, "correct": True, "abstained": False, "hallucinated": False, "crag": 1}
    assert score_answer("Oren Tasque", ["Quorra Vell"], "fact") == \
        {"exact": False, "f1": 0.0, "correct": False, "abstained": False, "hallucinated": True, "crag": -1}
    assert score_answer("I don't know.", ["Quorra Vell"], "multi_hop") == \
        {"exact": False, "f1": 0.0, "correct": False, "abstained": True, "hallucinated": False, "crag": 0}


def test_unanswerable_counts_abstention_as_correct_and_an_answer_as_hallucination():
    # Unlike RAGAS (which scores an abstention 0), declining an unanswerable question is the right answer.
    idk = score_answer("I don't know.", [], "unanswerable")
    assert idk["correct"] and idk["abstained"] and not idk["hallucinated"] and idk["crag"] == 1
    confident = score_answer("It is 42 metres tall.", [], "unanswerable")
    assert not confident["correct"] and not confident["abstained"] and confident["hallucinated"]
    assert confident["crag"] == -1


def test_crag_score():
    assert crag_score(True, False) == 1 and crag_score(False, True) == 0 and crag_score(False, False) == -1


def test_grounding_share_of_content_words_in_context():
    ctx = "Port Ilmaren was founded in 1403 by the merchant prince Corvane Ilmar."
    assert content_words("It was Corvane Ilmar.") == ["corvane", "ilmar"]
    assert grounding("Corvane Ilmar", ctx) == 1.0
    assert grounding("Corvane Vell", ctx) == 0.5             # 'vell' is not in the context
    assert grounding("In 1403, by Quorra Vell", ctx) == pytest.approx(1 / 3)  # 1403 yes; quorra, vell no
    assert math.isnan(grounding("I don't know", ctx))         # abstention: nothing to ground
    assert math.isnan(grounding("It was the one", ctx))       # only function words
    assert math.isnan(grounding("Corvane Ilmar", None))       # closed-book


def test_gold_retrieved_and_recall():
    assert gold_retrieved(["d1"], ["d2", "d1", "d3"]) is True
    assert gold_retrieved(["d1"], ["d2"]) is False
    assert gold_retrieved(["d1"], []) is None
    assert gold_recall(["d1", "d2"], ["d1", "d3"]) == 0.5
    assert gold_recall(["d1", "d2"], ["d2", "d1"]) == 1.0
    assert math.isnan(gold_recall([], ["d1"])) and math.isnan(gold_recall(["d1"], []))


def test_stale_answer_gives_the_old_fact():
    assert is_stale("Quorra Vell is the Tidewarden", ["Quorra Vell"], ["Mirabet Coss"])
    assert not is_stale("Mirabet Coss", ["Quorra Vell"], ["Mirabet Coss"])
    assert not is_stale("Mirabet Coss, after Quorra Vell", ["Quorra Vell"], ["Mirabet Coss"])  # the new one is there
    assert not is_stale("Quorra Vell", None, ["Mirabet Coss"])


def test_failure_attribution():
    wrong = score_answer("Oren Tasque", ["Quorra Vell"], "fact")
    idk = score_answer("I don't know", ["Quorra Vell"], "fact")
    right = score_answer("Quorra Vell", ["Quorra Vell"], "fact")
    assert attribute_failure(right, "fact", True, 0.0) == ""
    assert attribute_failure(wrong, "fact", True, 0.0) == "retrieval_miss"
    assert attribute_failure(wrong, "multi_hop", True, 0.5) == "retrieval_miss"  # one of two hops missing
    assert attribute_failure(wrong, "fact", True, 1.0) == "generator_error"
    assert attribute_failure(idk, "fact", True, 1.0) == "generator_error"        # had the document, declined
    assert attribute_failure(wrong, "fact", False, math.nan) == "parametric_hallucination"
    assert attribute_failure(idk, "fact", False, math.nan) == "declined"
    assert attribute_failure(wrong, "fact", False, math.nan, stale=True) == "stale"
    # an unanswerable question answered with documents: the generator should have declined
    una = score_answer("42 metres", [], "unanswerable")
    assert attribute_failure(una, "unanswerable", True, 1.0) == "generator_error"
    assert attribute_failure(una, "unanswerable", True, 0.0) == "generator_error"
    assert attribute_failure(una, "unanswerable", False, math.nan) == "parametric_hallucination"
