"""Check a make-qa output folder the way the tests do: `python -m tests.qagen.check_output DIR`.

Runs tests/qagen/test_make_qa_model.py's assert_generated_corpus on DIR (validates, 100% of kept answers in
their source chunk, unanswerable ones absent from the output documents, the shares of issue 14 item 2,
paraphrases below the leakage threshold) and prints the counts per kind and split."""

import sys
from collections import Counter
from pathlib import Path

from qagen import shape
from tests.qagen.test_make_qa_model import assert_generated_corpus

if __name__ == "__main__":
    rows = assert_generated_corpus(Path(sys.argv[1]))
    print(dict(Counter((r["split"], r["kind"], "paraphrase" if r["paraphrase_of"] else "question") for r in rows)))
    print(shape.shares(rows))
    print("OK: every check of tests/qagen/test_make_qa_model.py holds")
