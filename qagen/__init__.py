"""`ragft corpora make-qa`: a QA set generated from documents, filtered and shaped for RAG vs fine-tuning.
Above finetune, below compare: imports corpora and rag; nothing below it imports it."""
