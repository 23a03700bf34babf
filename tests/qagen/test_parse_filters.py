"""make-qa's pure parts on fixed strings (no model): the reply parser, the answer trimming, each filter, the
passage choice, the RAG-vs-FT shape and the input checks."""

import json

import pytest

from corpora.errors import InputError
from corpora.text import tokens
from qagen import filters, parse, prompts, shape
from qagen.build import check_out, hold_back
from qagen.config import MakeQAConfig

# ---- parser -----------------------------------------------------------------------------------------------


def test_parse_plain_pairs_and_repetition():
    # what SmolLM2-135M writes: the pair, then the same pair again until the token limit, the last cut off
    reply = "Q: What is the latest Brindle release?\nA: 4.3.2\nQ: What is the latest Brindle release?\nA: 4.3.2\nQ: What is"
    assert parse.parse_pairs(reply) == [{"question": "What is the latest Brindle release?", "answer": "4.3.2"}]


@pytest.mark.parametrize("reply, want", [
    ("1. Q: Who leads it?\n   A: Oren Tasque\n2. Q: When?\n   A: 1632", [("Who leads it?", "Oren Tasque"), ("When?", "1632")]),
    ("- **Question 1:** Who built it?\n- **Answer 1:** \"Ada Quell\".", [("Who built it?", "Ada Quell")]),
    ("Sure! Here are questions.\n\nQuestion: What port? Answer: `7400`\nThat is all.", [("What port?", "7400")]),
    ("Q1) Which file?\nA1) brindled.toml", [("Which file?", "brindled.toml")]),
    ("Q: Who?\nsome prose\nA: Bob", [("Who?", "Bob")]),  # prose between the lines is skipped
    ("Q: A question with no answer?\nQ: Second?\nA: yes", [("Second?", "yes")]),  # missing answer: dropped
    ("A: an answer without a question", []),
    ("Q: \nA: x", []),  # empty question
    ("", []),
    ("no format at all", []),
])
def test_parse_tolerates_numbering_bullets_extra_text_and_missing_pieces(reply, want):
    assert [(p["question"], p["answer"]) for p in parse.parse_pairs(reply)] == want


def test_parse_limit_keeps_the_first_pairs():
    reply = "Q: One?\nA: 1\nQ: Two?\nA: 2\nQ: Three?\nA: 3"
    assert [p["answer"] for p in parse.parse_pairs(reply, limit=2)] == ["1", "2"]


@pytest.mark.parametrize("question, answer, want", [
    ("What is the name of the broker daemon?", "The broker daemon is called `brindled`.", "brindled"),
    ("What's the latest Brindle update?", "The latest Brindle update is 4.3.2, published on 2025-01-21", "4.3.2"),
    ("What is the error code E3104?", "E3104: queue already exists", "queue already exists"),
    ("Who built it?", "Ada Quell", "Ada Quell"),  # short, no copula: unchanged
    ("What is the Brindle port reference?", "The Brindle ports reference", "The Brindle ports reference"),
    ("Which port?", "Port 7400, the default one, chosen in 2019 for the first public release", "Port 7400"),
])
def test_trim_answer(question, answer, want):
    assert parse.trim_answer(question, answer) == want


@pytest.mark.parametrize("reply, want", [
    ("Which person constructed the lighthouse at Velmar?", "Which person constructed the lighthouse at Velmar?"),
    ("Rewritten question: Which process is the broker? It is brindled.", "Which process is the broker?"),
    ("\n\nQ: What does Brindle call its daemon?\nA: brindled", "What does Brindle call its daemon?"),
    ("1. \"Who made it?\"", "Who made it?"),
    ("", ""),
])
def test_parse_question(reply, want):
    assert parse.parse_question(reply) == want


# ---- filters ----------------------------------------------------------------------------------------------

CHUNK = ("Brindle is published under the Brindle Community License 2.1 (BCL-2.1). The broker daemon is called "
         "`brindled`, and segment files end in `.bseg`. The latest release is 4.3.2, published on 2025-01-21.")


@pytest.mark.parametrize("answer, span", [
    ("BCL-2.1", "BCL-2.1"),
    ("bcl-2.1.", "BCL-2.1"),  # case and a final stop: the chunk's own spelling comes back
    ("`brindled`", "brindled"),
    ("brindled", "brindled"),  # the chunk's backticks and comma are not part of the span
    ("`.bseg`", ".bseg"),  # the answer's own leading dot is kept
    ("the Brindle Community License", "Brindle Community License"),  # articles do not count
    ("4.3.2", "4.3.2"),
    ("Brindle community license 2.1 (BCL-2.1)", "Brindle Community License 2.1 (BCL-2.1)"),
    ("BCL", None),  # only inside a word of the chunk: not on word boundaries
    ("Apache 2.0", None),
    ("", None),
])
def test_a_answer_in_chunk(answer, span):
    got = filters.answer_span(answer, CHUNK)
    assert got == span
    if got is not None:
        assert got in CHUNK  # verbatim: `corpora validate`'s answer-in-document check holds


def test_short_answer():
    assert filters.short_answer("Ada Quell") and filters.short_answer("4.3.2")
    assert not filters.short_answer("")
    assert not filters.short_answer("a configuration file that specifies the default settings for the port")


def test_b_question_must_not_contain_the_answer():
    assert filters.leaks_answer("What is the error code for the queue name E3131?", "E3131")
    assert filters.leaks_answer("Is the daemon called `brindled`?", "brindled")
    assert not filters.leaks_answer("What is the broker daemon called?", "brindled")
    assert not filters.leaks_answer("Which daemon runs brindledx?", "brindled")  # word boundaries


def test_c_near_duplicate_is_validates_token_jaccard_rule():
    kept = ["What is the name of the Brindle broker daemon?", "Who maintains Brindle?"]
    assert filters.near_duplicate("What is the name of the Brindle broker daemon?", kept) == 0
    assert filters.near_duplicate("what is the NAME of the brindle broker daemon", kept) == 0  # case, punctuation
    assert filters.near_duplicate("Brindle broker daemon: what is the name of the?", kept) == 0  # order ignored
    # 7 of 8 tokens shared: Jaccard 0.875 < 0.9, not a near-duplicate (the same verdict validate gives)
    assert filters.near_duplicate("What is the name of the broker daemon?", kept) is None
    assert filters.near_duplicate("Which port does Lantern use?", kept) is None
    assert filters.near_duplicate("Who maintains Brindle?", []) is None
    assert filters.LEAK_JACCARD == 0.9


def test_e_round_trip_is_contains_gold():
    assert filters.round_trip("The broker daemon is called brindled.", "brindled")
    assert filters.round_trip("It is `BCL-2.1`", "BCL-2.1")
    assert not filters.round_trip('The name of the broker daemon is "brinded".', "brindled")
    assert not filters.round_trip("I don't know", "brindled")


def test_absent_from_the_output_documents():
    from corpora.text import normalize_answer

    docs = [normalize_answer(CHUNK), normalize_answer("Lantern listens on port 7480.")]
    assert filters.absent("Marlinspike", docs)
    assert not filters.absent("7480", docs)
    assert not filters.absent("the BCL-2.1", docs)
    assert not filters.absent("", docs)


# ---- passages and prompts -----------------------------------------------------------------------------------


def test_focus_passages_spread_and_tables():
    text = ("# Title\n\nOne two three four. Five six seven eight. Nine ten eleven twelve.\n\n"
            "| Code | Meaning |\n| --- | --- |\n| E3104 | queue already exists |\n| E3115 | message too large |")
    ps = prompts.focus_passages(text, 5)
    assert ps == ["Title\nOne two three four.", "Title\nFive six seven eight.", "Title\nNine ten eleven twelve.",
                  "Title\nCode: E3104\nMeaning: queue already exists", "Title\nCode: E3115\nMeaning: message too large"]
    # 5 passages, 2 asked for: the 2nd and the 4th (the middles of the two halves)
    assert prompts.focus_passages(text, 2) == ["Title\nFive six seven eight.", "Title\nCode: E3104\nMeaning: queue already exists"]
    # a sentence opening with a pronoun comes with the one before it
    assert prompts.focus_passages("Lantern is the console. It is disabled by default.", 2) == [
        "Lantern is the console.", "Lantern is the console. It is disabled by default."]
    assert prompts.focus_passages("| E1 | x |\n| E2 | y |", 1) == ["E2; y"]  # rows whose header is elsewhere
    assert prompts.focus_passages("Short.", 2) == ["Short."]  # nothing of 4 words: the whole chunk


@pytest.mark.parametrize("passage,title,want", [
    # a table row: the cells after the first (which names the row)
    ("Components\nComponent: Hopper\nRole: delayed-message scheduler", "", ["delayed-message scheduler"]),
    ("[admin]\nKey: admin.http_port\nDefault: 9127\nMeaning: HTTPS admin API", "", ["9127", "HTTPS admin API"]),
    ("queue.lazy_threshold; 2,000; queue depth above which bodies stay on disk", "", ["2,000"]),  # "a; b; c" row
    # prose: codes, numbers with units, `code`, "quoted", then names that do not open a sentence
    ("Losing the majority produces E5201 after 1500 ms; see `brindlectl status` and \"Tier 1\".", "",
     ["E5201", "1500 ms", "brindlectl status", "Tier 1"]),  # "1" is inside "1500 ms", "Tier" inside "Tier 1"
    ("The Velmar lighthouse was built in 1841 by Ada Quell.", "", ["1841", "Ada Quell"]),  # "The Velmar" opens the sentence
    # nothing named in the title or the heading line: a question about it would name it
    ("Brindle overview\nThe latest Brindle release is 4.3.2, published on 2025-01-21.", "Brindle overview",
     ["4.3.2", "2025-01-21"]),
    ("4.2.0 (2024-03-11)\n- Introduced Lantern, the web console.", "Changelog", ["Lantern"]),
    ("No span here at all, only words.", "", []),
])
def test_answer_candidates(passage, title, want):
    assert prompts.answer_candidates(passage, title) == want


def test_pair_plan_asks_a_different_span_per_passage_and_falls_back_to_a_free_pair():
    chunk = {"title": "T", "text": "Port 7443 serves TLS traffic here. Port 7443 also serves 9127 admin traffic. Only plain words in this sentence."}
    plan = prompts.pair_plan(chunk, 3)
    assert [a for _, a in plan] == ["7443", "9127", None]  # 7443 was asked already; the last has no span
    asked = prompts.pair_messages("T", plan[0][0], "7443")
    assert 'whose answer is "7443"' in asked[-1]["content"] and "T\n" not in asked[-1]["content"]
    assert 'whose answer is "Ada Quell"' in asked[0]["content"]  # the example asks the same way
    free = prompts.pair_messages("T", plan[2][0])
    assert free[-1]["content"].endswith("T\n" + plan[2][0]) and "copied from the text" in free[-1]["content"]


def test_candidates_of_takes_the_asked_span_and_the_question_of_the_reply():
    from qagen.build import candidates_of

    chunk = {"key": "d1#0", "role": "corpus", "doc_id": "d1", "chunk_id": 0, "start": 0, "end": 10}
    plan = [("p1", "7443"), ("p2", "9127"), ("p3", None), ("p4", "E1")]
    replies = ["Q: Which port serves TLS?\nA: The TLS port of the broker", "Which port is the admin API on?",
               "Q: What does the broker do?\nA: It queues messages.", "A statement, no question"]
    c = candidates_of(chunk, plan, replies)
    assert [(x["question"], x["answer"]) for x in c] == [
        ("Which port serves TLS?", "7443"), ("Which port is the admin API on?", "9127"),
        ("What does the broker do?", "It queues messages"), ("", "")]
    assert c[0]["answer_raw"] == "The TLS port of the broker" and c[0]["asked_answer"] == "7443"


def test_copied_example_is_caught_unless_the_text_has_it():
    assert prompts.copies_example("What is the key fingerprint of the Velmar lighthouse?", "The key ends in 7C1E.")
    assert not prompts.copies_example("Who built the Velmar pier?", "The Velmar pier was built by Ann.")
    assert not prompts.copies_example("What is the key fingerprint?", "The key ends in 7C1E.")


def test_prompts_are_fixed_and_hashed():
    m = prompts.pair_messages("Brindle overview", "The daemon is brindled.")
    assert m[-1]["role"] == "user" and "The daemon is brindled." in m[-1]["content"]
    assert m[1] == {"role": "assistant", "content": "Q: Who built the Velmar lighthouse?\nA: Ada Quell"}
    assert "Question: Who?" in prompts.answer_messages({"doc_id": "d1", "title": "T", "text": "x"}, "Who?")[-1]["content"]
    assert prompts.prompt_hash() == prompts.prompt_hash() and len(prompts.prompt_hash()) == 12


# ---- shape ------------------------------------------------------------------------------------------------


def fact(i, paraphrase=True):
    return {"id": f"c{i}", "question": f"Question number {i} about topic {i}?", "answer": f"answer{i}",
            "doc_id": f"d{i % 3}", "paraphrase": f"Rephrased ask {i} on subject {i}?" if paraphrase else None}


def rows_of(n_facts, n_unans, n_para=None, seed=0):
    n_para = n_facts if n_para is None else n_para
    facts = [fact(i, i < n_para) for i in range(n_facts)]
    unans = [{**fact(100 + i, False), "doc_id": "held"} for i in range(n_unans)]
    roles = shape.plan(facts, unans, seed)
    return roles, shape.question_rows(roles, lambda c, src: {"candidate": c["id"], "from": src})


@pytest.mark.parametrize("n_facts, n_unans, n_para", [
    (1, 1, 1), (2, 1, 2), (4, 1, 4), (10, 3, 10), (10, 1, 10), (20, 10, 5), (20, 2, 0), (7, 50, 7), (50, 9, 40),
])
def test_shape_shares_hold_by_construction(n_facts, n_unans, n_para):
    roles, rows = rows_of(n_facts, n_unans, n_para)
    s = shape.shares(rows)
    assert s["test_facts"] >= 1
    assert s["doc_only_share"] >= shape.MIN_DOC_ONLY
    assert s["unanswerable_share"] >= shape.MIN_UNANSWERABLE
    m = s["test_facts"]
    assert s["unanswerable"] <= max((3 * m + 16) // 17, m // 3)  # at most 25% unless 15% needs more
    # every candidate once, every question with kind, split, paraphrase_of and provenance
    used = [c["id"] for cs in roles.values() for c in cs]
    assert len(set(used)) == len(used) == n_facts + n_unans
    by_id = {r["id"]: r for r in rows}
    for r in rows:
        assert {"kind", "split", "paraphrase_of", "provenance"} <= r.keys()
        if r["paraphrase_of"]:
            train = by_id[r["paraphrase_of"]]
            assert train["split"] == "train" and r["split"] == "test" and train["answers"] == r["answers"]
        if r["kind"] == "unanswerable":
            assert r["answers"] == [] and r["doc_ids"] == []


def test_shape_is_seeded():
    assert rows_of(12, 3, seed=1)[1] == rows_of(12, 3, seed=1)[1]
    assert rows_of(12, 3, seed=1)[1] != rows_of(12, 3, seed=2)[1]


def test_shape_paraphrases_are_below_the_leakage_threshold_in_the_fixture():
    _, rows = rows_of(10, 3)
    train = [r for r in rows if r["split"] == "train"]
    from corpora.text import near_duplicates

    test = [r for r in rows if r["split"] == "test"]
    assert near_duplicates([tokens(r["question"]) for r in train], [tokens(r["question"]) for r in test], 0.9) == {}


# ---- inputs -------------------------------------------------------------------------------------------------


def test_config_checks_are_one_line_input_errors():
    with pytest.raises(InputError, match="--top-k 0: must be at least 1"):
        MakeQAConfig(docs="brindle", out="x", top_k=0)
    with pytest.raises(InputError, match="--holdout 1.0: must be below 1"):
        MakeQAConfig(docs="brindle", out="x", holdout=1.0)
    with pytest.raises(InputError, match="--out"):
        MakeQAConfig(docs="brindle")
    with pytest.raises(InputError, match="--device"):
        MakeQAConfig(docs="brindle", out="x", device="tpu")


def test_check_out_refuses_a_foreign_folder_and_resumes_a_make_qa_one(tmp_path, monkeypatch):
    from corpora.outputs import write_marker

    monkeypatch.chdir(tmp_path)
    assert check_out(tmp_path / "new") is False
    out = tmp_path / "out"
    out.mkdir()
    assert check_out(out) is False  # empty
    (out / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="ragft did not make it"):
        check_out(out)
    write_marker(out, "corpus")
    with pytest.raises(InputError, match="make-qa did not write"):  # another generated corpus (synth)
        check_out(out)
    (out / ".cache").mkdir()
    (out / ".cache" / "make-qa.json").write_text(json.dumps({}))
    assert check_out(out) is True
    with pytest.raises(InputError, match="is a file"):
        check_out(out / "notes.txt")
    with pytest.raises(InputError, match="working directory"):
        check_out(tmp_path)
    index = tmp_path / "index"
    index.mkdir()
    write_marker(index, "index")
    with pytest.raises(InputError, match="holds an index"):
        check_out(index)


def test_hold_back_is_seeded_and_leaves_documents():
    docs = [{"id": f"d{i}"} for i in range(10)]
    kept, held = hold_back(docs, 0.2, 0)
    assert len(held) == 2 and len(kept) == 8 and hold_back(docs, 0.2, 0) == (kept, held)
    assert {d["id"] for d in kept} | {d["id"] for d in held} == {f"d{i}" for i in range(10)}
    assert len(hold_back(docs[:2], 0.2, 0)[1]) == 1  # at least one when holdout > 0
    assert hold_back(docs, 0.0, 0)[1] == []
