"""Corpora and QA sets: the schema and native loader (schema.py), the other formats (load.py), validation,
statistics and the synthetic generator; and, at the bottom of the house, the helpers every layer uses
(errors.py, files.py, config.py, text.py, significance.py, outputs.py). See schema.py for the file formats."""

from corpora.schema import (  # noqa: F401  (the names the rest of the project imports from `corpora`)
    BOM,
    Corpus,
    DEFAULT_CORPUS,
    DOC_FIELDS,
    KINDS,
    Problems,
    QA_FIELDS,
    QA_OPTIONAL,
    QA_UPDATE_FIELDS,
    QA_UPDATE_OPTIONAL,
    SHIPPED_DIR,
    SPLITS,
    SURROGATE_ESCAPE,
    apply_updates,
    bad_line,
    check_fields,
    is_file_or_absent,
    json_problem,
    load_docs,
    load_native,
    load_qa,
    lone_surrogate,
    nonblank_lines,
    read_jsonl,
    resolve_corpus,
    scan_jsonl,
    shipped_corpora,
)
from corpora.load import load_corpus  # noqa: F401
